// The registrar's gRPC calls: to the driver (Identity, Node), to a registration socket (GetInfo), and the
// registration server itself. Everything else in the registrar is plain logic over these.

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

    package init(socketPath: String, timeout: Duration) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    /// `csi.v1.Identity/GetPluginInfo`.
    package func pluginInfo() async throws -> DriverPluginInfo {
        throw RegistrarError(code: .driverUnavailable, message: "no gRPC transport to \(socketPath)")
    }

    /// `csi.v1.Identity/Probe`: whether the driver says it is ready (nil: it did not say).
    package func probe() async throws -> Bool? {
        throw RegistrarError(code: .driverUnavailable, message: "no gRPC transport to \(socketPath)")
    }

    /// `csi.v1.Node/NodeGetInfo`.
    package func nodeInfo() async throws -> DriverNodeInfo {
        throw RegistrarError(code: .driverUnavailable, message: "no gRPC transport to \(socketPath)")
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
        throw RegistrarError(code: .driverUnavailable, message: "no gRPC transport to \(socketPath)")
    }
}

/// The `pluginregistration.Registration` server on the registration socket.
package final class RegistrationEndpoint: Sendable {
    package let socketPath: String

    private init(socketPath: String) { self.socketPath = socketPath }

    /// Serves GetInfo and NotifyRegistrationStatus from `state` on a new socket at `socketPath` (mode 0600).
    package static func start(
        socketPath: String, state: RegistrationState, logger: DriverLogger,
        onAction: @escaping @Sendable (RegistrationState.Action) -> Void
    ) async throws -> RegistrationEndpoint {
        throw RegistrarError(code: .systemCall, message: "no gRPC server for \(socketPath)")
    }

    /// Stops serving; the socket file is left for the caller to remove.
    package func stop() async {}
}
