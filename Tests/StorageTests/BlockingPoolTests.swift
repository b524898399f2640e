import Dispatch
import Synchronization
import Testing

@testable import Storage

@Suite struct BlockingPoolTests {
    /// Blocking work never waits for another blocking job to finish: eight jobs that block at once
    /// all run at once (Dispatch's global queues would run two on this machine and starve the
    /// Swift task pool meanwhile).
    @Test func blockingJobsRunSideBySide() async throws {
        let started = Counter()
        let gate = DispatchSemaphore(value: 0)
        let jobs = 8
        let finished = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<jobs {
                    group.addTask {
                        try? await offload { () throws(StorageError) in
                            started.value.add(1, ordering: .relaxed)
                            gate.wait()
                        }
                    }
                }
            }
        }
        // A generous bound: the jobs start in milliseconds on an idle machine.
        let deadline = ContinuousClock.now + .seconds(30)
        while started.value.load(ordering: .relaxed) < jobs && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(started.value.load(ordering: .relaxed) == jobs)
        for _ in 0..<jobs { gate.signal() }
        await finished.value
    }

    /// Workers that run out of work exit after the idle timeout, and a pool that has shrunk to no
    /// threads starts one again for the next job; jobs queued while workers time out all run.
    @Test func idleWorkersExit() async throws {
        let pool = BlockingPool(idleTimeout: .milliseconds(100))
        let gate = DispatchSemaphore(value: 0)
        let ran = Counter()
        for _ in 0..<4 {
            pool.submit {
                gate.wait()
                ran.value.add(1, ordering: .relaxed)
            }
        }
        #expect(pool.threadCount == 4)
        for _ in 0..<4 { gate.signal() }
        let deadline = ContinuousClock.now + .seconds(30)
        while pool.threadCount > 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(ran.value.load(ordering: .relaxed) == 4)
        #expect(pool.threadCount == 0)
        // Jobs submitted around the moments workers time out are never lost.
        for round in 0..<20 {
            try await Task.sleep(for: .milliseconds(round % 2 == 0 ? 95 : 105))
            pool.submit { ran.value.add(1, ordering: .relaxed) }
        }
        while ran.value.load(ordering: .relaxed) < 24 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(ran.value.load(ordering: .relaxed) == 24)
        while pool.threadCount > 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(pool.threadCount == 0)
    }
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
