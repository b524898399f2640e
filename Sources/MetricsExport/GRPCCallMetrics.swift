/// Calls made or served over gRPC, as one latency histogram by method and status code: the shape of
/// kubernetes-csi's csi-lib-utils (`csi_sidecar_operations_seconds{driver_name, method_name,
/// grpc_status_code}`), so the dashboards written for the sidecars read it.
public struct GRPCCallMetrics: Sendable {
    /// csi-lib-utils' buckets, in seconds: 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 25, 50, 120, 300, 600.
    public static let defaultBuckets: [Duration] = [
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10), .seconds(15), .seconds(25), .seconds(50), .seconds(120), .seconds(300), .seconds(600),
    ]

    private let registry: MetricsRegistry
    /// The histogram's name.
    public let name: String
    private let help: String
    private let buckets: [Duration]

    /// Records into the histogram `name` of `registry`.
    public init(
        registry: MetricsRegistry, name: String = "csi_sidecar_operations_seconds",
        help: String = "Container Storage Interface operation duration with gRPC error code status total",
        buckets: [Duration] = Self.defaultBuckets
    ) {
        self.registry = registry
        self.name = name
        self.help = help
        self.buckets = buckets
    }

    /// Records one call of `method` (`/csi.v1.Identity/Probe`) that ended with the gRPC status `code`
    /// (0 for OK) after `duration`; `labels` come first (for example `driver_name`).
    public func record(method: String, code: Int, duration: Duration, labels: [(String, String)] = []) {
        let all = labels + [("grpc_status_code", Self.codeName(code)), ("method_name", method)]
        registry.histogram(name, help: help, labels: all, buckets: buckets).record(duration)
    }

    /// The gRPC code's name as Go's `codes.Code.String()` writes it (`OK`, `DeadlineExceeded`), which
    /// is what the sidecars' metrics carry; `Code(17)` for codes beyond 16.
    public static func codeName(_ code: Int) -> String {
        let names = [
            "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
            "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
            "Internal", "Unavailable", "DataLoss", "Unauthenticated",
        ]
        return names.indices.contains(code) ? names[code] : "Code(\(code))"
    }
}
