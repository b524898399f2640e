import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@testable import H2

/// How many threads of this process carry `name`, from /proc/self/task.
func threadsNamed(_ name: String) -> Int {
    guard let dir = opendir("/proc/self/task") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while let entry = readdir(dir) {
        let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard tid.first?.isNumber == true else { continue }
        let fd = open("/proc/self/task/\(tid)/comm", O_RDONLY)
        guard fd >= 0 else { continue }  // the thread has just exited
        var buf = [UInt8](repeating: 0, count: 32)
        let n = read(fd, &buf, buf.count)
        close(fd)
        if String(decoding: buf.prefix(max(0, n)), as: UTF8.self).trimmingSuffix() == name { count += 1 }
    }
    return count
}

/// Polls `condition` every 10 ms for up to `seconds`; returns whether it came true.
func eventually(_ seconds: Double = 10, _ condition: () -> Bool) async -> Bool {
    let rounds = Int(seconds * 100)
    for _ in 0..<rounds {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// A gate blocked workers wait on, and a count of how many are inside at once.
final class Gate: @unchecked Sendable {
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

/// Each test runs its own pool under a thread name no other code uses, so other suites' offloaded
/// work cannot disturb the counts.
@Suite struct OffloadTests {
    @Test func threadsStopAtTheLimitAndQueuedWorkStillRuns() async {
        let pool = OffloadThreads(maxThreads: 2, idleTimeout: .seconds(30), name: "h2-offl-limit")
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
        let pool = OffloadThreads(maxThreads: 3, idleTimeout: .milliseconds(200), name: "h2-offl-idle")
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
        let pool = OffloadThreads(maxThreads: 3, idleTimeout: .seconds(30), name: "h2-offl-lower")
        let gate = Gate()
        for _ in 0..<3 { pool.submit { gate.enterAndWait() } }
        #expect(await eventually { gate.inside == 3 })
        pool.setLimits(threads: 1, idleTimeout: nil)
        gate.open()
        #expect(await eventually { gate.done == 3 })
        #expect(await eventually { pool.threadCount == 1 && threadsNamed("h2-offl-lower") == 1 })
        #expect(pool.limits.threads == 1)

        // A shorter timeout reaches threads already waiting.
        pool.setLimits(threads: nil, idleTimeout: .milliseconds(50))
        #expect(await eventually { pool.threadCount == 0 && threadsNamed("h2-offl-lower") == 0 })
    }

    @Test func limitsAreClampedToWorkableValues() {
        let pool = OffloadThreads(maxThreads: 0, idleTimeout: .zero, name: "h2-offl-clamp")
        #expect(pool.limits.threads == 1)
        #expect(pool.limits.idleTimeout == .milliseconds(1))
    }

    @Test func offloadRunsOnAPoolThreadAndReturnsItsResult() async throws {
        // Counted on the worker: once the job is done its thread may reach the idle timeout before
        // a starved task gets to look.
        let (name, threads) = try await offload { (currentThreadName(), OffloadPool.threadCount) }
        #expect(name == "h2-offload")
        #expect(OffloadPool.threadLimit == 4)
        #expect(OffloadPool.idleThreadTimeout == .seconds(5))
        #expect(threads >= 1)
        await #expect(throws: RPCError.self) {
            try await offload { throw RPCError(code: .internalError, message: "from the worker") }
        }
    }
}
