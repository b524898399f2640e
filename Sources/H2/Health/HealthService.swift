public import ProtoWire
public import RPCCore
import Synchronization

/// The serving status of each service, as the built-in `grpc.health.v1.Health` service reports it.
///
/// The empty name stands for the server as a whole. Watchers see every change.
public final class HealthStatus: Sendable {
    /// A serving status.
    public typealias Status = GRPCHealth.HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status] = [:]
        var watchers: [Int: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher = 0
    }
    private let state = Mutex(State())

    /// Creates a table where the server as a whole (`""`) is SERVING.
    public init() {
        state.withLock { $0.statuses[""] = .serving }
    }

    /// Sets the status of `service` (`""` for the whole server) and tells its watchers.
    public func setStatus(_ status: Status, forService service: String = "") {
        let watchers = state.withLock { s -> [AsyncStream<Status>.Continuation] in
            s.statuses[service] = status
            return s.watchers.values.filter { $0.service == service }.map(\.continuation)
        }
        for w in watchers { w.yield(status) }
    }

    /// The status of `service`, nil when it is unknown.
    public func status(forService service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    /// Every known status.
    public var all: [String: Status] { state.withLock { $0.statuses } }

    /// Marks every service NOT_SERVING (for example during shutdown).
    public func markAllNotServing() {
        let services = state.withLock { Array($0.statuses.keys) }
        for s in services { setStatus(.notServing, forService: s) }
    }

    /// The current status (SERVICE_UNKNOWN when unknown), then every change.
    func watch(_ service: String) -> AsyncStream<Status> {
        let (stream, continuation) = AsyncStream<Status>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { s -> Int in
            let id = s.nextWatcher
            s.nextWatcher += 1
            s.watchers[id] = (service, continuation)
            continuation.yield(s.statuses[service] ?? .serviceUnknown)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }
}

/// The standard `grpc.health.v1.Health` service: Check, List and Watch over a ``HealthStatus``.
public struct HealthService: GRPCServiceRegistrable {
    /// The statuses it reports.
    public let status: HealthStatus

    /// Creates the service over `status`.
    public init(status: HealthStatus) { self.status = status }

    /// The descriptor of `health.proto`, which a server serving this service describes through reflection.
    public static let protoFiles: [ProtoFileDescriptor] = [GRPCHealth.HealthProtoFile.descriptor]

    /// `/grpc.health.v1.Health/Check`.
    public static let check = GRPCMethodDescriptor(service: "grpc.health.v1.Health", method: "Check", kind: .unary)
    /// `/grpc.health.v1.Health/List`.
    public static let list = GRPCMethodDescriptor(service: "grpc.health.v1.Health", method: "List", kind: .unary)
    /// `/grpc.health.v1.Health/Watch`.
    public static let watch = GRPCMethodDescriptor(service: "grpc.health.v1.Health", method: "Watch", kind: .serverStreaming)

    public func register(with router: inout GRPCRouter) {
        let status = self.status
        router.registerUnary(Self.check) { (request: GRPCHealth.HealthCheckRequest, _) in
            guard let s = status.status(forService: request.service) else {
                throw RPCError(code: .notFound, message: "unknown service \(request.service)")
            }
            return GRPCHealth.HealthCheckResponse(status: s)
        }
        router.registerUnary(Self.list) { (_: GRPCHealth.HealthListRequest, _) in
            GRPCHealth.HealthListResponse(statuses: status.all.mapValues { GRPCHealth.HealthCheckResponse(status: $0) })
        }
        router.registerServerStreaming(Self.watch) {
            (request: GRPCHealth.HealthCheckRequest, writer: ResponseStreamWriter<GRPCHealth.HealthCheckResponse>, _) in
            for await s in status.watch(request.service) {
                try Task.checkCancellation()
                try await writer.write(GRPCHealth.HealthCheckResponse(status: s))
            }
        }
    }
}
