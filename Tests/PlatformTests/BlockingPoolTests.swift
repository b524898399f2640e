import Dispatch
import Glibc
import Synchronization
import TestSupport
import Testing

@testable import Platform

/// A gate blocked workers wait on, and a count of how many are inside at once.
final class Gate: Sendable {
    private let mutex = Mutex((open: false, inside: 0, most: 0, done: 0))
    func enterAndWait() {
        mutex.withLock { $0.inside += 1; $0.most = max($0.most, $0.inside) }
        while !mutex.withLock({ $0.open }) { usleep(1000) }
        mutex.withLock { $0.inside -= 1; $0.done += 1 }
    }
    func open() { mutex.withLock { $0.open = true } }
    var inside: Int { mutex.withLock { $0.inside } }
    var most: Int { mutex.withLock { $0.most } }
    var done: Int { mutex.withLock { $0.done } }
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

/// Each test but the first and the last runs its own pool under a thread name no other code uses,
/// so other suites' offloaded work cannot disturb the counts.
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
                        await offload {
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

    /// Jobs queued together while one thread waits idle get a thread each: the idle one takes one
    /// of them, not all (it still counts as idle until it wakes, so two jobs would both be left to it).
    @Test func jobsQueuedTogetherBesideAnIdleThreadEachGetAThread() async {
        let pool = BlockingPool(idleTimeout: .seconds(30), name: "pool-together")
        let ready = Gate()
        ready.open()
        pool.submit { ready.enterAndWait() }
        #expect(await eventually { ready.done == 1 && pool.idleThreadCount == 1 })
        let gate = Gate()
        for _ in 0..<3 { pool.submit { gate.enterAndWait() } }
        #expect(await eventually { gate.inside == 3 })
        #expect(pool.threadCount == 3)
        gate.open()
        #expect(await eventually { gate.done == 3 })
    }

    /// Workers that run out of work exit after the idle timeout, and a pool that has shrunk to no
    /// threads starts one again for the next job; jobs queued while workers time out all run.
    @Test func idleWorkersExit() async throws {
        let pool = BlockingPool(idleTimeout: .milliseconds(100), name: "pool-idle-exit")
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

    @Test func threadsStopAtTheLimitAndQueuedWorkStillRuns() async {
        let pool = BlockingPool(maxThreads: 2, idleTimeout: .seconds(30), name: "h2-offl-limit")
        let gate = Gate()
        for _ in 0..<6 { pool.submit { gate.enterAndWait() } }
        #expect(await eventually { gate.inside == 2 })
        #expect(pool.threadCount == 2)
        #expect(threadsNamed("h2-offl-limit") == 2)
        gate.open()
        #expect(await eventually { gate.done == 6 })
        #expect(gate.most == 2)
        #expect(pool.threadCount == 2)  // idle, not yet timed out
    }

    @Test func idleThreadsExitAndNewWorkStartsThemAgain() async {
        let pool = BlockingPool(maxThreads: 3, idleTimeout: .milliseconds(200), name: "h2-offl-idle")
        let gate = Gate()
        for _ in 0..<3 { pool.submit { gate.enterAndWait() } }
        #expect(await eventually { gate.inside == 3 })
        #expect(threadsNamed("h2-offl-idle") == 3)
        gate.open()
        #expect(await eventually { pool.threadCount == 0 && threadsNamed("h2-offl-idle") == 0 })

        // Counted while the job holds its thread: once it is done the thread may time out at once.
        let again = Gate()
        pool.submit { again.enterAndWait() }
        #expect(await eventually { again.inside == 1 })
        #expect(pool.threadCount == 1)
        #expect(threadsNamed("h2-offl-idle") == 1)
        again.open()
        #expect(await eventually { again.done == 1 })
        #expect(await eventually { pool.threadCount == 0 && threadsNamed("h2-offl-idle") == 0 })
    }

    @Test func loweringTheLimitRetiresExtraThreadsAsTheyGoIdle() async {
        let pool = BlockingPool(maxThreads: 3, idleTimeout: .seconds(30), name: "h2-offl-lower")
        let gate = Gate()
        for _ in 0..<3 { pool.submit { gate.enterAndWait() } }
        #expect(await eventually { gate.inside == 3 })
        pool.threadLimit = 1
        gate.open()
        #expect(await eventually { gate.done == 3 })
        #expect(await eventually { pool.threadCount == 1 && threadsNamed("h2-offl-lower") == 1 })
        #expect(pool.threadLimit == 1)

        // A shorter timeout reaches threads already waiting.
        pool.idleTimeout = .milliseconds(50)
        #expect(await eventually { pool.threadCount == 0 && threadsNamed("h2-offl-lower") == 0 })
    }

    @Test func limitsAreClampedToWorkableValues() {
        let pool = BlockingPool(maxThreads: 0, idleTimeout: .zero, name: "h2-offl-clamp")
        #expect(pool.threadLimit == 1)
        #expect(pool.idleTimeout == .milliseconds(1))
    }

    @Test func offloadRunsOnAPoolThreadAndReturnsItsResult() async throws {
        struct WorkerError: Error {}
        // Counted on the worker: once the job is done its thread may reach the idle timeout before
        // a starved task gets to look.
        let (name, threads) = await offload { (callingThreadName(), BlockingPool.shared.threadCount) }
        #expect(name == "offload")
        #expect(BlockingPool.shared.threadLimit == 64)
        #expect(BlockingPool.shared.idleTimeout == .seconds(5))
        #expect(threads >= 1)
        await #expect(throws: WorkerError.self) {
            try await offload { () throws(WorkerError) in throw WorkerError() }
        }
    }
}

/// A serial thread runs jobs in the order they were queued, and delayed jobs once their time has
/// come, between the others.
@Suite struct SerialThreadTests {
    @Test func jobsRunInOrderAndDelayedJobsWhenDue() async throws {
        let thread = SerialThread(name: "serial-test")
        let order = Mutex<[String]>([])
        thread.submit(after: .milliseconds(200)) { order.withLock { $0.append("late") } }
        thread.submit(after: .milliseconds(50)) { order.withLock { $0.append("soon") } }
        for i in 0..<3 { thread.submit { order.withLock { $0.append("\(i)") } } }
        let (first, name) = await thread.run { (order.withLock { $0 }, callingThreadName()) }
        #expect(first == ["0", "1", "2"])
        #expect(name == "serial-test")
        #expect(await eventually { order.withLock { $0.count } == 5 })
        #expect(order.withLock { $0 } == ["0", "1", "2", "soon", "late"])
        await #expect(throws: CancellationError.self) {
            try await thread.run { () throws(CancellationError) in throw CancellationError() }
        }
    }
}
