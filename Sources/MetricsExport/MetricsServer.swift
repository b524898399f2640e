internal import Glibc
internal import H2
internal import Platform

/// `GET /metrics` (and `HEAD`) over HTTP/1.1 on TCP, for an executable without an HTTP endpoint of
/// its own (the driver's `--metrics-address`), on H2's `HTTP1Server`: the process-wide event loop,
/// no thread of its own, one request per connection, the head read within 2 s and 8 KiB.
public final class MetricsServer: Sendable {
    /// The TCP port bound (useful with port 0).
    public let port: Int
    private let server: HTTP1Server

    /// Listens on `address` (`host:port`, `:port` for every interface, `[v6]:port`) and serves
    /// `exposition()` at `/metrics` until ``stop()``; `refresh`, when given, runs before each
    /// exposition (to read gauges that are costly to keep current).
    /// - Throws: ``MetricsServerError`` naming the address and what failed.
    public init(
        address: String, refresh: (@Sendable () async -> Void)? = nil, exposition: @escaping @Sendable () -> String
    ) throws(MetricsServerError) {
        guard let colon = address.lastIndex(of: ":"), let number = Int(address[address.index(after: colon)...]),
            (0...65535).contains(number)
        else {
            throw MetricsServerError(message: "metrics address \(address) is not host:port or :port, for example :9810")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host.isEmpty ? nil : host, String(number), &hints, &list)
        guard rc == 0, let first = list else {
            throw MetricsServerError(message: "cannot resolve metrics address \(address): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var candidates: [UnsafeMutablePointer<addrinfo>] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            candidates.append(entry)
            cursor = entry.pointee.ai_next
        }
        // With no host, the IPv6 wildcard first (it takes IPv4 too), then IPv4's.
        if host.isEmpty { candidates.sort { a, _ in a.pointee.ai_family == AF_INET6 } }
        var failure = "no address"
        for entry in candidates {
            let fd = socket(entry.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                failure = "socket: \(errnoText(errno))"
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if entry.pointee.ai_family == AF_INET6 {
                var zero: Int32 = 0
                _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
            }
            guard bind(fd, entry.pointee.ai_addr, entry.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
                failure = "bind/listen: \(errnoText(errno))"
                close(fd)
                continue
            }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            // sin_port and sin6_port share offset 2, in network byte order.
            let bound = withUnsafeBytes(of: &storage) { Int($0[2]) << 8 | Int($0[3]) }
            let unavailable = "Service Unavailable"
            let configuration = HTTP1Server.Configuration(
                maxConnections: 16, maxRequestHeadBytes: 8192, requestHeadTimeout: .seconds(2), responseTimeout: .seconds(10),
                badRequest: HTTP1Response(
                    status: 400, reason: "Bad Request", body: "expected an HTTP/1.x request head within 2 s and 8 KiB\n"),
                tooManyConnections: HTTP1Response(status: 503, reason: unavailable, body: "too many metrics connections\n"),
                responseTimedOut: HTTP1Response(status: 503, reason: unavailable, body: "metrics took longer than 10 s\n"))
            do {
                server = try HTTP1Server(
                    listeningSocket: fd, configuration: configuration,
                    respond: { request in
                        if request.path == "/metrics", let refresh { await refresh() }
                        return Self.answer(request, exposition: exposition)
                    })
            } catch {
                close(fd)
                throw MetricsServerError(message: "cannot serve metrics on \(address): \(error)")
            }
            port = bound
            return
        }
        throw MetricsServerError(message: "cannot listen on metrics address \(address): \(failure)")
    }

    static func answer(_ request: HTTP1Request, exposition: @Sendable () -> String) -> HTTP1Response {
        guard request.path == "/metrics" else {
            return HTTP1Response(status: 404, reason: "Not Found", body: "no such path \(request.path); the metrics are at /metrics\n")
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            return HTTP1Response(
                status: 405, reason: "Method Not Allowed", body: "use GET or HEAD on /metrics, not \(request.method)\n",
                headers: [("Allow", "GET, HEAD")])
        }
        return HTTP1Response(status: 200, reason: "OK", body: exposition())
    }

    /// Stops accepting connections; requests in flight finish.
    public func stop() { server.stop() }
}

/// Why the metrics server could not start.
public struct MetricsServerError: Error, Sendable, CustomStringConvertible {
    /// What failed, naming the address.
    public var message: String
    public var description: String { message }
}
