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
        guard let parts = HTTP1Server.splitAddress(address), let number = Int(parts.port), (0...65535).contains(number) else {
            throw MetricsServerError(message: "metrics address \(address) is not host:port or :port, for example :9810")
        }
        let listening: (fd: Int32, port: Int)
        do {
            listening = try HTTP1Server.listeningSocket(host: parts.host, port: String(number))
        } catch {
            switch error {
            case .resolve(let reason):
                throw MetricsServerError(message: "cannot resolve metrics address \(address): \(reason)")
            case .noAddress:
                throw MetricsServerError(message: "cannot listen on metrics address \(address): no address")
            case .systemCall(let call, let code):
                throw MetricsServerError(message: "cannot listen on metrics address \(address): \(call): \(errnoText(code))")
            }
        }
        let unavailable = "Service Unavailable"
        let configuration = HTTP1Server.Configuration(
            maxConnections: 16, maxRequestHeadBytes: 8192, requestHeadTimeout: .seconds(2), responseTimeout: .seconds(10),
            badRequest: HTTP1Response(
                status: 400, reason: "Bad Request", body: "expected an HTTP/1.x request head within 2 s and 8 KiB\n"),
            tooManyConnections: HTTP1Response(status: 503, reason: unavailable, body: "too many metrics connections\n"),
            responseTimedOut: HTTP1Response(status: 503, reason: unavailable, body: "metrics took longer than 10 s\n"))
        do {
            server = try HTTP1Server(
                listeningSocket: listening.fd, configuration: configuration,
                respond: { request in
                    if request.path == "/metrics", let refresh { await refresh() }
                    return Self.answer(request, exposition: exposition)
                })
        } catch {
            close(listening.fd)
            throw MetricsServerError(message: "cannot serve metrics on \(address): \(error)")
        }
        port = listening.port
    }

    static func answer(_ request: HTTP1Request, exposition: @Sendable () -> String) -> HTTP1Response {
        guard request.path == "/metrics" else {
            return HTTP1Response(status: 404, reason: "Not Found", body: "no such path \(request.path); the metrics are at /metrics\n")
        }
        if let refused = HTTP1Response.onlyGetOrHead(request, on: "/metrics") { return refused }
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
