internal import Glibc
internal import Platform

/// A running kubelet, as its command line and its `--config` file describe it.
package struct KubeletProcess: Sendable, Hashable {
    /// Where the kubelet's root directory was read.
    package enum Source: Sendable, Hashable, CustomStringConvertible {
        /// The `--root-dir` flag on its command line.
        case flag
        /// `rootDir` in its `--config` file.
        case configFile(String)
        /// Neither: the kubelet's default, `/var/lib/kubelet`.
        case defaulted

        package var description: String {
            switch self {
            case .flag: "from --root-dir"
            case .configFile(let path): "from rootDir in \(path)"
            case .defaulted: "the default: no --root-dir, no rootDir in a --config file"
            }
        }
    }

    /// The process id.
    package var pid: Int32
    /// The kubelet's `--root-dir`, absolute, as the kubelet sees it.
    package var rootDirectory: String
    /// Where ``rootDirectory`` was read.
    package var source: Source
    /// Why the `--config` file could not be read, when it could not (the root directory then falls back).
    package var configProblem: String?
    /// The kubelet's file-system root as seen from this process (`/proc/<pid>/root`), or nil when it
    /// cannot be read: paths are then looked at as this process sees them.
    package var processRoot: String?

    /// The plugin registry the kubelet watches: `<root-dir>/plugins_registry`.
    package var registryDirectory: String {
        RegistrarConfiguration.normalized(rootDirectory) + "/plugins_registry"
    }

    /// One line for an operator: `pid 812, root directory /var/lib/kubelet (from --root-dir)`.
    package var summary: String {
        var text = "pid \(pid), root directory \(rootDirectory) (\(source))"
        if let configProblem { text += "; \(configProblem)" }
        return text
    }

    /// `path` (absolute, in the kubelet's mount namespace) as this process can open it.
    package func seen(_ path: String) -> String {
        guard let processRoot, processRoot != "/" else { return path }
        return processRoot + path
    }
}

