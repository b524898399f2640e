// The registrar's gRPC calls: to the driver (Identity, Node), to a registration socket (GetInfo), and the
// registration server itself. Everything else in the registrar is plain logic over these.
package import Platform
internal import CSI
internal import Glibc
internal import H2
internal import RPCCore

/// What a driver said in GetPluginInfo.
package struct DriverPluginInfo: Sendable, Hashable {
    package var name: String
    package var vendorVersion: String
}

/// What a driver said in NodeGetInfo: what the kubelet records in CSINode and the node annotation.
package struct DriverNodeInfo: Sendable, Hashable {
    package var nodeID: String
    package var maxVolumesPerNode: Int64
    package var topologySegments: [String: String]
}

/// Calls on a CSI driver's socket, as the registrar and the kubelet make them.
package struct DriverClient: Sendable {
    package let socketPath: String
    package let timeout: Duration
    /// Told each call's method, status code and duration.
    package let observer: (any RegistrarObserver)?

    package init(socketPath: String, timeout: Duration, observer: (any RegistrarObserver)? = nil) {
        self.socketPath = socketPath
        self.timeout = timeout
        self.observer = observer
    }

    private var options: CallOptions { CallOptions(timeout: timeout) }

    /// `csi.v1.Identity/GetPluginInfo`.
    package func pluginInfo() async throws -> DriverPluginInfo {
        let response = try await call("/csi.v1.Identity/GetPluginInfo") { try await IdentityClient(channel: $0).getPluginInfo(options: options) }
        return DriverPluginInfo(name: response.name, vendorVersion: response.vendorVersion)
    }

    /// `csi.v1.Identity/Probe`: whether the driver says it is ready (nil: it did not say, which means ready).
    package func probe() async throws -> Bool? {
        try await call("/csi.v1.Identity/Probe") { try await IdentityClient(channel: $0).probe(options: options) }.ready
    }

    /// `csi.v1.Node/NodeGetInfo`.
    package func nodeInfo() async throws -> DriverNodeInfo {
        let response = try await call("/csi.v1.Node/NodeGetInfo") { try await NodeClient(channel: $0).nodeGetInfo(options: options) }
        return DriverNodeInfo(
            nodeID: response.nodeID, maxVolumesPerNode: response.maxVolumesPerNode,
            topologySegments: response.accessibleTopology?.segments ?? [:])
    }

    /// One call; `method` is the full name (`/csi.v1.Identity/Probe`), its last part names it in errors.
    private func call<R: Sendable>(_ method: String, _ body: (GRPCChannel) async throws -> R) async throws -> R {
        let name = String(method.split(separator: "/").last ?? Substring(method))
        guard let observer else { return try await Transport.call(socketPath: socketPath, method: name, body) }
        let clock = ContinuousClock()
        let start = clock.now
        var code = 0
        defer { observer.record(.driverCall(method: method, code: code, duration: clock.now - start)) }
        do {
            return try await Transport.call(socketPath: socketPath, method: name, body)
        } catch let error as RegistrarError {
            code = error.grpcCode ?? RPCError.Code.unknown.rawValue
            throw error
        } catch {
            code = RPCError.Code.unknown.rawValue
            throw error
        }
    }
}

/// Calls on a registration socket, as the kubelet makes them.
package struct RegistrationClient: Sendable {
    package let socketPath: String
    package let timeout: Duration

    package init(socketPath: String, timeout: Duration) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    /// `pluginregistration.Registration/GetInfo`.
    package func getInfo() async throws -> PluginAnnouncement {
        let options = CallOptions(timeout: timeout)
        let info = try await Transport.call(socketPath: socketPath, method: "GetInfo") {
            try await PluginRegistration.RegistrationClient(channel: $0).getInfo(options: options)
        }
        return PluginAnnouncement(type: info.type, name: info.name, endpoint: info.endpoint, supportedVersions: info.supportedVersions)
    }
}

