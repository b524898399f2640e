import Dispatch
import Glibc
import Synchronization

/// Where blocking system work (subprocesses, mount, ioctl, file copies) runs: Dispatch threads, not
/// the Swift cooperative pool.
struct BlockingPool: Sendable {
    static let shared = BlockingPool()
    private let queue = DispatchQueue(label: "swift-csi.storage.blocking", attributes: .concurrent)
    func submit(_ job: @escaping @Sendable () -> Void) { queue.async(execute: job) }
}

/// One dedicated operating-system thread that runs submitted jobs in order. Everything a C library
/// with process-global state (liblvm2cmd) needs happens on it.
final class SerialThread: Sendable {
    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let wakeup = DispatchSemaphore(value: 0)

    /// Starts the thread; `name` says what it is for.
    init(name: String) {
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