/// Finds running kubelets in `/proc` and reads the root directory each one uses: `--root-dir` on its
/// command line, else `rootDir` in its `--config` file (YAML or JSON KubeletConfiguration), else
/// `/var/lib/kubelet`, as the kubelet itself decides.
package struct KubeletDiscovery: Sendable {
    /// The kubelet's default `--root-dir`.
    package static let defaultRootDirectory = "/var/lib/kubelet"
    /// A config file larger than this is not read.
    static let maxConfigBytes = 1 << 20

    /// The proc file system to read, `/proc` unless a test says otherwise.
    package let procDirectory: String

    /// Reads kubelets from `procDirectory`.
    package init(procDirectory: String = "/proc") {
        self.procDirectory = procDirectory
    }

    /// Every process whose command line is a kubelet's, by pid.
    package func runningKubelets() -> [KubeletProcess] {
        guard let dir = opendir(procDirectory) else { return [] }
        var pids: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let pid = Int32(name), pid > 0 { pids.append(pid) }
        }
        closedir(dir)
        return pids.sorted().compactMap { kubelet(pid: $0) }
    }

    /// The kubelet with `pid`, or nil when that process is not a kubelet (or is gone).
    package func kubelet(pid: Int32) -> KubeletProcess? {
        let base = "\(procDirectory)/\(pid)"
        guard let cmdline = Self.readFile(base + "/cmdline", limit: 1 << 20) else { return nil }
        let arguments = Self.arguments(fromCmdline: cmdline)
        guard let kubeletArguments = Self.kubeletArguments(arguments) else { return nil }
        let root = base + "/root"
        let processRoot: String? = PathInspection.resolvedKind(of: root) == .directory ? root : nil
        let cwd = (try? PathInspection.readLink(base + "/cwd")) ?? "/"
        return Self.describe(pid: pid, arguments: kubeletArguments, workingDirectory: cwd, processRoot: processRoot) { path in
            Self.readFile(processRoot.map { $0 == "/" ? path : $0 + path } ?? path, limit: Self.maxConfigBytes)
        }
    }

    /// What a kubelet's arguments (after the program name) say about its root directory; `read` returns a
    /// file's text (as the kubelet sees the path) or nil.
    package static func describe(
        pid: Int32, arguments: [String], workingDirectory: String, processRoot: String?, read: (String) -> String?
    ) -> KubeletProcess {
        func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : RegistrarConfiguration.normalized(workingDirectory) + "/" + path
        }
        var process = KubeletProcess(
            pid: pid, rootDirectory: defaultRootDirectory, source: .defaulted, processRoot: processRoot)
        if let flag = flagValue("root-dir", in: arguments), !flag.isEmpty {
            process.rootDirectory = absolute(flag)
            process.source = .flag
            return process
        }
        guard let config = flagValue("config", in: arguments), !config.isEmpty else { return process }
        let path = absolute(config)
        guard let text = read(path) else {
            process.configProblem = "its --config file \(path) cannot be read"
            return process
        }
        if let rootDir = rootDirectory(fromConfig: text), !rootDir.isEmpty {
            process.rootDirectory = absolute(rootDir)
            process.source = .configFile(path)
        }
        return process
    }

    /// The NUL-separated arguments of `/proc/<pid>/cmdline`.
    package static func arguments(fromCmdline text: String) -> [String] {
        var parts = text.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
        if parts.last == "" { parts.removeLast() }
        return parts
    }

    /// The arguments after the program name when `arguments` run a kubelet (`/usr/bin/kubelet …`, or
    /// `hyperkube kubelet …`), nil otherwise.
    package static func kubeletArguments(_ arguments: [String]) -> [String]? {
        guard let program = arguments.first else { return nil }
        let name = PathInspection.baseName(of: program)
        if name == "kubelet" { return Array(arguments.dropFirst()) }
        if name == "hyperkube", arguments.count > 1, arguments[1] == "kubelet" { return Array(arguments.dropFirst(2)) }
        return nil
    }

    /// The value of the flag `name` in Go flag syntax (`--name=value`, `--name value`, one dash too);
    /// the last one wins, as in Go, and nothing after `--` is a flag.
    package static func flagValue(_ name: String, in arguments: [String]) -> String? {
        var value: String?
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" { break }
            for prefix in ["--", "-"] where argument.hasPrefix(prefix + name) {
                let rest = argument.dropFirst(prefix.count + name.count)
                if rest.hasPrefix("=") {
                    value = String(rest.dropFirst())
                } else if rest.isEmpty, index + 1 < arguments.count {
                    value = arguments[index + 1]
                    index += 1
                }
                break
            }
            index += 1
        }
        return value
    }

    /// `rootDir` from a KubeletConfiguration in JSON or YAML; nil when it has none.
    ///
    /// Only that key is read: JSON through Platform's parser; YAML as the first top-level `rootDir:`
    /// line of the first document, its value plain, single- or double-quoted, a trailing comment dropped.
    package static func rootDirectory(fromConfig text: String) -> String? {
        var body = Substring(text)
        if body.hasPrefix("\u{FEFF}") { body = body.dropFirst() }
        let trimmed = body.drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        if trimmed.hasPrefix("{"), let value = try? JSON.parse(String(trimmed)) {
            return value["rootDir"]?.stringValue
        }
        var seenContent = false
        for rawLine in body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.hasPrefix("---") || line.hasPrefix("...") {
                if seenContent { break }
                continue
            }
            let content = line.drop { $0 == " " || $0 == "\t" }
            if content.isEmpty || content.hasPrefix("#") { continue }
            seenContent = true
            // Only a top-level key: an indented rootDir belongs to another mapping.
            guard line.first != " ", line.first != "\t" else { continue }
            var key = line.prefix { $0 != ":" }
            guard key.count < line.count else { continue }
            if (key.hasPrefix("\"") && key.hasSuffix("\"") || key.hasPrefix("'") && key.hasSuffix("'")) && key.count >= 2 {
                key = key.dropFirst().dropLast()
            }
            guard key.trimmingTrailingSpaces == "rootDir" else { continue }
            let value = line.dropFirst(line.prefix { $0 != ":" }.count + 1)
            return yamlScalar(value)
        }
        return nil
    }

    /// A YAML flow scalar on one line: quotes removed, a comment after a plain value dropped.
    static func yamlScalar(_ text: Substring) -> String? {
        let value = text.drop { $0 == " " || $0 == "\t" }
        if value.hasPrefix("\"") {
            var out = ""
            var escaped = false
            for c in value.dropFirst() {
                if escaped {
                    switch c {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    default: out.append(c)
                    }
                    escaped = false
                } else if c == "\\" {
                    escaped = true
                } else if c == "\"" {
                    return out
                } else {
                    out.append(c)
                }
            }
            return nil
        }
        if value.hasPrefix("'") {
            var out = ""
            var rest = value.dropFirst()
            while let c = rest.first {
                rest = rest.dropFirst()
                if c == "'" {
                    if rest.first == "'" {
                        out.append("'")
                        rest = rest.dropFirst()
                    } else {
                        return out
                    }
                } else {
                    out.append(c)
                }
            }
            return nil
        }
        var plain = Substring(value)
        // A comment starts at " #" (a '#' inside a plain scalar is part of it).
        var previous: Character = " "
        for index in plain.indices {
            if plain[index] == "#" && (previous == " " || previous == "\t") {
                plain = plain[..<index]
                break
            }
            previous = plain[index]
        }
        let result = String(plain).trimmingTrailingSpaces
        if result.isEmpty || result == "~" || result == "null" { return nil }
        return result
    }

    /// The contents of a file up to `limit` bytes, or nil when it cannot be read.
    static func readFile(_ path: String, limit: Int) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes.prefix(limit), as: UTF8.self)
    }
}

/// Whether the kubelet sees what the registrar serves: its registry and the announced endpoint.
package enum KubeletReach {
    /// Why `kubelet` will not see a registration socket placed in `directory` (the registrar's
    /// registry or link directory, as this process sees it), or nil when it watches that directory.
    package static func registryProblem(directory: String, kubelet: KubeletProcess) -> String? {
        let watched = kubelet.registryDirectory
        let seen = kubelet.seen(watched)
        var mine = stat()
        var theirs = stat()
        guard stat(seen, &theirs) == 0 else {
            return "the running kubelet (\(kubelet.summary)) watches \(watched), which does not exist"
                + (RegistrarConfiguration.normalized(directory) == watched ? "" : "; this registrar uses \(directory)")
        }
        if stat(directory, &mine) == 0, mine.st_dev == theirs.st_dev, mine.st_ino == theirs.st_ino { return nil }
        return "the running kubelet (\(kubelet.summary)) watches \(watched), not \(directory)"
    }

    /// Why `kubelet` cannot dial `endpoint` (the path announced in GetInfo), or nil when a socket is there.
    package static func endpointProblem(endpoint: String, kubelet: KubeletProcess) -> String? {
        let path = PathInspection.socketPath(fromAddress: endpoint)
        switch PathInspection.resolvedKind(of: kubelet.seen(path)) {
        case .socket: return nil
        case .missing:
            return "the running kubelet (pid \(kubelet.pid)) cannot reach \(path): nothing is there in its file system, so its NodeGetInfo call will fail"
        case let other:
            return "the running kubelet (pid \(kubelet.pid)) finds \(other) at \(path), not the driver's Unix socket"
        }
    }
}

extension StringProtocol {
    fileprivate var trimmingTrailingSpaces: String {
        var s = String(self)
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
