internal import Glibc
import Platform

/// What occupies a path, as `lstat(2)` and a connection attempt see it.
package enum PathKind: Sendable, Hashable, CustomStringConvertible {
    /// Nothing is there.
    case missing
    /// A Unix socket.
    case socket
    /// A directory.
    case directory
    /// A symbolic link to `target` (as written in the link).
    case symlink(target: String)
    /// A regular file or anything else that is not a socket.
    case other(String)

    package var description: String {
        switch self {
        case .missing: "nothing"
        case .socket: "a Unix socket"
        case .directory: "a directory"
        case .symlink(let target): "a symbolic link to \(target)"
        case .other(let what): what
        }
    }
}

/// File-system and socket helpers shared by the registrar's parts; each failure names the path and errno.
package enum PathInspection {
    /// What is at `path`, without following a final symbolic link.
    package static func kind(of path: String) -> PathKind {
        var st = stat()
        guard lstat(path, &st) == 0 else { return .missing }
        return kind(mode: st.st_mode, path: path)
    }

    /// What `path` resolves to, following symbolic links.
    package static func resolvedKind(of path: String) -> PathKind {
        var st = stat()
        guard stat(path, &st) == 0 else { return .missing }
        return kind(mode: st.st_mode, path: path)
    }

    private static func kind(mode: mode_t, path: String) -> PathKind {
        switch mode & S_IFMT {
        case S_IFSOCK: return .socket
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink(target: (try? readLink(path)) ?? "?")
        case S_IFREG: return .other("a regular file")
        case S_IFIFO: return .other("a FIFO")
        case S_IFCHR: return .other("a character device")
        case S_IFBLK: return .other("a block device")
        default: return .other("a file of unknown type")
        }
    }

    /// The device and inode of `path` (not following a final link), or nil when it does not exist.
    package static func identity(of path: String) -> FileIdentity? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return FileIdentity(
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino),
            changed: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec))
    }

    /// The target written in the symbolic link at `path`.
    package static func readLink(_ path: String) throws(RegistrarError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { throw systemError("readlink", path) }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether a process accepts connections on the Unix socket at `path` (following links).
    ///
    /// A full backlog (`EAGAIN`) counts as answering: someone is listening.
    package static func socketAnswers(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard var address = try? unixAddress(path) else { return false }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return rc == 0 || errno == EAGAIN || errno == EINPROGRESS
    }

    /// A `sockaddr_un` for `path`; throws when the path does not fit (108 bytes on Linux).
    static func unixAddress(_ path: String) throws(RegistrarError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw RegistrarError(
                code: .invalidConfiguration,
                message: "socket path \(path) is \(bytes.count) bytes long; a Unix socket path must be 1...\(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        return address
    }

    /// Removes the file at `path`; a missing file is not an error.
    package static func remove(_ path: String) throws(RegistrarError) {
        if unlink(path) != 0 && errno != ENOENT { throw systemError("unlink", path) }
    }

    /// Creates `path` and its missing parents with `mode`.
    package static func makeDirectories(_ path: String, mode: UInt32 = 0o755) throws(RegistrarError) {
        do throws(SystemError) { try Platform.makeDirectories(path, mode: mode) } catch {
            throw systemError("mkdir", error.subject, errno: error.errno)
        }
        guard case .directory = resolvedKind(of: path) else {
            throw RegistrarError(code: .pathConflict, message: "expected a directory at \(path), found \(kind(of: path))")
        }
    }

    /// The directory part of `path` (`/a/b/c` -> `/a/b`, `c` -> `.`).
    package static func directoryName(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    /// The last component of `path`.
    package static func baseName(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// `path` made absolute against the working directory, without resolving links.
    package static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return cwd == "/" ? "/" + path : cwd + "/" + path
    }

    /// Strips a `unix://` scheme (`unix:///a/b` and `unix:/a/b`) from a socket address.
    package static func socketPath(fromAddress address: String) -> String {
        if address.hasPrefix("unix://") { return String(address.dropFirst("unix://".count)) }
        if address.hasPrefix("unix:") { return String(address.dropFirst("unix:".count)) }
        return address
    }

    /// An error for a failed system call, with errno's text.
    static func systemError(_ call: String, _ path: String, errno code: Int32 = errno) -> RegistrarError {
        RegistrarError(
            code: .systemCall, message: "\(call)(\(path)) failed",
            underlying: errnoText(code))
    }
}

/// The device, inode and status-change time that identify one file, to tell "our" socket from one that
/// replaced it (a new file may reuse a freed inode number, but not its change time).
package struct FileIdentity: Sendable, Hashable {
    package var device: UInt64
    package var inode: UInt64
    /// `st_ctim` in nanoseconds.
    package var changed: Int64
}
