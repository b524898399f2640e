public import Platform
import CSI
import H2
package import RPCCore
public import Storage

#if canImport(Glibc)
    import Glibc
#endif

/// The whole `csi-lvm-driver` process: builds the backend and services from its command-line
/// configuration, serves them on the socket, and shuts down cleanly on SIGTERM or SIGINT.
/// A driver of your own wires ``IdentityServer``, ``ControllerServer``, ``NodeServer`` and
/// ``CSIEndpoint`` itself instead.
public struct DriverProcess: Sendable {
    /// The validated configuration.
    public let configuration: DriverConfiguration
    /// Where the driver logs.
    public let logger: Logger
    /// Told when each CSI call finishes: its method (`CreateVolume`), the gRPC status code (0: OK)
    /// and how long it took; for metrics. Runs on the serving thread: it must not block.
    public var onCallFinished: (@Sendable (_ method: String, _ code: Int, _ duration: Duration) -> Void)?
    /// Given the storage backend once it is made, before the first call; for metrics.
    public var onBackendReady: (@Sendable (any VolumeBackend) -> Void)?

    /// Creates the process description; nothing starts until ``run()``.
    public init(configuration: DriverConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight calls finish within the
    /// grace period, removes the socket and returns (``CSIEndpoint``).
    /// - Throws: a start-up error naming the path or flag that is wrong.
    public func run() async throws {
        var endpoint = CSIEndpoint(socketPath: configuration.socketPath, logger: logger)
        endpoint.socketMode = configuration.socketMode
        endpoint.shutdownGrace = configuration.shutdownGrace
        endpoint.socketPathOrigin = "--endpoint"
        let configuration = self.configuration
        let logger = self.logger
        try await endpoint.run(router: try makeRouter()) {
            logger.info(
                "csi-lvm-driver \(DriverConfiguration.version) serving",
                [
                    ("driver", configuration.driverName), ("node", configuration.nodeID),
                    ("endpoint", configuration.socketPath), ("mode", configuration.mode.rawValue),
                    ("backend", configuration.backend.rawValue),
                ])
        }
    }

    /// A router with the services the mode asks for, over the configured backend.
    package func makeRouter() throws -> GRPCRouter {
        let backend = try makeBackend()
        var options = configuration.driverOptions
        options.groupSnapshots = configuration.mode.servesController && backend.supportsGroupSnapshots
        onBackendReady?(backend)
        let log = RequestLog(logger: logger, onFinished: onCallFinished)
        let locks = VolumeLocks()
        var router = GRPCRouter()
        router.register(IdentityServer(options: options, backend: backend, log: log))
        var node: NodeServer?
        if configuration.mode.servesNode {
            let paths: KubeletPathPolicy
            do { paths = try KubeletPathPolicy(kubeletDirectory: configuration.kubeletDir) } catch {
                throw DriverStartError(message: "--kubelet-dir \(configuration.kubeletDir): \(error.message)")
            }
            // Only a backend that records IO limits has any to apply.
            let throttle = backend.recordsIOLimits ? CgroupIOThrottle(root: configuration.cgroupRoot, kubeletDirectory: paths.realDirectory) : nil
            node = NodeServer(
                options: options, backend: backend, mounter: LinuxMounter(), encryptor: configuration.encryptor, paths: paths,
                locks: locks, log: log, throttle: throttle)
        }
        if configuration.mode.servesController {
            // A modify reaches the pods through the node service of this process (--mode all).
            router.register(ControllerServer(options: options, backend: backend, locks: locks, log: log, ioLimitsNode: node))
        }
        if options.groupSnapshots {
            router.register(GroupControllerServer(options: options, backend: backend, locks: locks, log: log))
        }
        if let node { router.register(node) }
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
                        }, stateDirectory: configuration.stateDir))
            } catch {
                throw DriverStartError(message: "LVM backend (--volume-group/--vg-pattern/--thin-pool): \(error)")
            }
            do throws(SystemError) {
                try makeDirectories(configuration.stateDir, mode: 0o750)
            } catch {
                throw DriverStartError(message: "--state-dir \(configuration.stateDir): cannot create \(error.subject): \(errnoText(error.errno))")
            }
            // A driver killed while a group snapshot held volumes still left them held: writers of
            // those volumes wait until they are released.
            do throws(StorageError) {
                for released in try backend.releaseLeftoverHolds() {
                    logger.warning("released what an interrupted group snapshot held", [("what", released)])
                }
            } catch {
                logger.error("an interrupted group snapshot left volumes held and they could not be released", [("error", error.message)])
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
