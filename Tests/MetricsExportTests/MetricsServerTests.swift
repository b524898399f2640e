import Glibc
import MetricsExport
import Platform
import TestSupport
import Testing

@Suite struct MetricsServerTests {
    @Test func servesTheExpositionAtMetrics() async throws {
        let metrics = MetricsRegistry(processMetrics: false)
        let counter = metrics.counter("example_total", help: "Examples.")
        let server = try MetricsServer(address: "127.0.0.1:0") { metrics.exposition() }
        defer { server.stop() }
        #expect(server.port > 0)
        counter.increment()
        let first = await offload { loopbackExchange(port: server.port, ["GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"]) }
        #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(first.contains("\r\n\r\n# HELP example_total Examples.\n# TYPE example_total counter\nexample_total 1\n"))
        counter.increment()
        let second = await offload { loopbackExchange(port: server.port, ["GET /metrics HTTP/1.0\r\n\r\n"]) }
        #expect(second.contains("example_total 2\n"))
        let other = await offload { loopbackExchange(port: server.port, ["GET /healthz HTTP/1.1\r\n\r\n"]) }
        #expect(other.hasPrefix("HTTP/1.1 404"))
        let post = await offload { loopbackExchange(port: server.port, ["POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"]) }
        #expect(post.hasPrefix("HTTP/1.1 405"))
    }

    @Test(arguments: ["9810", "localhost", ":99999", "no-such-host.invalid:9810"])
    func refusesAnAddressItCannotListenOn(address: String) {
        #expect(throws: MetricsServerError.self) { try MetricsServer(address: address) { "" } }
    }

    @Test func namesAPortInUse() throws {
        let first = try MetricsServer(address: "127.0.0.1:0") { "" }
        defer { first.stop() }
        do {
            _ = try MetricsServer(address: "127.0.0.1:\(first.port)") { "" }
            Issue.record("a second server bound the same port")
        } catch {
            #expect(error.message.hasPrefix("cannot listen on metrics address 127.0.0.1:\(first.port): bind/listen: "))
        }
    }
}
