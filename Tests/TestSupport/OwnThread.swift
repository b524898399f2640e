// Test support shared by the Swift test targets (`import TestSupport`).
import Dispatch
import Glibc
import Synchronization
package import Testing

/// A task executor with one operating-system thread of its own, outside the Swift concurrency
/// pool. Jobs run in the order they arrive; after ``finish()`` the thread ends once the jobs
/// already queued have run, and any later job goes to the global concurrent executor.
package final class OwnThreadExecutor: TaskExecutor, Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        var finished = false
    }
    private let state = Mutex(State())
    /// One signal per queued job, and one for ``finish()``.
    private let wakeup = DispatchSemaphore(value: 0)

    /// The thread's name (the first 15 bytes show in /proc).
    package let name: String

    /// Starts the thread.
    package init(name: String) {
        self.name = name
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                Unmanaged<OwnThreadExecutor>.fromOpaque(raw!).takeRetainedValue().run()
                return nil
            }, box.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread)
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let queued = state.withLock { state in
            if state.finished { return false }
            state.jobs.append(job)
            return true
        }
        if queued { wakeup.signal() } else { globalConcurrentExecutor.enqueue(job) }
    }

    /// Lets the thread end when its queue is empty.
    package func finish() {
        state.withLock { $0.finished = true }
        wakeup.signal()
    }

    private func run() {
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        if fd >= 0 {
            _ = write(fd, name, min(name.utf8.count, 15))
            close(fd)
        }
        while true {
            wakeup.wait()
            let next = state.withLock { state -> UnownedJob? in state.jobs.isEmpty ? nil : state.jobs.removeFirst() }
            guard let next else { return }  // the signal was finish()'s and nothing is queued
            next.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Runs each test case on a thread of its own instead of the Swift concurrency pool's (as wide
/// as the machine has cores). For tests that compute for a long time or wait on a subprocess:
/// on the pool they would hold a thread that socket, cache and registrar tests running beside
/// them need to make progress. The test case stays the same task, so its task-local context
/// goes with it and `#expect` records issues against it as anywhere else.
package struct OwnThreadTrait: TestTrait, SuiteTrait, TestScoping {
    package var isRecursive: Bool { true }

    package func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? { testCase == nil ? nil : self }

    package func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let executor = OwnThreadExecutor(name: "test-own-thread")
        defer { executor.finish() }
        try await withTaskExecutorPreference(executor) { try await function() }
    }
}

extension Trait where Self == OwnThreadTrait {
    /// Runs each test case on a thread of its own, off the Swift concurrency pool.
    package static var ownThread: Self { Self() }
}
