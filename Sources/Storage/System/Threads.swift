import Dispatch
import Glibc
import Platform
import Synchronization

/// Where blocking system work (subprocesses, mount, ioctl, file copies) runs: threads of its own.
///
/// Not Dispatch's global queues: on Linux the Swift concurrency pool runs on them and they are
/// as wide as the machine has cores, so a few blocked calls (mkfs takes seconds) would stall
/// every task in the process. Idle workers are reused; a new one is started when none is idle
/// (up to 64, then jobs wait for a worker); a worker idle for `idleTimeout` exits, so a quiet
/// process holds no spare threads (nor their stacks and malloc arenas).
package final class BlockingPool: Sendable {
    /// The process's pool.
    package static let shared = BlockingPool()
    static let maximumThreads = 64

    /// How long a worker waits for a job before it exits.
    let idleTimeout: Duration

    /// Creates a pool whose workers exit after `idleTimeout` without work.
    init(idleTimeout: Duration = .seconds(5)) { self.idleTimeout = idleTimeout }

    /// The number of worker threads running now, idle or busy.
    var threadCount: Int { state.withLock { $0.threads } }

    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var idle = 0
        var threads = 0
    }
    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)

    /// Runs `job` on a worker thread.
    package func submit(_ job: @escaping @Sendable () -> Void) {
        enum Action { case wake, spawn, wait }
        let action = state.withLock { s -> Action in
            s.jobs.append(job)
            if s.idle > 0 {
                s.idle -= 1
                return .wake
            }
            if s.threads < Self.maximumThreads {
                s.threads += 1
                return .spawn
            }
            return .wait
        }
        switch action {
        case .wake: wakeup.signal()
        case .spawn: startWorker()
        case .wait: break
        }
    }

    /// Runs `body` on a worker thread and suspends until it returns.
    package func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: body()) }
        }
    }

    private func startWorker() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                Unmanaged<BlockingPool>.fromOpaque(raw!).takeRetainedValue().work()
                return nil
            }, box.toOpaque())
        if rc == 0 {
            pthread_detach(thread)
        } else {
            // No thread could be made (resource limit): a running worker will take the job later,
            // or, with none running, it runs here.
            box.release()
            let job = state.withLock { s -> (@Sendable () -> Void)? in
                s.threads -= 1
                return s.threads == 0 && !s.jobs.isEmpty ? s.jobs.removeFirst() : nil
            }
            job?()
        }
    }

    private func work() {
        let timeoutNanoseconds = max(0, idleTimeout.wholeNanoseconds)
        while true {
            let job = state.withLock { s -> (@Sendable () -> Void)? in
                if s.jobs.isEmpty {
                    s.idle += 1
                    return nil
                }
                return s.jobs.removeFirst()
            }
            if let job {
                job()
                continue
            }
            if wakeup.wait(timeout: .now() + .nanoseconds(timeoutNanoseconds)) == .success { continue }
            // Timed out. `idle` counts the waiting workers that no `submit` has claimed with a signal
            // yet: when one is left, this worker takes that place and exits. Otherwise every waiter,
            // this one included, has been claimed, and the signal for it is on its way.
            let exits = state.withLock { s -> Bool in
                guard s.idle > 0 else { return false }
                s.idle -= 1
                s.threads -= 1
                return true
            }
            if exits { return }
            wakeup.wait()
        }
    }
}

/// One dedicated operating-system thread that runs submitted jobs in order. Everything a C library
/// with process-global state (liblvm2cmd) needs happens on it.
final class SerialThread: Sendable {
    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let wakeup = DispatchSemaphore(value: 0)

    /// Starts the thread.
    init() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                let owner = Unmanaged<SerialThread>.fromOpaque(raw!).takeRetainedValue()
                owner.loop()
            }, box.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread)
    }

    /// Queues `job`; it runs after every job queued before it.
    func submit(_ job: @escaping @Sendable () -> Void) {
        jobs.withLock { $0.append(job) }
        wakeup.signal()
    }

    /// Runs `work` on the thread and returns its result to the awaiting caller.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws(StorageError) -> T) async throws(StorageError) -> T {
        let result: Result<T, StorageError> = await withCheckedContinuation { continuation in
            submit {
                do throws(StorageError) { continuation.resume(returning: .success(try work())) } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    private func loop() -> Never {
        while true {
            wakeup.wait()
            let job = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            job?()
        }
    }
}
