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
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host.isEmpty ? nil : host, portText, &hints, &list)
        guard rc == 0, let first = list else {
            throw RegistrarError(
                code: .invalidConfiguration, message: "cannot resolve health endpoint \(endpoint)",
                underlying: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        // With no host, prefer the IPv6 wildcard (which also accepts IPv4) and fall back to IPv4.
        var candidates: [UnsafeMutablePointer<addrinfo>] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            candidates.append(entry)
            cursor = entry.pointee.ai_next
        }
        if host.isEmpty { candidates.sort { a, _ in a.pointee.ai_family == AF_INET6 } }
        var lastError = RegistrarError(code: .systemCall, message: "no address to listen on for health endpoint \(endpoint)")
        for entry in candidates {
            let fd = socket(entry.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                lastError = PathInspection.systemError("socket", "health endpoint \(endpoint)")
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if entry.pointee.ai_family == AF_INET6 {
                var zero: Int32 = 0
                _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
            }
            guard bind(fd, entry.pointee.ai_addr, entry.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
                lastError = PathInspection.systemError("bind/listen", "health endpoint \(endpoint)")
                close(fd)
                continue
            }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            let boundPort: UInt16 = withUnsafeBytes(of: &storage) { raw in
                // sin_port and sin6_port share the same offset (2) in network byte order.
                UInt16(raw[2]) << 8 | UInt16(raw[3])
            }
            do {
                server = try HTTP1Server(
                    listeningSocket: fd, configuration: Self.configuration(checkTimeout: checkTimeout),
                    respond: { request in await Self.answer(request, metrics: metrics, check: check) })
            } catch {
                close(fd)
                throw RegistrarError(
                    code: .systemCall, message: "cannot serve health endpoint \(endpoint)", underlying: error.description)
            }
            self.port = Int(boundPort)
            return
        }
        throw lastError
    }

    /// Splits `host:port`, `:port` and `[v6]:port`.
    static func split(_ endpoint: String) throws(RegistrarError) -> (host: String, port: String) {
        guard let colon = endpoint.lastIndex(of: ":") else {
            throw RegistrarError(
                code: .invalidConfiguration,
                message: "health endpoint \(endpoint) has no port; expected host:port or :port, for example :9809")
        }
        var host = String(endpoint[..<colon])
        let port = String(endpoint[endpoint.index(after: colon)...])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let number = Int(port), (0...65535).contains(number) else {
            throw RegistrarError(
                code: .invalidConfiguration, message: "health endpoint \(endpoint): port \(port) is not a number in 0...65535")
        }
        return (host, port)
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
            guard request.method == "GET" || request.method == "HEAD" else {
                return HTTP1Response(
                    status: 405, reason: "Method Not Allowed", body: "use GET or HEAD on /metrics, not \(request.method)\n",
                    headers: [("Allow", "GET, HEAD")])
            }
            return HTTP1Response(status: 200, reason: "OK", body: metrics())
        }
        guard path == "/healthz" else {
            return HTTP1Response(status: 404, reason: "Not Found", body: "no such path \(path); the health check is at /healthz\n")
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            return HTTP1Response(
                status: 405, reason: "Method Not Allowed", body: "use GET or HEAD on /healthz, not \(request.method)\n",
                headers: [("Allow", "GET, HEAD")])
        }
        let report = await check()
        return HTTP1Response(
            status: report.healthy ? 200 : 503, reason: report.healthy ? "OK" : "Service Unavailable", body: report.reason + "\n")
    }

    /// Stops accepting connections; requests in flight finish.
    package func stop() {
        server.stop()
    }
}
