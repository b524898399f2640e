import Glibc
import MetricsExport
import Testing

@Suite struct MetricsRegistryTests {
    @Test func exposesCountersGaugesAndHistogramsWithHelp() {
        let metrics = MetricsRegistry(processMetrics: false)
        let counter = metrics.counter("example_calls_total", help: "Calls answered.", labels: [("method", "Probe")])
        counter.increment()
        counter.increment(by: 2)
        // The same name and labels give the same counter.
        metrics.counter("example_calls_total", help: "Calls answered.", labels: [("method", "Probe")]).increment()
        metrics.gauge("example_state", help: "A state.", labels: [("state", "up")]).set(1)
        let text = metrics.exposition()
        #expect(text.contains("# HELP example_calls_total Calls answered.\n# TYPE example_calls_total counter\n"))
        #expect(text.contains("example_calls_total{method=\"Probe\"} 4"))
        #expect(text.contains("# TYPE example_state gauge\n"))
        #expect(text.contains("example_state{state=\"up\"} 1"))
        #expect(!text.contains("process_"))
    }

    @Test func recordsGRPCCallsAsTheSidecarsDo() {
        let metrics = MetricsRegistry(processMetrics: false)
        let calls = GRPCCallMetrics(registry: metrics)
        calls.record(method: "/csi.v1.Identity/Probe", code: 0, duration: .milliseconds(30), labels: [("driver_name", "d")])
        calls.record(method: "/csi.v1.Identity/Probe", code: 0, duration: .milliseconds(300), labels: [("driver_name", "d")])
        calls.record(method: "/csi.v1.Identity/Probe", code: 14, duration: .seconds(2), labels: [("driver_name", "d")])
        let text = metrics.exposition()
        let ok = "driver_name=\"d\",grpc_status_code=\"OK\",method_name=\"/csi.v1.Identity/Probe\""
        #expect(text.contains("# TYPE csi_sidecar_operations_seconds histogram\n"))
        #expect(text.contains("csi_sidecar_operations_seconds_bucket{\(ok),le=\"0.1\"} 1\n"))
        #expect(text.contains("csi_sidecar_operations_seconds_bucket{\(ok),le=\"0.5\"} 2\n"))
        #expect(text.contains("csi_sidecar_operations_seconds_count{\(ok)} 2\n"))
        #expect(text.contains("csi_sidecar_operations_seconds_count{driver_name=\"d\",grpc_status_code=\"Unavailable\",method_name=\"/csi.v1.Identity/Probe\"} 1\n"))
    }

    @Test(arguments: [(0, "OK"), (1, "Canceled"), (4, "DeadlineExceeded"), (14, "Unavailable"), (16, "Unauthenticated"), (17, "Code(17)")])
    func namesCodesAsGoDoes(code: Int, name: String) {
        #expect(GRPCCallMetrics.codeName(code) == name)
    }

    @Test func readsTheProcessMetricsFromProc() throws {
        let text = MetricsRegistry().exposition()
        func value(_ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        let rss = try #require(value("process_resident_memory_bytes"))
        #expect(rss > 1_000_000 && rss < 10_000_000_000)
        #expect(try #require(value("process_virtual_memory_bytes")) >= rss)
        #expect(try #require(value("process_open_fds")) >= 3)
        #expect(try #require(value("process_max_fds")) >= 64)
        #expect(try #require(value("process_threads")) >= 1)
        let start = try #require(value("process_start_time_seconds"))
        let now = Double(time(nil))
        #expect(start > now - 24 * 3600 && start <= now + 1)
        #expect(try #require(value("process_cpu_seconds_total")) >= 0)
    }
}
