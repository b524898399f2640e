import CSI
package import Platform
import RPCCore
package import ProtoWire

/// Logs each call once: method, outcome, duration. At debug level (`-v 5`) also the call, its
/// request and its response or error the way the kubernetes-csi sidecars print them
/// (`GRPC call: /csi.v1.Node/NodeGetInfo`, `GRPC request: {...}`, `GRPC response: {...}`): proto3
/// JSON with the `.proto` field names, every `csi_secret` field at any depth as
/// `"***stripped***"`, mount flags replaced by their count, and the number of secrets (`secrets=N`).
package struct RequestLog: Sendable {
    /// Where records go.
    package let logger: Logger
    /// Told each call's method, gRPC status code (0: OK) and duration, for metrics.
    package let onFinished: (@Sendable (_ method: String, _ code: Int, _ duration: Duration) -> Void)?

    package init(logger: Logger, onFinished: (@Sendable (String, Int, Duration) -> Void)? = nil) {
        self.logger = logger
        self.onFinished = onFinished
    }

    /// Runs `body` for `method`, logging the request and its outcome; errors pass through as `RPCError`.
    package func call<Request: ProtoMessage, Response: Sendable>(
        _ method: String, _ request: Request, _ body: () async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let debug = logger.isEnabled(.debug)
        if debug {
            logger.debug("GRPC call: \(Self.path(of: method))")
            logger.debug("GRPC request: \(Self.describe(request))", [("secrets", String(request.protoSecretValueCount))])
        }
        do {
            let response = try await body()
            if debug, let message = response as? any ProtoMessage {
                logger.debug("GRPC response: \(Self.json(message))")
            }
            // Polled, read-only calls succeed quietly; anything that changes state is logged at info.
            let level: LogLevel = Self.readOnly.contains(method) ? .debug : .info
            logger.log(level, "\(method) ok", [("duration", Self.milliseconds(since: start))])
            onFinished?(method, 0, ContinuousClock.now - start)
            return response
        } catch {
            let rpc = ErrorMapping.rpcError(error, while: method)
            if debug { logger.debug("GRPC error: rpc error: code = \(rpc.code) desc = \(rpc.message)") }
            let level: LogLevel = rpc.code == .internalError ? .error : .warning
            logger.log(level, "\(method) failed: \(rpc.code): \(rpc.message)", [("duration", Self.milliseconds(since: start))])
            onFinished?(method, rpc.code.rawValue, ContinuousClock.now - start)
            throw rpc
        }
    }

    /// The request as the sidecars log it: proto3 JSON with `.proto` names, `csi_secret` fields
    /// as `"***stripped***"`, and mount flags replaced by their count.
    package static func describe<Request: ProtoMessage>(_ request: Request) -> String {
        if let redacting = request as? any MountFlagRedacting, let redacted = redacting.redactingMountFlags() as? any ProtoMessage {
            return json(redacted)
        }
        return json(request)
    }

    /// A message as JSON for the log; a message the mapping cannot write (which the tests rule
    /// out for CSI's) falls back to its redacted description.
    static func json(_ message: some ProtoMessage) -> String {
        let options = ProtoJSONCoder.Options(preservingProtoFieldNames: true, strippingSecrets: true)
        return (try? ProtoJSONCoder.csi.json(message, options: options)) ?? String(describing: message)
    }

    /// The full gRPC path of a CSI method, for example `/csi.v1.Node/NodeGetInfo`.
    package static func path(of method: String) -> String {
        let service: String
        if identityMethods.contains(method) {
            service = "Identity"
        } else if method.hasPrefix("Node") {
            service = "Node"
        } else if method.contains("VolumeGroupSnapshot") || method == "GroupControllerGetCapabilities" {
            service = "GroupController"
        } else if method.contains("SnapshotMetadata") || method == "GetMetadataAllocated" || method == "GetMetadataDelta" {
            service = "SnapshotMetadata"
        } else {
            service = "Controller"
        }
        return "/csi.v1.\(service)/\(method)"
    }

    static let identityMethods: Set<String> = ["GetPluginInfo", "GetPluginCapabilities", "Probe"]

    /// Calls that change nothing; kubelets, provisioners and probes poll them.
    static let readOnly: Set<String> = [
        "GetPluginInfo", "GetPluginCapabilities", "Probe", "ControllerGetCapabilities", "ValidateVolumeCapabilities",
        "ListVolumes", "GetCapacity", "ControllerGetVolume", "ListSnapshots", "GetSnapshot", "NodeGetInfo",
        "NodeGetCapabilities", "NodeGetVolumeStats", "GroupControllerGetCapabilities", "GetVolumeGroupSnapshot",
    ]

    static func milliseconds(since start: ContinuousClock.Instant) -> String {
        let d = ContinuousClock.now - start
        let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        let micros = Int(ms * 1000)
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction + " ms"
    }
}
