// The driver's Prometheus metrics at --metrics-address: each CSI call by method and gRPC code, and
// the process's own. Each metric is documented in docs/OPERATIONS.md.
import MetricsExport

/// Counts the driver's calls into a registry and serves it.
struct DriverMetrics: Sendable {
    let registry = MetricsRegistry()
    let calls: GRPCCallMetrics
    let driverName: String

    init(driverName: String, version: String) {
        self.driverName = driverName
        calls = GRPCCallMetrics(
            registry: registry, name: "csi_operations_seconds",
            help: "CSI calls served by the driver: duration by method and gRPC status code")
        registry.gauge(
            "csi_lvm_driver_build_info", help: "Always 1; the driver's version as a label.", labels: [("version", version)]
        ).set(1)
    }

    /// Records one served call; `method` is the CSI method's name (`CreateVolume`).
    func record(method: String, code: Int, duration: Duration) {
        calls.record(method: Self.fullName(method), code: code, duration: duration, labels: [("driver_name", driverName)])
    }

    /// `/csi.v1.<Service>/<method>`, as gRPC and the sidecars' metrics name it.
    static func fullName(_ method: String) -> String {
        let identity: Set<String> = ["GetPluginInfo", "GetPluginCapabilities", "Probe"]
        let service = identity.contains(method) ? "Identity" : method.hasPrefix("Node") ? "Node" : "Controller"
        return "/csi.v1.\(service)/\(method)"
    }
}
