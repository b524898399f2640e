internal import Glibc

/// Runs work that blocks in a system call (`poll`, `accept`, `recv`) on a thread of its own.
///
/// Neither the task pool nor Dispatch's global queues (as wide as the machine has cores) may be held by a
/// blocking call: a few such calls would stall every task. A thread costs tens of microseconds to start.
package enum BlockingThread {
    /// Starts a detached thread running `body`.
    package static func start(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body))
        var thread: pthread_t = 0
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        if rc == 0 {
            pthread_detach(thread)
        } else {
            // No thread could be made (resource limit): run here rather than lose the work.
            box.takeRetainedValue().body()
        }
    }

    /// Runs `body` on its own thread and suspends until it returns.
    package static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            start { continuation.resume(returning: body()) }
        }
    }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
