#if canImport(Glibc)
import Glibc
#endif
import Platform

/// Runs a blocking closure on a small pool of worker threads and resumes the caller when it is done.
///
/// Use it from a handler for work that blocks (LVM commands, `mount`, `mkfs`): the event loop keeps
/// serving other calls meanwhile. The call hops to a worker once and back once. How many workers
/// may run at once and how long an idle one lingers are set with ``OffloadPool``.
///
/// - Parameter body: The blocking work.
/// - Returns: What `body` returns.
/// - Throws: What `body` throws.
public func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        OffloadThreads.shared.submit {
            do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
        }
    }
}

/// Process-wide settings of the threads behind ``offload(_:)``.
///
/// Threads start on demand, up to ``threadLimit``; one that finds no work for
/// ``idleThreadTimeout`` exits, so a process that has been idle that long holds none. Work
/// submitted while all threads are busy waits in order.
public enum OffloadPool {
    /// The most threads that run offloaded work at once (at least 1). Default 4.
    ///
    /// Lowering it never stops a running thread: the extra ones exit as they next go idle.
    public static var threadLimit: Int {
        get { OffloadThreads.shared.limits.threads }
        set { OffloadThreads.shared.setLimits(threads: newValue, idleTimeout: nil) }
    }

    /// How long a thread waits for more work before it exits (at least 1 ms). Default 5 s.
    public static var idleThreadTimeout: Duration {
        get { OffloadThreads.shared.limits.idleTimeout }
        set { OffloadThreads.shared.setLimits(threads: nil, idleTimeout: newValue) }
    }

    /// The threads that exist now, busy or idle.
    public static var threadCount: Int { OffloadThreads.shared.threadCount }
}

/// A pool of threads, started on demand, that run blocking work and exit after an idle timeout.
/// The lock box below is audited: every stored `var` is touched only with `mutex` held.
final class OffloadThreads: @unchecked Sendable {
    static let shared = OffloadThreads(maxThreads: 4, idleTimeout: .seconds(5), name: "h2-offload")

    /// The thread name (at most 15 bytes are kept), so the threads can be told apart in `/proc`.
    let name: String
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var maxThreads: Int
    private var idleNanos: UInt64
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var idle = 0
    private var threads = 0

    init(maxThreads: Int, idleTimeout: Duration, name: String) {
        self.maxThreads = max(1, maxThreads)
        self.idleNanos = max(UInt64(clamping: idleTimeout.wholeNanoseconds), 1_000_000)
        self.name = name
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    /// The current limits.
    var limits: (threads: Int, idleTimeout: Duration) {
        locked { (maxThreads, .nanoseconds(Int64(clamping: idleNanos))) }
    }

    /// Changes the limits; nil leaves one as it is. Idle threads re-check their timeout at once.
    func setLimits(threads: Int?, idleTimeout: Duration?) {
        locked {
            if let threads { maxThreads = max(1, threads) }
            if let idleTimeout { idleNanos = max(UInt64(clamping: idleTimeout.wholeNanoseconds), 1_000_000) }
            pthread_cond_broadcast(cond)
        }
    }

    /// Threads alive now.
    var threadCount: Int { locked { threads } }

    private func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    func submit(_ work: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        queue.append(work)
        let spawn = idle == 0 && threads < maxThreads
        if spawn { threads += 1 }
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
        if spawn { startThread() }
    }

    private func startThread() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        if pthread_create(&tid, nil, { arg in
            let pool = Unmanaged<OffloadThreads>.fromOpaque(arg!).takeRetainedValue()
            pool.work()
            return nil
        }, box) == 0 {
            pthread_detach(tid)
        } else {
            Unmanaged<OffloadThreads>.fromOpaque(box).release()
            // No thread could be made (a resource limit): the threads that exist take the work;
            // with none, it runs here rather than waiting for a later submit.
            var orphans: [@Sendable () -> Void] = []
            pthread_mutex_lock(mutex)
            threads -= 1
            if threads == 0 {
                orphans = Array(queue[head...])
                queue.removeAll()
                head = 0
            }
            pthread_mutex_unlock(mutex)
            for work in orphans { work() }
        }
    }

    private func work() {
        setCurrentThreadName(name)
        pthread_mutex_lock(mutex)
        while true {
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            var timedOut = false
            // A thread above the limit (after it was lowered) leaves instead of taking more work.
            while head == queue.count && !timedOut && threads <= maxThreads {
                let end = Self.nanos(deadline) &+ idleNanos
                var ts = timespec(tv_sec: Int(end / 1_000_000_000), tv_nsec: Int(end % 1_000_000_000))
                idle += 1
                timedOut = pthread_cond_timedwait(cond, mutex, &ts) == ETIMEDOUT
                idle -= 1
            }
            if head == queue.count || threads > maxThreads {
                threads -= 1
                pthread_mutex_unlock(mutex)
                return
            }
            let item = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: queue.capacity <= 64)
                head = 0
            }
            pthread_mutex_unlock(mutex)
            item()
            pthread_mutex_lock(mutex)
        }
    }

    private static func nanos(_ ts: timespec) -> UInt64 {
        UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
