#if canImport(Glibc)
package import Glibc
#endif
import CPlatform

/// Runs blocking work on a thread of ``BlockingPool/shared`` and resumes the caller with its
/// result once it is done: one hop to a worker and one back.
///
/// For work that blocks (a subprocess, `mount`, `mkfs`, a file copy, a handler that sleeps): the
/// caller's thread (an event loop, the Swift task pool) keeps serving other work meanwhile.
///
/// - Parameter body: The blocking work.
/// - Returns: What `body` returns.
/// - Throws: What `body` throws, with its type.
public func offload<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    try await awaitJob(BlockingPool.shared.submit, body)
}

/// Where blocking work runs: threads of its own, started on demand and named after the pool.
///
/// Not Dispatch's global queues: on Linux the Swift task pool runs on them and they are as wide as
/// the machine has cores, so a few blocked calls (mkfs takes seconds) would stall every task in the
/// process. An idle worker is reused; a new one starts when none is idle, up to ``threadLimit``
/// (then work waits in order); a worker without work for ``idleTimeout`` exits, so a process that
/// has been quiet that long holds no spare threads (nor their stacks and malloc arenas).
public final class BlockingPool: @unchecked Sendable {
    // The lock box is audited: every stored `var` is touched only with `lock` held.

    /// The pool ``offload(_:)`` uses: at most 64 threads, each gone after 5 s without work.
    public static let shared = BlockingPool()

    /// The threads' name (the first 15 bytes show in `/proc`).
    public let name: String
    private let lock = ConditionLock()
    private var maxThreads: Int
    private var idleNanos: UInt64
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var idle = 0
    private var threads = 0

    /// Creates a pool; its threads start with the first work.
    package init(maxThreads: Int = 64, idleTimeout: Duration = .seconds(5), name: String = "offload") {
        self.maxThreads = max(1, maxThreads)
        self.idleNanos = Self.clampedIdle(idleTimeout)
        self.name = name
    }

    /// The most threads that run work at once (at least 1).
    ///
    /// Lowering it never stops a running thread: the extra ones exit as they next go idle.
    public var threadLimit: Int {
        get { lock.withLock { maxThreads } }
        set {
            lock.withLock {
                maxThreads = max(1, newValue)
                lock.broadcast()
            }
        }
    }

    /// How long a thread waits for work before it exits (at least 1 ms). Idle threads take a new
    /// value at once.
    public var idleTimeout: Duration {
        get { lock.withLock { .nanoseconds(Int64(clamping: idleNanos)) } }
        set {
            lock.withLock {
                idleNanos = Self.clampedIdle(newValue)
                lock.broadcast()
            }
        }
    }

    /// The threads that exist now, busy or idle.
    public var threadCount: Int { lock.withLock { threads } }

    /// The threads waiting for work now.
    package var idleThreadCount: Int { lock.withLock { idle } }

    private static func clampedIdle(_ timeout: Duration) -> UInt64 {
        max(UInt64(clamping: timeout.wholeNanoseconds), 1_000_000)
    }

    /// Runs `work` on a worker thread.
    package func submit(_ work: @escaping @Sendable () -> Void) {
        let spawn = lock.withLock {
            queue.append(work)
            // An idle thread counts as idle until it wakes and takes the lock, so several jobs
            // queued at once would all be left to it: one new thread per job no idle one will take.
            let spawn = queue.count - head > idle && threads < maxThreads
            if spawn { threads += 1 }
            lock.signal()
            return spawn
        }
        if spawn { startWorker() }
    }

    private func startWorker() {
        do throws(SystemError) {
            try spawnThread(detached: true) { self.work() }
        } catch {
            // No thread could be made (a resource limit): the threads that exist take the work;
            // with none, it runs here rather than waiting for a later submit.
            let orphans = lock.withLock { () -> [@Sendable () -> Void] in
                threads -= 1
                guard threads == 0 else { return [] }
                defer {
                    queue.removeAll()
                    head = 0
                }
                return Array(queue[head...])
            }
            for work in orphans { work() }
        }
    }

