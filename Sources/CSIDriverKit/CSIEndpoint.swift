public import RPCCore
import CSI
import H2
public import Platform

#if canImport(Glibc)
    import Glibc
#endif

/// Serves CSI services on a Unix socket until SIGTERM or SIGINT, then drains: what a driver's
/// `main` does once it has made its servers.
///
/// ```swift
/// let endpoint = CSIEndpoint(socketPath: "/var/lib/kubelet/plugins/hostpath.csi.example.com/csi.sock", logger: logger)
/// try await endpoint.run([identity, controller, node])   // returns after SIGTERM, socket removed
/// ```
///
/// On the signal the server stops accepting connections and sends GOAWAY, calls in flight have
/// ``shutdownGrace`` to finish (then their connections are closed), the socket file is removed and
/// ``run(_:whenServing:)`` returns. gRPC health and reflection (with the CSI descriptors) are
/// served beside the services.
public struct CSIEndpoint: Sendable {
    /// The Unix socket to serve, for example `/var/lib/kubelet/plugins/<driver>/csi.sock`. A
    /// stale socket there is replaced; one another process answers on is refused.
    public var socketPath: String
    /// Permission bits of the socket (0660 by default).
    public var socketMode: UInt32 = 0o660
    /// Permission bits of the socket's directory when it has to be made (0750 by default).
    public var socketDirectoryMode: UInt32 = 0o750
    /// How long calls in flight may run after the signal (10 s by default).
    public var shutdownGrace: Duration = .seconds(10)
    /// Where start and stop are logged.
    public var logger: Logger
    /// Where ``socketPath`` came from (a flag), named when it cannot be served.
    package var socketPathOrigin: String?

    /// Describes an endpoint; nothing is served until ``run(_:whenServing:)``.
    public init(socketPath: String, logger: Logger = .disabled) {
        self.socketPath = socketPath
        self.logger = logger
    }

    /// Serves `services` until SIGTERM or SIGINT, then drains and returns.
    /// - Parameters:
    ///   - services: the servers to serve, for example an ``IdentityServer``, a
    ///     ``ControllerServer`` and a ``NodeServer``.
    ///   - whenServing: called once the socket accepts connections.
    /// - Throws: ``DriverStartError`` when the signals cannot be caught or the socket cannot be served.
    public func run(
        _ services: [any GRPCServiceRegistrable], whenServing: @Sendable () -> Void = {}
    ) async throws(DriverStartError) {
        var router = GRPCRouter()
        for service in services { router.register(service) }
        try await run(router: router, whenServing: whenServing)
    }

    /// Serves `router`'s methods until SIGTERM or SIGINT, then drains and returns.
    /// - Throws: ``DriverStartError`` when the signals cannot be caught or the socket cannot be served.
    public func run(router: GRPCRouter, whenServing: @Sendable () -> Void = {}) async throws(DriverStartError) {
        // A peer that hangs up mid-write must cost an EPIPE on that connection, not the process.
        signal(SIGPIPE, SIG_IGN)
        // Catch SIGTERM/SIGINT from here on, so one arriving during start-up is not fatal.
        let termination: TerminationSignals
        do { termination = try TerminationSignals() } catch {
            throw DriverStartError(message: "cannot catch SIGTERM and SIGINT: \(error)")
        }
        try await run(router: router, whenServing: whenServing, until: { await termination.wait() })
    }

    /// Serves until `stop` returns (the name of what stopped it, for the log), then drains.
    package func run(
        router: GRPCRouter, whenServing: @Sendable () -> Void, until stop: @escaping @Sendable () async -> String
    ) async throws(DriverStartError) {
        var configuration = GRPCServerConfiguration(address: socketPath)
        configuration.socketMode = socketMode
        configuration.socketDirectoryMode = socketDirectoryMode
        configuration.reflectionFiles = [CsiProtoFile.descriptor]
        let server = GRPCServer(router: router, configuration: configuration)
        do { try server.start() } catch {
            throw DriverStartError(message: "cannot serve on \(socketPath)\(socketPathOrigin.map { " (\($0))" } ?? ""): \(error)")
        }
        whenServing()
        let grace = shutdownGrace
        let logger = self.logger
        // A child task, not an unstructured one: it stays on the executor this task prefers (the
        // shared event loop) instead of starting the global executor's threads to wait on.
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                let name = await stop()
                guard !Task.isCancelled else { return }
                logger.info("received \(name): no new calls; in-flight calls have \(grace) to finish")
                await server.shutdown(grace: grace)
            }
            // Started above, so this only waits for the shutdown.
            try? await server.run()
            group.cancelAll()
        }
        logger.info("stopped; removed \(socketPath)")
    }
}

/// Why the driver could not start, naming the path or flag.
public struct DriverStartError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    /// Creates an error.
    public init(message: String) { self.message = message }
    public var description: String { message }
}
