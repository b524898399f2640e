internal import Glibc
internal import H2
internal import RPCCore
internal import Platform

/// The answer to one health check: healthy or not, and why.
public struct HealthReport: Sendable, Hashable {
    /// Whether every check passed.
    public var healthy: Bool
    /// What was checked, or which check failed and why.
    public var reason: String
    /// Creates a report.
    public init(healthy: Bool, reason: String) {
        self.healthy = healthy
        self.reason = reason
    }
}

/// `GET /healthz` (and `HEAD`) over HTTP/1.1 on TCP, answered from a health check on the event loop
/// the registrar's gRPC calls run on (H2's `HTTP1Server`): no thread of its own.
///
/// One request per connection (`Connection: close`); its head is read within 2 s and 8 KiB, so a slow or
/// hostile client cannot hold the server. 200 with the reason when healthy, 503 otherwise (or when the
/// check takes longer than its timeout, or 32 connections are open already), 404 for other paths, 405 for
/// other methods, 400 for anything that is not an HTTP/1.x request.
package final class HealthServer: Sendable {
    /// The address as given, for example `:9809` or `127.0.0.1:9809`.
    package let endpoint: String
    /// The TCP port actually bound (useful with port 0).
    package let port: Int
    private let server: HTTP1Server

    /// Listens on `endpoint` (`host:port`, `:port`, `[v6]:port`) and serves until ``stop()``; a `check`
    /// that has not finished after `checkTimeout` is answered with 503.
    package init(
        endpoint: String, checkTimeout: Duration = .seconds(10), metrics: (@Sendable () -> String)? = nil,
        check: @escaping @Sendable () async -> HealthReport
    ) throws(RegistrarError) {
        self.endpoint = endpoint
        let (host, portText) = try Self.split(endpoint)
        let listening: (fd: Int32, port: Int)
        do {
            listening = try HTTP1Server.listeningSocket(host: host, port: portText)
        } catch {
            switch error {
            case .resolve(let reason):
                throw RegistrarError(
                    code: .invalidConfiguration, message: "cannot resolve health endpoint \(endpoint)", underlying: reason)
            case .noAddress:
                throw RegistrarError(code: .systemCall, message: "no address to listen on for health endpoint \(endpoint)")
            case .systemCall(let call, let code):
                throw PathInspection.systemError(call, "health endpoint \(endpoint)", errno: code)
            }
        }
        do {
            server = try HTTP1Server(
                listeningSocket: listening.fd, configuration: Self.configuration(checkTimeout: checkTimeout),
                respond: { request in await Self.answer(request, metrics: metrics, check: check) })
        } catch {
            close(listening.fd)
            throw RegistrarError(
                code: .systemCall, message: "cannot serve health endpoint \(endpoint)", underlying: error.description)
        }
        port = listening.port
    }

    /// Splits `host:port`, `:port` and `[v6]:port`.
    static func split(_ endpoint: String) throws(RegistrarError) -> (host: String, port: String) {
        guard let parts = HTTP1Server.splitAddress(endpoint) else {
            throw RegistrarError(
                code: .invalidConfiguration,
                message: "health endpoint \(endpoint) has no port; expected host:port or :port, for example :9809")
        }
        guard let number = Int(parts.port), (0...65535).contains(number) else {
            throw RegistrarError(
                code: .invalidConfiguration, message: "health endpoint \(endpoint): port \(parts.port) is not a number in 0...65535")
        }
        return parts
    }

    /// The limits and the answers given without asking the check.
    private static func configuration(checkTimeout: Duration) -> HTTP1Server.Configuration {
        let unavailable = "Service Unavailable"
        return HTTP1Server.Configuration(
            maxConnections: 32, maxRequestHeadBytes: 8192, requestHeadTimeout: .seconds(2), responseTimeout: checkTimeout,
            badRequest: HTTP1Response(
                status: 400, reason: "Bad Request", body: "expected an HTTP/1.x request head within 2 s and 8 KiB\n"),
            tooManyConnections: HTTP1Response(status: 503, reason: unavailable, body: "too many health check connections\n"),
            responseTimedOut: HTTP1Response(
                status: 503, reason: unavailable,
                body: "health check did not finish within \(DriverWatcher.seconds(checkTimeout))\n"))
    }

    /// The answer to one request: the check's verdict for `/healthz`, the Prometheus text for
    /// `/metrics` (when `metrics` is given), 404 or 405 otherwise.
    static func answer(
        _ request: HTTP1Request, metrics: (@Sendable () -> String)? = nil, check: @Sendable () async -> HealthReport
    ) async -> HTTP1Response {
        let path = request.path
        if path == "/metrics", let metrics {
            if let refused = HTTP1Response.onlyGetOrHead(request, on: "/metrics") { return refused }
            return HTTP1Response(status: 200, reason: "OK", body: metrics())
        }
        guard path == "/healthz" else {
            return HTTP1Response(status: 404, reason: "Not Found", body: "no such path \(path); the health check is at /healthz\n")
        }
        if let refused = HTTP1Response.onlyGetOrHead(request, on: "/healthz") { return refused }
        let report = await check()
        return HTTP1Response(
            status: report.healthy ? 200 : 503, reason: report.healthy ? "OK" : "Service Unavailable", body: report.reason + "\n")
    }

    /// Stops accepting connections; requests in flight finish.
    package func stop() {
        server.stop()
    }
}
