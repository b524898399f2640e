import Glibc
import Testing

@testable import Storage

/// Path-safety vectors on a real directory tree with symbolic links.
@Suite struct KubeletPathPolicyTests {
    /// A kubelet-like tree: root/pods/p1 (dir), root/inside -> pods (relative), root/escape -> /etc,
    /// root/pods/up -> ../../.. (escapes), root/abs-inside -> <root>/pods, and an outside dir.
    func withTree(_ body: (String, KubeletPathPolicy) throws -> Void) throws {
        let base = "/tmp/kpp-" + uniqueSuffix()
        let root = base + "/kubelet"
        defer { _ = try? runProgram("rm", ["-rf", base]) }
        for dir in [base, root, root + "/pods", root + "/pods/p1", base + "/outside"] { mkdir(dir, 0o755) }
        symlink("pods", root + "/inside")
        symlink("/etc", root + "/escape")
        symlink("../../..", root + "/pods/up")
        symlink(root + "/pods", root + "/abs-inside")
        symlink("../outside", root + "/sneaky")
        symlink("loop2", root + "/loop1")
        symlink("loop1", root + "/loop2")
        try body(root, try KubeletPathPolicy(kubeletDirectory: root))
    }

    @Test func acceptsPathsInsideAndResolvesLinksThatStayInside() throws {
        try withTree { root, policy in
            let vectors = [
                (root + "/pods/p1/volumes/x/mount", root + "/pods/p1/volumes/x/mount"),
                (root + "/inside/p1", root + "/pods/p1"),
                (root + "/abs-inside/p1/new", root + "/pods/p1/new"),
                (root + "//pods/./p1/", root + "/pods/p1"),
            ]
            for (path, resolved) in vectors {
                let result = try policy.validate(path, field: "target_path")
                #expect(result == resolved)
            }
        }
    }

    @Test func rejectsEscapes() throws {
        try withTree { root, policy in
            let vectors: [(String, String)] = [
                ("", "is empty"), ("pods/p1", "not an absolute path"), (root + "/pods/../../x", "'..'"),
                ("/etc/passwd", "not inside"), (root, "not inside"), (root + "x/pods", "not inside"),
                (root + "/escape/shadow", "outside the kubelet directory"), (root + "/pods/up/etc", "outside the kubelet directory"),
                (root + "/sneaky/file", "outside the kubelet directory"), (root + "/loop1/x", "too many levels"),
                (root + "/pods/p\u{0}1", "NUL"),
            ]
            for (path, reason) in vectors {
                #expect {
                    _ = try policy.validate(path, field: "staging_target_path")
                } throws: { error in
                    guard let error = error as? StorageError else { return false }
                    return error.code == .invalidArgument && error.message.contains(reason) && error.message.contains("staging_target_path")
                }
            }
        }
    }

    @Test func kubeletDirectoryMustExistAndBeAbsolute() {
        #expect(throws: StorageError.self) { try KubeletPathPolicy(kubeletDirectory: "var/lib/kubelet") }
        #expect(throws: StorageError.self) { try KubeletPathPolicy(kubeletDirectory: "/nonexistent-\(uniqueSuffix())") }
    }
}
