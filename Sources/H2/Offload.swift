#if canImport(Glibc)
import Glibc
#endif
import CH2Sys

/// Runs a blocking closure on a small pool of worker threads and resumes the caller when it is done.
///
/// Use it from a handler for work that blocks (LVM commands, `mount`, `mkfs`): the event loop keeps
/// serving other calls meanwhile. The call hops to a worker once and back once.
///
/// - Parameter body: The blocking work.
/// - Returns: What `body` returns.
/// - Throws: What `body` throws.
public func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        OffloadPool.shared.submit {
            do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
        }
    }
}

/// A few threads, started on demand, that run blocking work. The lock box below is audited:
/// `queue`, `idle` and `threads` are touched only with `mutex` held.
final class OffloadPool: @unchecked Sendable {
    static let shared = OffloadPool(maxThreads: 4)

    private let maxThreads: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var idle = 0
    private var threads = 0

    init(maxThreads: Int) {
        self.maxThreads = maxThreads
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    func submit(_ work: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        queue.append(work)
        let spawn = idle == 0 && threads < maxThreads
        if spawn { threads += 1 }
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
        if spawn {
            let box = Unmanaged.passRetained(self).toOpaque()
            var tid = pthread_t()
            if pthread_create(&tid, nil, { arg in
                let pool = Unmanaged<OffloadPool>.fromOpaque(arg!).takeRetainedValue()
                pool.work()
                return nil
            }, box) == 0 {
                pthread_detach(tid)
            } else {
                Unmanaged<OffloadPool>.fromOpaque(box).release()
                pthread_mutex_lock(mutex)
                threads -= 1
                pthread_mutex_unlock(mutex)
            }
        }
    }

    private func work() {
        h2_set_thread_name("h2-offload")
        while true {
            pthread_mutex_lock(mutex)
            while head == queue.count {
                idle += 1
                pthread_cond_wait(cond, mutex)
                idle -= 1
            }
            let item = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            pthread_mutex_unlock(mutex)
            item()
        }
    }
}
