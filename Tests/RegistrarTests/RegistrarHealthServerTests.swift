import Glibc
import Synchronization
import Platform
import TestSupport
import Testing

@testable import Registrar

/// Sends `request` to 127.0.0.1:`port` from a plain thread (the check runs on the task pool) and returns
/// the whole response.
func httpExchange(port: Int, _ request: String) async -> String {
    await offload { loopbackExchange(port: port, [request]) }
}

/// How long these tests let a check run: the checks return at once, but a loaded machine may not run a
/// task of this process for seconds, and the default 10 s would then answer 503.
let generousCheckTimeout: Duration = .seconds(60)

@Suite struct RegistrarHealthServerTests {
    @Test func answersHealthzFromTheCheck() async throws {
        let healthy = Atomic<Bool>(true)
        let server = try HealthServer(endpoint: "127.0.0.1:0", checkTimeout: generousCheckTimeout) {
            healthy.load(ordering: .relaxed)
                ? HealthReport(healthy: true, reason: "registered")
                : HealthReport(healthy: false, reason: "kubelet has not acknowledged")
        }
        defer { server.stop() }
        #expect(server.port > 0)
        let ok = await httpExchange(port: server.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(ok.hasSuffix("\r\n\r\nregistered\n"))
        #expect(ok.contains("Content-Length: 11\r\n"))
        healthy.store(false, ordering: .relaxed)
        let bad = await httpExchange(port: server.port, "GET /healthz?verbose=1 HTTP/1.0\r\n\r\n")
        #expect(bad.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(bad.hasSuffix("kubelet has not acknowledged\n"))
        let head = await httpExchange(port: server.port, "HEAD /healthz HTTP/1.1\r\n\r\n")
        #expect(head.hasPrefix("HTTP/1.1 503") && head.hasSuffix("\r\n\r\n"))
    }

    @Test func servesMetricsBesideHealthzWhenGiven() async throws {
        let scrapes = Atomic<Int>(0)
        let server = try HealthServer(
            endpoint: "127.0.0.1:0", checkTimeout: generousCheckTimeout,
            metrics: { "# TYPE x counter\nx_total \(scrapes.add(1, ordering: .relaxed).newValue)\n" }
        ) { HealthReport(healthy: true, reason: "ok") }
        defer { server.stop() }
        let first = await httpExchange(port: server.port, "GET /metrics HTTP/1.1\r\n\r\n")
        #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n") && first.hasSuffix("\r\n\r\n# TYPE x counter\nx_total 1\n"))
        let second = await httpExchange(port: server.port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n")
        #expect(second.hasSuffix("x_total 2\n"))
        let post = await httpExchange(port: server.port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        #expect(post.hasPrefix("HTTP/1.1 405"))
        let health = await httpExchange(port: server.port, "GET /healthz HTTP/1.1\r\n\r\n")
        #expect(health.hasPrefix("HTTP/1.1 200 OK\r\n") && health.hasSuffix("\r\n\r\nok\n"))
    }

    @Test(arguments: [
        ("GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 404"),
        ("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405"),
        ("hello\r\n\r\n", "HTTP/1.1 400"),
        ("GET healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        ("\u{16}\u{3}\u{1}\r\n\r\n", "HTTP/1.1 400"),
    ])
    func rejectsWhatIsNotAHealthCheck(request: String, expected: String) async throws {
        let server = try HealthServer(endpoint: "127.0.0.1:0", checkTimeout: generousCheckTimeout) { HealthReport(healthy: true, reason: "ok") }
        defer { server.stop() }
        let response = await httpExchange(port: server.port, request)
        #expect(response.hasPrefix(expected))
    }

    @Test func survivesAClientThatSendsNothing() async throws {
        let server = try HealthServer(endpoint: ":0", checkTimeout: generousCheckTimeout) { HealthReport(healthy: true, reason: "ok") }
        defer { server.stop() }
        // A silent client is cut off after the read deadline; others are served meanwhile.
        let silent = connectLoopback(port: server.port)
        defer { close(silent) }
        let response = await httpExchange(port: server.port, "GET /healthz HTTP/1.1\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 200"))
    }

    @Test func aCheckThatDoesNotFinishIsAnswered503() async throws {
        let server = try HealthServer(endpoint: "127.0.0.1:0", checkTimeout: .milliseconds(200)) {
            try? await Task.sleep(for: .seconds(3600))
            return HealthReport(healthy: true, reason: "too late")
        }
        defer { server.stop() }
        let response = await httpExchange(port: server.port, "GET /healthz HTTP/1.1\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 503"))
        #expect(response.hasSuffix("health check did not finish within 200 ms\n"))
    }

    @Test(arguments: ["9809", "host", "127.0.0.1:http", ":70000"])
    func badEndpointsAreNamed(endpoint: String) {
        #expect {
            _ = try HealthServer(endpoint: endpoint) { HealthReport(healthy: true, reason: "") }
        } throws: { error in
            (error as? RegistrarError)?.message.contains(endpoint) == true
        }
    }
}