/// The `pluginregistration.Registration` server on the registration socket.
package final class RegistrationEndpoint: Sendable {
    package let socketPath: String
    private let server: GRPCServer

    private init(socketPath: String, server: GRPCServer) {
        self.socketPath = socketPath
        self.server = server
    }

    /// Serves GetInfo and NotifyRegistrationStatus from `state` on a new socket at `socketPath`, owner-only (0600).
    package static func start(
        socketPath: String, state: RegistrationState, logger: Logger, observer: (any RegistrarObserver)? = nil,
        onAction: @escaping @Sendable (RegistrationState.Action) -> Void
    ) async throws -> RegistrationEndpoint {
        var router = GRPCRouter()
        router.register(RegistrationService(state: state, logger: logger, observer: observer, onAction: onAction))
        var configuration = GRPCServerConfiguration(address: socketPath)
        configuration.socketMode = 0o600
        // The registrar's other work (its main task, driver calls, /healthz) is on the shared loop.
        configuration.usesSharedEventLoop = true
        configuration.maxConnections = 64
        configuration.maxReceiveMessageSize = 64 * 1024
        configuration.reflectionFiles = [PluginRegistration.PluginregistrationProtoFile.descriptor]
        let server = GRPCServer(router: router, configuration: configuration)
        do {
            try server.start()
        } catch {
            throw RegistrarError(code: .pathConflict, message: "cannot serve the registration socket \(socketPath)", underlying: "\(error)")
        }
        return RegistrationEndpoint(socketPath: socketPath, server: server)
    }

    /// Stops serving; in-flight calls get a short grace.
    package func stop() async {
        await server.shutdown(grace: .milliseconds(500))
    }
}

/// One call on a fresh channel to a Unix socket; a failure becomes a ``RegistrarError`` naming the socket,
/// the method and the gRPC status.
enum Transport {
    static func call<R: Sendable>(
        socketPath: String, method: String, _ body: (GRPCChannel) async throws -> R
    ) async throws -> R {
        let channel = GRPCChannel(target: "unix://" + socketPath)
        defer { channel.close() }
        do {
            return try await body(channel)
        } catch let error as RPCError {
            var failure = RegistrarError(code: .driverUnavailable, message: "\(method) on \(socketPath) failed", underlying: error.description)
            failure.grpcCode = error.code.rawValue
            throw failure
        }
    }
}

/// The `pluginregistration.Registration` service: answers from a ``RegistrationState``.
struct RegistrationService: PluginRegistration.RegistrationService {
    let state: RegistrationState
    let logger: Logger
    var observer: (any RegistrarObserver)? = nil
    let onAction: @Sendable (RegistrationState.Action) -> Void

    func getInfo(_ request: PluginRegistration.InfoRequest, context: ServerContext) async throws -> PluginRegistration.PluginInfo {
        let announcement = state.getInfo()
        // The registrar's own health check calls GetInfo too; only the kubelet's calls are news.
        if context.peer?.pid == getpid() {
            logger.debug("Received GetInfo call from this process's health check")
        } else {
            logger.info("Received GetInfo call: \(Self.describe(context.peer))")
            observer?.record(.kubeletGetInfo)
        }
        var info = PluginRegistration.PluginInfo()
        info.type = announcement.type
        info.name = announcement.name
        info.endpoint = announcement.endpoint
        info.supportedVersions = announcement.supportedVersions
        return info
    }

    func notifyRegistrationStatus(
        _ request: PluginRegistration.RegistrationStatus, context: ServerContext
    ) async throws -> PluginRegistration.RegistrationStatusResponse {
        logger.info("Received NotifyRegistrationStatus call: \(Self.describe(request)) \(Self.describe(context.peer))")
        let action = state.notify(registered: request.pluginRegistered, error: request.error)
        observer?.record(.kubeletNotified(registered: request.pluginRegistered))
        observer?.record(.phase(request.pluginRegistered ? .registered : .refused))
        if request.pluginRegistered {
            logger.info("the kubelet registered \"\(state.announcement.name)\" (endpoint \(state.announcement.endpoint))")
        } else {
            logger.error("Registration process failed with error: \(request.error.isEmpty ? "(no reason given)" : request.error); the registration socket is recreated so the kubelet tries again")
        }
        onAction(action)
        return PluginRegistration.RegistrationStatusResponse()
    }

    /// The kubelet's verdict in words: `registered=true`, or `registered=false error="<the kubelet's reason>"`.
    static func describe(_ status: PluginRegistration.RegistrationStatus) -> String {
        if status.error.isEmpty { return status.pluginRegistered ? "registered=true" : "registered=false (no error given)" }
        return "registered=\(status.pluginRegistered) error=\(JSON.print(.string(status.error)))"
    }

    static func describe(_ peer: PeerCredentials?) -> String {
        guard let peer else { return "(peer unknown)" }
        return "(peer pid \(peer.pid), uid \(peer.uid))"
    }
}
