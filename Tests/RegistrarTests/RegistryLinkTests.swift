import Glibc
import Testing

@testable import Registrar

@Suite struct RegistryLinkTests {
    @Test func createsLinkAndRemovesOnlyItsOwn() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let registry = scratch.path + "/kubelet-registry"
        mkdir(registry, 0o755)
        let target = scratch.path + "/custom-reg.sock"
        let link = RegistryLink(directory: registry, target: target)
        #expect(link.path == registry + "/custom-reg.sock")
        #expect(try link.place() == .created)
        #expect(PathInspection.kind(of: link.path) == .symlink(target: target))
        #expect(try link.place() == .alreadyPresent)
        #expect(link.remove())
        #expect(PathInspection.kind(of: link.path) == .missing)
        #expect(!link.remove())
    }

    @Test func replacesADanglingLink() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let target = scratch.path + "/x-reg.sock"
        let stale = scratch.path + "/gone/x-reg.sock"
        mkdir(scratch.path + "/registry", 0o755)
        symlink(stale, scratch.path + "/registry/x-reg.sock")
        let link = RegistryLink(directory: scratch.path + "/registry", target: target)
        #expect(try link.place() == .replacedDangling(stale))
        #expect(link.isPlaced)
    }

    @Test func refusesToReplaceAnotherRegistration() throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let registry = scratch.path + "/registry"
        mkdir(registry, 0o755)
        let target = scratch.path + "/x-reg.sock"
        let link = RegistryLink(directory: registry, target: target)

        // A live link to something else.
        let other = scratch.path + "/other-reg.sock"
        writeFile(other)
        symlink(other, link.path)
        #expect(throws: RegistrarError.self) { try link.place() }
        do { try link.place() } catch {
            #expect(error.code == .pathConflict)
            #expect(error.message.contains(link.path) && error.message.contains(other))
        }
        #expect(!link.remove())
        #expect(PathInspection.kind(of: link.path) == .symlink(target: other))
        unlink(link.path)

        // A socket of another registrar registering directly.
        let listener = try UnixListener(path: link.path)
        defer { listener.close() }
        do { try link.place() } catch {
            #expect(error.code == .pathConflict)
            #expect(error.message.contains("a Unix socket"))
        }
        #expect(PathInspection.kind(of: link.path) == .socket)
    }

    @Test func missingRegistryDirectoryIsNamed() {
        let link = RegistryLink(directory: "/nonexistent-registry-dir", target: "/tmp/a-reg.sock")
        #expect {
            try link.place()
        } throws: { error in
            (error as? RegistrarError)?.message.contains("/nonexistent-registry-dir does not exist") == true
        }
    }
}
