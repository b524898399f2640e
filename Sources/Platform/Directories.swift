#if canImport(Glibc)
import Glibc
#endif

/// Creates the directory `path` and any missing parents, each with `mode` (less the umask), like
/// `mkdir -p`. Something that already exists at a path is left as it is, whatever it is: the
/// caller checks what it needs there.
///
/// - Throws: ``SystemError`` for `mkdir`, naming the directory that could not be created.
package func makeDirectories(_ path: String, mode: UInt32) throws(SystemError) {
    var info = stat()
    if path.isEmpty || stat(path, &info) == 0 { return }
    var parent = Substring(path)
    while parent.count > 1 && parent.hasSuffix("/") { parent = parent.dropLast() }
    if let slash = parent.lastIndex(of: "/"), slash != parent.startIndex {
        try makeDirectories(String(parent[..<slash]), mode: mode)
    }
    if mkdir(path, mode_t(mode)) != 0 && errno != EEXIST {
        throw SystemError(call: "mkdir", errno: errno, subject: path)
    }
}

/// Flushes the directory that holds `path` (`fsync` of its parent), so that a file just created,
/// renamed or removed there stays so after a power cut. Best effort: a directory that cannot be
/// opened is left as it is.
package func syncParentDirectory(of path: String) {
    var parent = Substring(path)
    while parent.count > 1 && parent.hasSuffix("/") { parent = parent.dropLast() }
    guard let slash = parent.lastIndex(of: "/") else { return syncDirectory(".") }
    syncDirectory(slash == parent.startIndex ? "/" : String(parent[..<slash]))
}

private func syncDirectory(_ directory: String) {
    let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    close(fd)
}

/// The names in directory `path`, without `.` and `..`, in the order `readdir` gives them; nil when
/// it cannot be opened (`errno` tells why).
package func directoryEntries(_ path: String) -> [String]? {
    guard let directory = opendir(path) else { return nil }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
