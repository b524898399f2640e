// The registrar's Prometheus metrics: its events (RegistrarObserver) counted in a MetricsRegistry.
// Each metric is documented in docs/OPERATIONS.md.
import MetricsExport
import Registrar
import Synchronization

/// Turns the registrar's events into metrics; served at `/metrics` through ``exposition()``.
final class RegistrarMetrics: RegistrarObserver {
    let registry: MetricsRegistry
    private let phases: [RegistrationPhase: MetricGauge]
    private let getInfo: MetricCounter
    private let notifications: [Bool: MetricCounter]
    private let reregistrations: [ReregistrationReason: MetricCounter]
    private let calls: GRPCCallMetrics
    /// The driver's name once it answered GetPluginInfo; `unknown` before, as csi-lib-utils labels it.
    private let driverName = Mutex("unknown")

    init(registry: MetricsRegistry = MetricsRegistry(), version: String) {
        self.registry = registry
        registry.gauge(
            "node_driver_registrar_build_info", help: "Always 1; the registrar's version as a label.",
            labels: [("version", version)]
        ).set(1)
        var phases: [RegistrationPhase: MetricGauge] = [:]
        for phase in RegistrationPhase.allCases {
            phases[phase] = registry.gauge(
                "node_driver_registrar_registration_state",
                help: "1 for the registration's current state (waiting_for_driver, pending, registered, refused), 0 for the others.",
                labels: [("state", phase.rawValue)])
        }
        self.phases = phases
        getInfo = registry.counter(
            "node_driver_registrar_kubelet_get_info_calls_total", help: "GetInfo calls from the kubelet on the registration socket.")
        var notifications: [Bool: MetricCounter] = [:]
        for registered in [false, true] {
            notifications[registered] = registry.counter(
                "node_driver_registrar_kubelet_notifications_total",
                help: "NotifyRegistrationStatus calls from the kubelet, by its verdict (registered=true: acknowledged).",
                labels: [("registered", String(registered))])
        }
        self.notifications = notifications
        var reregistrations: [ReregistrationReason: MetricCounter] = [:]
        for reason in ReregistrationReason.allCases {
            reregistrations[reason] = registry.counter(
                "node_driver_registrar_reregistrations_total",
                help: "Registration sockets made again so the kubelet registers anew, by reason (refused, ack_timeout, removed).",
                labels: [("reason", reason.rawValue)])
        }
        self.reregistrations = reregistrations
        calls = GRPCCallMetrics(registry: registry)
    }

    func record(_ event: RegistrarEvent) {
        switch event {
        case .phase(let phase):
            for (each, gauge) in phases { gauge.set(each == phase ? 1 : 0) }
        case .driverIdentified(let name):
            driverName.withLock { $0 = name }
        case .kubeletGetInfo:
            getInfo.increment()
        case .kubeletNotified(let registered):
            notifications[registered]?.increment()
        case .reregistration(let reason):
            reregistrations[reason]?.increment()
        case .driverCall(let method, let code, let duration):
            calls.record(method: method, code: code, duration: duration, labels: [("driver_name", driverName.withLock { $0 })])
        }
    }

    /// The text exposition of every metric.
    func exposition() -> String { registry.exposition() }
}