    private func work() {
        setCurrentThreadName(name)
        lock.lock()
        while true {
            let start = monotonicNanos()
            var timedOut = false
            // A thread above the limit (after it was lowered) leaves instead of taking more work.
            while head == queue.count && !timedOut && threads <= maxThreads {
                idle += 1
                timedOut = !lock.wait(until: start &+ idleNanos)
                idle -= 1
            }
            if head == queue.count || threads > maxThreads {
                threads -= 1
                lock.unlock()
                return
            }
            let item = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: queue.capacity <= 64)
                head = 0
            }
            lock.unlock()
            item()
            lock.lock()
        }
    }
}

/// One dedicated thread that runs submitted jobs in order, for a C library with process-wide
/// state that must be called from one thread at a time (liblvm2cmd). It lives as long as the
/// process.
package final class SerialThread: @unchecked Sendable {
    // The lock box is audited: every stored `var` is touched only with `lock` held.
    private let lock = ConditionLock()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    /// Delayed jobs, earliest deadline (monotonic nanoseconds) first.
    private var timers: [(deadline: UInt64, job: @Sendable () -> Void)] = []

    /// Starts the thread, named `name` (the first 15 bytes show in `/proc`).
    package init(name: String) {
        do throws(SystemError) {
            try spawnThread(detached: true) {
                setCurrentThreadName(name)
                self.loop()
            }
        } catch {
            preconditionFailure("cannot start a thread: \(error)")
        }
    }

    /// Queues `job`; it runs after every job queued before it.
    package func submit(_ job: @escaping @Sendable () -> Void) {
        lock.withLock {
            jobs.append(job)
            lock.signal()
        }
    }

    /// Queues `job` to run once `delay` has passed, between the jobs queued by then.
    package func submit(after delay: Duration, _ job: @escaping @Sendable () -> Void) {
        let deadline = monotonicNanos() &+ UInt64(clamping: delay.wholeNanoseconds)
        lock.withLock {
            let index = timers.firstIndex { $0.deadline > deadline } ?? timers.endIndex
            timers.insert((deadline, job), at: index)
            lock.signal()
        }
    }

    /// Runs `work` on the thread and returns its result to the awaiting caller.
    package func run<T: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        try await awaitJob(submit, work)
    }

    private func loop() {
        lock.lock()
        while true {
            let job: @Sendable () -> Void
            if head < jobs.count {
                job = jobs[head]
                head += 1
                if head == jobs.count {
                    jobs.removeAll(keepingCapacity: true)
                    head = 0
                }
            } else if let first = timers.first, first.deadline <= monotonicNanos() {
                job = timers.removeFirst().job
            } else {
                _ = lock.wait(until: timers.first?.deadline)
                continue
            }
            lock.unlock()
            job()
            lock.lock()
        }
    }
}

/// Hands `work` to `submit` and suspends until it has run; resumes with its result or its error.
private func awaitJob<T: Sendable, E: Error>(
    _ submit: (@escaping @Sendable () -> Void) -> Void, _ work: @escaping @Sendable () throws(E) -> T
) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
        submit { continuation.resume(returning: Result(catching: work)) }
    }
    return try result.get()
}

/// A pthread mutex and a condition variable on the monotonic clock.
final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits, with the lock held, for a signal or until `deadline` (``monotonicNanos()``; nil: no
    /// deadline). Returns false when the deadline passed.
    func wait(until deadline: UInt64?) -> Bool {
        guard let deadline else {
            pthread_cond_wait(condition, mutex)
            return true
        }
        var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &time) != ETIMEDOUT
    }

    func signal() { pthread_cond_signal(condition) }
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// Starts a thread running `body`; a detached one frees itself when `body` returns, another is
/// waited for with `pthread_join`.
@discardableResult
package func spawnThread(detached: Bool, _ body: @escaping () -> Void) throws(SystemError) -> pthread_t {
    final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
    let box = Unmanaged.passRetained(Body(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<Body>.fromOpaque(box).release()
        throw SystemError(call: "pthread_create", errno: rc)
    }
    if detached { pthread_detach(thread) }
    return thread
}

/// Names the calling thread; the first 15 bytes show in `/proc`.
package func setCurrentThreadName(_ name: String) {
    platform_set_thread_name(String(name.prefix(15)))
}

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`).
@inline(__always)
package func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

extension Duration {
    /// The duration in whole nanoseconds (a fraction dropped), clamped to `Int`'s range.
    package var wholeNanoseconds: Int {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, carry) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow || carry { return seconds < 0 ? .min : .max }
        return Int(total)
    }
}
