import CSIDriverKit
import H2
import RPCCore
import Testing

@Suite struct VolumeLocksTests {
    @Test func secondOperationOnSameVolumeIsAborted() async throws {
        let locks = VolumeLocks()
        let (entered, enteredContinuation) = AsyncStream<Void>.makeStream()
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
        let first = Task {
            try await locks.withLock("vol-1") {
                enteredContinuation.yield()
                for await _ in release { break }
                return 1
            }
        }
        for await _ in entered { break }
        let error = await #expect(throws: RPCError.self) {
            try await locks.withLock("vol-1") { 2 }
        }
        #expect(error?.code == .aborted)
        #expect(error?.message == "an operation for volume vol-1 is already in progress")
        // Another volume is not blocked.
        #expect(try await locks.withLock("vol-2") { 3 } == 3)
        releaseContinuation.yield()
        #expect(try await first.value == 1)
        #expect(!locks.isLocked("vol-1"))
        #expect(try await locks.withLock("vol-1") { 4 } == 4)
    }

    @Test func lockIsReleasedWhenBodyThrows() async {
        struct Boom: Error {}
        let locks = VolumeLocks()
        await #expect(throws: Boom.self) { try await locks.withLock("v") { () async throws -> Int in throw Boom() } }
        #expect(!locks.isLocked("v"))
    }

    @Test func multipleIDsAreAllOrNothing() async throws {
        let locks = VolumeLocks()
        #expect(locks.tryLock("b"))
        let error = await #expect(throws: RPCError.self) { try await locks.withLock("a", "b") { 1 } }
        #expect(error?.code == .aborted)
        #expect(!locks.isLocked("a"), "a lock taken before the busy one is released again")
        locks.unlock("b")
        #expect(try await locks.withLock("a", "b", "a") { 5 } == 5)
    }
}
