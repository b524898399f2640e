internal import Prometheus

/// A process's metrics and their Prometheus text exposition, over swift-server's swift-prometheus.
///
/// The executables make one registry, hand counters, gauges and histograms from it to whatever
/// reports (the registrar's observer in `node-driver-registrar`), and serve
/// ``exposition()`` at `/metrics`. The libraries never see this module: they report through small
/// protocols of their own (`RegistrarObserver`), so they keep depending on the toolchain alone.
///
/// ```swift
/// let metrics = MetricsRegistry()
/// let calls = metrics.counter("example_calls_total", help: "Calls answered.", labels: [("method", "Probe")])
/// calls.increment()
/// print(metrics.exposition())   // # HELP example_calls_total Calls answered. …
/// ```
public final class MetricsRegistry: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let process: ProcessMetrics?

    /// Creates an empty registry; with `processMetrics`, the `process_*` gauges (``ProcessMetrics``)
    /// are read from `/proc/self` at each exposition.
    public init(processMetrics: Bool = true) {
        process = processMetrics ? ProcessMetrics(registry: registry) : nil
    }

    /// The counter `name` with `labels`; the same one for the same name and labels.
    public func counter(_ name: String, help: String, labels: [(String, String)] = []) -> MetricCounter {
        MetricCounter(base: registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels))
    }

    /// The gauge `name` with `labels`; the same one for the same name and labels.
    public func gauge(_ name: String, help: String, labels: [(String, String)] = []) -> MetricGauge {
        MetricGauge(base: registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels))
    }

    /// The duration histogram `name` with `labels` and `buckets` (upper bounds); the same one for the
    /// same name and labels. Buckets are exposed in seconds.
    public func histogram(
        _ name: String, help: String, labels: [(String, String)] = [], buckets: [Duration]
    ) -> MetricHistogram {
        MetricHistogram(
            base: registry.makeDurationHistogram(descriptor: Self.descriptor(name, help), labels: labels, buckets: buckets))
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4), the process's read now.
    public func exposition() -> String {
        process?.update()
        return registry.emitToString()
    }

    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}

/// A value that only goes up.
public struct MetricCounter: Sendable {
    let base: Counter
    /// Adds 1.
    public func increment() { base.increment() }
    /// Adds a whole `amount`.
    public func increment(by amount: Int64) { base.increment(by: amount) }
}

/// A value that goes up and down.
public struct MetricGauge: Sendable {
    let base: Gauge
    /// Sets the value.
    public func set(_ value: Double) { base.set(to: value) }
}

/// Durations counted into buckets, with their count and sum.
public struct MetricHistogram: Sendable {
    let base: DurationHistogram
    /// Records one duration.
    public func record(_ duration: Duration) { base.record(duration) }
}
