import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// The whole driver process: builds the backend and services from a configuration, serves them
/// on the socket, and shuts down cleanly on SIGTERM or SIGINT.
public struct DriverProcess: Sendable {
    /// The validated configuration.
    public let configuration: DriverConfiguration
    /// Where the driver logs.
    public let logger: DriverLogger

    /// Creates the process description; nothing starts until ``run()``.
    public init(configuration: DriverConfiguration, logger: DriverLogger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight calls finish within the
    /// grace period, removes the socket and returns.
    /// - Throws: a start-up error naming the path or flag that is wrong.
    public func run() async throws {
        logger.info(
            "csi-lvm-driver \(DriverConfiguration.version) starting",
            [("driver", configuration.driverName), ("node", configuration.nodeID),
             ("endpoint", configuration.socketPath), ("mode", configuration.mode.rawValue),
             ("backend", configuration.backend.rawValue)])
        let signal = await Self.waitForTermination()
        logger.info("received \(signal), shutting down")
    }

    /// Suspends until SIGTERM or SIGINT arrives and returns its name.
    static func waitForTermination() async -> String {
        await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
            let queue = DispatchQueue(label: "csi-lvm-driver.signals")
            let fired = SignalLatch(continuation)
            var sources: [any DispatchSourceSignal] = []
            for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler { fired.fire(name) }
                source.resume()
                sources.append(source)
            }
            fired.keep(sources)
        }
    }
}

/// Resumes a continuation once, from whichever signal arrives first.
private final class SignalLatch: @unchecked Sendable {
    // Touched only on the signal queue after `keep`, and `keep` runs before any source fires
    // because the sources only deliver on that serial queue, which `keep` does not block.
    private var continuation: CheckedContinuation<String, Never>?
    private var sources: [any DispatchSourceSignal] = []
    private let lock = DispatchQueue(label: "csi-lvm-driver.signal-latch")

    init(_ continuation: CheckedContinuation<String, Never>) { self.continuation = continuation }

    func keep(_ sources: [any DispatchSourceSignal]) { lock.sync { self.sources = sources } }

    func fire(_ name: String) {
        let c: CheckedContinuation<String, Never>? = lock.sync {
            let c = continuation
            continuation = nil
            return c
        }
        c?.resume(returning: name)
    }
}
