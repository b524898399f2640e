public import Platform
import CSI
import H2
package import RPCCore
package import Storage

#if canImport(Glibc)
    import Glibc
#endif

/// The whole driver process: builds the backend and services from a configuration, serves them
/// on the socket, and shuts down cleanly on SIGTERM or SIGINT.
public struct DriverProcess: Sendable {
    /// The validated configuration.
    public let configuration: DriverConfiguration
    /// Where the driver logs.
    public let logger: Logger

    /// Creates the process description; nothing starts until ``run()``.
    public init(configuration: DriverConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight calls finish within the
    /// grace period, removes the socket and returns.
    /// - Throws: a start-up error naming the path or flag that is wrong.
    public func run() async throws {
        // A peer that hangs up mid-write must cost an EPIPE on that connection, not the process.
        signal(SIGPIPE, SIG_IGN)
        // Catch SIGTERM/SIGINT from here on, so one arriving during start-up is not fatal.
        let termination: TerminationSignals
        do { termination = try TerminationSignals() } catch {
            throw DriverStartError(message: "cannot catch SIGTERM and SIGINT: \(error)")
        }
        var serverConfiguration = GRPCServerConfiguration(address: configuration.socketPath)
        serverConfiguration.socketMode = configuration.socketMode
        serverConfiguration.socketDirectoryMode = 0o750
        serverConfiguration.reflectionFiles = [CsiProtoFile.descriptor]
        let server = GRPCServer(router: try makeRouter(), configuration: serverConfiguration)
        do { try server.start() } catch {
            throw DriverStartError(message: "cannot serve on \(configuration.socketPath) (--endpoint): \(error)")
        }
        logger.info(
            "csi-lvm-driver \(DriverConfiguration.version) serving",
            [
                ("driver", configuration.driverName), ("node", configuration.nodeID),
                ("endpoint", configuration.socketPath), ("mode", configuration.mode.rawValue),
                ("backend", configuration.backend.rawValue),
            ])
        let grace = configuration.shutdownGrace
        let logger = self.logger
        // A child task, not an unstructured one: it stays on the executor this task prefers (the
        // shared event loop) instead of starting the global executor's threads to wait on.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let name = await termination.wait()
                guard !Task.isCancelled else { return }
                logger.info("received \(name): no new calls; in-flight calls have \(grace) to finish")
                await server.shutdown(grace: grace)
            }
            try await server.run()
            group.cancelAll()
        }
        logger.info("stopped; removed \(configuration.socketPath)")
    }

    /// A router with the services the mode asks for, over the configured backend.
    package func makeRouter() throws -> GRPCRouter {
        let backend = try makeBackend()
        let log = RequestLog(logger: logger)
        let locks = VolumeLocks()
        var router = GRPCRouter()
        router.register(IdentityServer(configuration: configuration, backend: backend, log: log))
        if configuration.mode.servesController {
            router.register(ControllerServer(configuration: configuration, backend: backend, locks: locks, log: log))
        }
        if configuration.mode.servesNode {
            let paths: KubeletPathPolicy
            do { paths = try KubeletPathPolicy(kubeletDirectory: configuration.kubeletDir) } catch {
                throw DriverStartError(message: "--kubelet-dir \(configuration.kubeletDir): \(error.message)")
            }
            router.register(
                NodeServer(
                    configuration: configuration, backend: backend, mounter: LinuxMounter(), paths: paths, locks: locks, log: log))
        }
        return router
    }

    /// The configured storage backend (LVM or loop files).
    package func makeBackend() throws -> any VolumeBackend {
        switch configuration.backend {
        case .lvm:
            var group: String?
            var pattern: String?
            switch configuration.volumeGroups {
            case .named(let name): group = name
            case .pattern(let source): pattern = source
            }
            let backend: LVMBackend
            do {
                backend = try LVMBackend(
                    configuration: .init(
                        driverName: configuration.driverName, volumeGroup: group, volumeGroupPattern: pattern,
                        thinPool: configuration.thinPool, overprovisionRatio: configuration.overprovisionRatio,
                        scanDevices: configuration.lvmScanDevices.isEmpty ? nil : configuration.lvmScanDevices,
                        onDeviceMapperChange: { [logger] available, detail in
                            if available {
                                logger.info("device-mapper is available: logical volumes are activated", [("how", detail)])
                            } else {
                                logger.warning(
                                    "device-mapper is not available: logical volumes get no device nodes until it is (looked for again at most every \(LVMBackend.deviceMapperRetryInterval))",
                                    [("why", detail)])
                            }
                        }))
            } catch {
                throw DriverStartError(message: "LVM backend (--volume-group/--vg-pattern/--thin-pool): \(error)")
            }
            return backend
        case .loopfile:
            do {
                return try LoopFileBackend(directory: configuration.loopfileDir, driverName: configuration.driverName)
            } catch {
                throw DriverStartError(message: "loop-file backend at \(configuration.loopfileDir) (--loopfile-dir): \(error)")
            }
        }
    }
}

/// Why the driver could not start, naming the path or flag.
public struct DriverStartError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    public var description: String { message }
}
