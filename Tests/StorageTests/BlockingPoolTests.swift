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
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
