#if canImport(Glibc)
import Glibc
#endif
import Platform
import Synchronization

/// Waits for a descriptor of one's own (an inotify instance, a pipe) to become readable on the
/// process-wide event loop, so that no thread blocks in `poll` or `read` meanwhile.
package enum DescriptorWait {
    /// Why ``readable(_:timeout:)`` returned.
    package enum Outcome: Sendable, Hashable {
        /// The descriptor is readable, or reports an error or a hangup a read will show.
        case readable
        /// The timeout passed first.
        case timedOut
        /// The waiting task was cancelled.
        case cancelled
    }

    /// Suspends until `fd` is readable, `timeout` has passed (nil: no limit), or the task is
    /// cancelled. One wait per descriptor at a time; a descriptor the loop cannot watch (epoll
    /// refuses it) waits for the timeout or the cancellation only.
    package static func readable(_ fd: Int32, timeout: Duration?) async -> Outcome {
        if Task.isCancelled { return .cancelled }
        let loop: EventLoop
        do { loop = try SharedLoop.get() } catch {
            // No loop thread could be started: only the clock or a cancellation ends the wait.
            do {
                repeat { try await Task.sleep(for: timeout ?? .seconds(3600)) } while timeout == nil
            } catch {
                return .cancelled
            }
            return .timedOut
        }
        let waiter = ReadinessWaiter(loop: loop, fd: fd, timeout: timeout)
        // The closures capture the waiter alone: it is their context, no box to allocate and free.
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                waiter.hand(continuation)
                loop.execute { waiter.start() }
            }
        } onCancel: {
            loop.execute { waiter.finish(.cancelled) }
        }
    }
}

/// One ``DescriptorWait/readable(_:timeout:)`` on the loop. Loop thread only but for `handed`,
/// which is what makes the `@unchecked Sendable` sound: other threads reach it through
/// `EventLoop.execute`, and hand over the continuation under a lock.
private final class ReadinessWaiter: LoopSelectable, @unchecked Sendable {
    let loop: EventLoop
    let fd: Int32
    let timeout: Duration?
    /// The waiting task's continuation until the loop takes it.
    private let handed = Mutex<CheckedContinuation<DescriptorWait.Outcome, Never>?>(nil)
    private var continuation: CheckedContinuation<DescriptorWait.Outcome, Never>?
    private var token: UInt64?
    private var timer: LoopTimer?
    /// Set once the wait is over; a cancellation may end it before it started.
    private var outcome: DescriptorWait.Outcome?

    init(loop: EventLoop, fd: Int32, timeout: Duration?) {
        self.loop = loop
        self.fd = fd
        self.timeout = timeout
    }

    /// Gives the waiting task's continuation to ``start()``; any thread.
    func hand(_ continuation: CheckedContinuation<DescriptorWait.Outcome, Never>) {
        handed.withLock { $0 = continuation }
    }

    func start() {
        guard let continuation = handed.withLock({ c in defer { c = nil }; return c }) else { return }
        if let outcome {
            continuation.resume(returning: outcome)
            return
        }
        self.continuation = continuation
        token = try? loop.register(fd, events: Epoll.readable, self)
        if let timeout {
            // A strong capture: finish() cancels the timer, which drops the closure.
            timer = loop.schedule(after: timeout) { self.finish(.timedOut) }
        }
    }

    func handleEvent(_ events: UInt32) { finish(.readable) }

    func finish(_ result: DescriptorWait.Outcome) {
        guard outcome == nil else { return }
        outcome = result
        if let token { loop.deregister(fd, token: token) }
        token = nil
        timer?.cancel()
        timer = nil
        continuation?.resume(returning: result)
        continuation = nil
    }
}
