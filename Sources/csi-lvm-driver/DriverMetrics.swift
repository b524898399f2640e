// The driver's Prometheus metrics at --metrics-address: each CSI call by method and gRPC code, what
// the backend holds, and the process's own. Each metric is documented in docs/OPERATIONS.md.
import CSIDriverKit
import MetricsExport
import Storage
import Synchronization

/// Counts the driver's calls into a registry and reads the backend's state at each scrape.
final class DriverMetrics: Sendable {
    let registry = MetricsRegistry()
    private let calls: GRPCCallMetrics
    private let driverName: String
    private let backend = Mutex<(any VolumeBackend)?>(nil)
    private let volumes: MetricGauge
    private let snapshots: MetricGauge

    init(driverName: String, version: String) {
        self.driverName = driverName
        calls = GRPCCallMetrics(
            registry: registry, name: "csi_operations_seconds",
            help: "CSI calls served by the driver: duration by method and gRPC status code")
        registry.gauge(
            "csi_lvm_driver_build_info", help: "Always 1; the driver's version as a label.", labels: [("version", version)]
        ).set(1)
        volumes = registry.gauge("csi_lvm_driver_volumes", help: "Volumes this driver owns, as the backend lists them.")
        snapshots = registry.gauge("csi_lvm_driver_snapshots", help: "Snapshots this driver owns, as the backend lists them.")
    }

    /// Records one served call; `method` is the CSI method's name (`CreateVolume`).
    func record(method: String, code: Int, duration: Duration) {
        calls.record(method: Self.fullName(method), code: code, duration: duration, labels: [("driver_name", driverName)])
    }

    /// Keeps the backend to read at each scrape.
    func use(_ backend: any VolumeBackend) { self.backend.withLock { $0 = backend } }

    /// Reads what the backend holds (from its cached reports, for LVM); a read that fails leaves the
    /// gauges as they were.
    func refresh() async {
        guard let backend = backend.withLock({ $0 }) else { return }
        if let list = try? await backend.listVolumes() { volumes.set(Double(list.count)) }
        if let list = try? await backend.listSnapshots() { snapshots.set(Double(list.count)) }
        if let lvm = backend as? LVMBackend, let groups = try? await lvm.volumeGroups() {
            for group in groups {
                let labels = [("volume_group", group.name)]
                registry.gauge(
                    "csi_lvm_driver_volume_group_size_bytes", help: "Size of each volume group the driver may use.",
                    labels: labels
                ).set(Double(group.sizeBytes))
                registry.gauge(
                    "csi_lvm_driver_volume_group_free_bytes", help: "Unallocated bytes of each volume group the driver may use.",
                    labels: labels
                ).set(Double(group.freeBytes))
            }
            if let pools = try? await lvm.thinPools() {
                for pool in pools {
                    let labels = [("volume_group", pool.volumeGroup), ("thin_pool", pool.name)]
                    registry.gauge(
                        "csi_lvm_driver_thin_pool_size_bytes", help: "Data size of each thin pool in the volume groups the driver may use.",
                        labels: labels
                    ).set(Double(pool.sizeBytes))
                    registry.gauge(
                        "csi_lvm_driver_thin_pool_data_percent", help: "Data usage of each thin pool, in percent.", labels: labels
                    ).set(pool.dataPercent)
                    registry.gauge(
                        "csi_lvm_driver_thin_pool_metadata_percent", help: "Metadata usage of each thin pool, in percent.", labels: labels
                    ).set(pool.metadataPercent)
                    registry.gauge(
                        "csi_lvm_driver_thin_pool_promised_bytes",
                        help: "Virtual size of the thin volumes and snapshots in each thin pool, summed.", labels: labels
                    ).set(Double(pool.promisedBytes))
                    registry.gauge(
                        "csi_lvm_driver_thin_pool_overprovisioned_available_bytes",
                        help: "What each thin pool can still promise: size x --overprovision-ratio - promised, 0 from 95 % full.",
                        labels: labels
                    ).set(Double(pool.availableBytes))
                }
            }
        }
    }

    /// `/csi.v1.<Service>/<method>`, as gRPC and the sidecars' metrics name it.
    static func fullName(_ method: String) -> String { RequestLog.path(of: method) }
}
