import Glibc
import Platform

/// Checks that a target or staging path lies inside the kubelet directory, and stays there when
/// symbolic links are followed.
///
/// A path is accepted when it is absolute, has no `..` component and starts with the kubelet
/// directory; it is then resolved component by component (`lstat`/`readlink`, never following a
/// link implicitly), and the resolved path must still lie strictly inside the kubelet directory's
/// real path. Components that do not exist yet are kept as written.
public struct KubeletPathPolicy: Sendable {
    /// The kubelet directory as configured.
    public let directory: String
    /// Its real path (symbolic links in it resolved).
    public let realDirectory: String

    /// Creates a policy for an existing kubelet directory.
    /// - Throws: `.invalidArgument` when it is not absolute or does not exist.
    public init(kubeletDirectory: String) throws(StorageError) {
        guard kubeletDirectory.hasPrefix("/") else {
            throw StorageError(.invalidArgument, "kubelet directory \(LVMName.quoted(kubeletDirectory)) is not an absolute path")
        }
        guard let real = realpath(kubeletDirectory, nil) else {
            throw StorageError(
                .invalidArgument, "kubelet directory \(LVMName.quoted(kubeletDirectory)) cannot be resolved: \(errnoText(errno))")
        }
        defer { free(real) }
        self.directory = Self.components(kubeletDirectory).joinedPath()
        self.realDirectory = String(cString: real)
    }

    /// Validates `path` (named `field` in messages) and returns it with symbolic links resolved.
    /// - Throws: `.invalidArgument` naming the field, the path and the rule it breaks.
    public func validate(_ path: String, field: String) throws(StorageError) -> String {
        func fail(_ reason: String) -> StorageError {
            StorageError(.invalidArgument, "\(field) \(LVMName.quoted(path)) \(reason)")
        }
        guard !path.isEmpty else { throw fail("is empty") }
        guard path.hasPrefix("/") else { throw fail("is not an absolute path") }
        guard !path.utf8.contains(0) else { throw fail("contains a NUL byte") }
        guard path.utf8.count < Int(PATH_MAX) else { throw fail("is longer than PATH_MAX") }
        let parts = Self.components(path)
        guard !parts.contains("..") else { throw fail("contains a '..' component") }
        let rootParts = Self.components(directory)
        guard parts.count > rootParts.count, Array(parts.prefix(rootParts.count)) == rootParts else {
            throw fail("is not inside the kubelet directory \(directory)")
        }
        // Start from the real kubelet directory and resolve the rest one component at a time.
        var resolved = Self.components(realDirectory)
        var pending = Array(parts.dropFirst(rootParts.count))[...]
        var hops = 0
        while let part = pending.popFirst() {
            let candidate = (resolved + [part]).joinedPath()
            var info = stat()
            if lstat(candidate, &info) != 0 {
                guard errno == ENOENT else { throw fail("cannot be examined at \(candidate): \(errnoText(errno))") }
                resolved.append(part)
                resolved.append(contentsOf: pending)
                break
            }
            guard info.st_mode & S_IFMT == S_IFLNK else {
                resolved.append(part)
                continue
            }
            hops += 1
            guard hops <= 40 else { throw fail("has too many levels of symbolic links") }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(candidate, &buffer, Int(PATH_MAX))
            guard n > 0 else { throw fail("has an unreadable symbolic link at \(candidate)") }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // Earlier components are real directories, so '..' in the link resolves lexically.
            var next = target.hasPrefix("/") ? [] : resolved
            for component in Self.components(target) {
                if component == ".." { _ = next.popLast() } else { next.append(component) }
            }
            resolved = []
            pending = (next + Array(pending))[...]
        }
        let result = resolved.joinedPath()
        guard result.hasPrefix(realDirectory == "/" ? "/" : realDirectory + "/") else {
            throw fail("leads outside the kubelet directory \(directory) through a symbolic link (to \(result))")
        }
        return result
    }

    static func components(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
    }
}

extension Array where Element == String {
    func joinedPath() -> String { "/" + joined(separator: "/") }
}
