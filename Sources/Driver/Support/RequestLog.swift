package import Platform
import RPCCore
package import ProtoWire

/// Logs each call once: method, outcome, duration; at debug level also the request, described
/// by the generated code with secret fields redacted, and the number of secrets (`secrets=N`).
package struct RequestLog: Sendable {
    /// Where records go.
    package let logger: Logger

    package init(logger: Logger) { self.logger = logger }

    /// Runs `body` for `method`, logging the request and its outcome; errors pass through as `RPCError`.
    package func call<Request: ProtoMessage, Response: Sendable>(
        _ method: String, _ request: Request, _ body: () async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        if logger.isEnabled(.debug) {
            logger.debug(
                "\(method) called", [("request", Self.describe(request)), ("secrets", String(request.protoSecretValueCount))])
        }
        do {
            let response = try await body()
            // Polled, read-only calls succeed quietly; anything that changes state is logged at info.
            let level: LogLevel = Self.readOnly.contains(method) ? .debug : .info
            logger.log(level, "\(method) ok", [("duration", Self.milliseconds(since: start))])
            return response
        } catch {
            let rpc = ErrorMapping.rpcError(error, while: method)
            let level: LogLevel = rpc.code == .internalError ? .error : .warning
            logger.log(level, "\(method) failed: \(rpc.code): \(rpc.message)", [("duration", Self.milliseconds(since: start))])
            throw rpc
        }
    }

    /// The request's description: generated messages print `csi_secret` fields as `<redacted>`,
    /// and mount flags are replaced by their count.
    package static func describe<Request: ProtoMessage>(_ request: Request) -> String {
        if let redacting = request as? any MountFlagRedacting {
            return String(describing: redacting.redactingMountFlags())
        }
        return String(describing: request)
    }

    /// Calls that change nothing; kubelets, provisioners and probes poll them.
    static let readOnly: Set<String> = [
        "GetPluginInfo", "GetPluginCapabilities", "Probe", "ControllerGetCapabilities", "ValidateVolumeCapabilities",
        "ListVolumes", "GetCapacity", "ControllerGetVolume", "ListSnapshots", "GetSnapshot", "NodeGetInfo",
        "NodeGetCapabilities", "NodeGetVolumeStats",
    ]

    static func milliseconds(since start: ContinuousClock.Instant) -> String {
        let d = ContinuousClock.now - start
        let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        let micros = Int(ms * 1000)
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction + " ms"
    }
}
