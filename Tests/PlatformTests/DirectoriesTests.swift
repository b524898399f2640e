import Glibc
import Testing

@testable import Platform

@Suite struct DirectoriesTests {
    /// Every name in the directory but `.` and `..`, subdirectories included; nil for a directory
    /// that cannot be opened.
    @Test func directoryEntriesListsNamesWithoutDotAndDotDot() throws {
        var template = Array("/tmp/platform-dir-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let root = String(cString: try #require(made))
        defer {
            for name in ["a.json", "b", "sub/c"] { _ = unlink(root + "/" + name) }
            _ = rmdir(root + "/sub")
            _ = rmdir(root)
        }
        #expect(directoryEntries(root) == [])
        try makeDirectories(root + "/sub", mode: 0o755)
        for name in ["a.json", "b", "sub/c"] {
            let fd = creat(root + "/" + name, 0o600)
            #expect(fd >= 0)
            close(fd)
        }
        #expect(directoryEntries(root)?.sorted() == ["a.json", "b", "sub"])
        #expect(directoryEntries(root + "/missing") == nil)
        #expect(directoryEntries(root + "/b") == nil)
    }
}
