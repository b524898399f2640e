internal import Glibc
internal import Platform
internal import Dispatch
internal import Synchronization

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

/// A minimal HTTP/1.1 server on TCP that answers `GET /healthz` (and `HEAD`) from a health check.
///
/// One request per connection (`Connection: close`); requests are read with a deadline and a size limit,
/// so a slow or hostile client cannot hold the server. 200 with the reason when healthy, 503 otherwise,
/// 404 for other paths, 405 for other methods, 400 for anything that is not an HTTP/1.x request.
package final class HealthServer: Sendable {
    /// The address as given, for example `:9809` or `127.0.0.1:9809`.
    package let endpoint: String
    /// The TCP port actually bound (useful with port 0).
    package let port: Int
    private let listenFD: Int32
    private let check: @Sendable () async -> HealthReport
    private let checkTimeout: Duration
    private let stopped = Atomic<Bool>(false)
    private let active = Atomic<Int>(0)
    private static let maxConnections = 32
    private static let maxRequestBytes = 8192

    /// Listens on `endpoint` (`host:port`, `:port`, `[v6]:port`) and serves until ``stop()``; a `check`
    /// that has not finished after `checkTimeout` is answered with 503.
    package init(
        endpoint: String, checkTimeout: Duration = .seconds(10), check: @escaping @Sendable () async -> HealthReport
    ) throws(RegistrarError) {
        self.endpoint = endpoint
        self.check = check
        self.checkTimeout = checkTimeout
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
            self.listenFD = fd
            self.port = Int(boundPort)
            let server = self
            BlockingPool.shared.submit { server.acceptLoop() }
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

    /// Stops accepting connections; requests in flight finish.
    package func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = shutdown(listenFD, Int32(SHUT_RDWR))
    }

    deinit { close(listenFD) }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE {
                    if errno == EMFILE || errno == ENFILE { usleep(10_000) }
                    continue
                }
                return
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            if active.add(1, ordering: .relaxed).newValue > Self.maxConnections {
                active.subtract(1, ordering: .relaxed)
                Self.respond(fd, status: 503, reason: "Service Unavailable", body: "too many health check connections\n", head: false)
                close(fd)
                continue
            }
            BlockingPool.shared.submit {
                self.serve(fd)
                self.active.subtract(1, ordering: .relaxed)
            }
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let request = Self.readRequestHead(fd) else {
            Self.respond(fd, status: 400, reason: "Bad Request", body: "expected an HTTP/1.x request head within 2 s and 8 KiB\n", head: false)
            return
        }
        let (method, target) = request
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        guard path == "/healthz" else {
            Self.respond(fd, status: 404, reason: "Not Found", body: "no such path \(path); the health check is at /healthz\n", head: method == "HEAD")
            return
        }
        guard method == "GET" || method == "HEAD" else {
            Self.respond(fd, status: 405, reason: "Method Not Allowed", body: "use GET or HEAD on /healthz, not \(method)\n", head: false, extra: "Allow: GET, HEAD\r\n")
            return
        }
        let report = Self.runBlocking(check, timeout: checkTimeout)
        Self.respond(
            fd, status: report.healthy ? 200 : 503, reason: report.healthy ? "OK" : "Service Unavailable",
            body: report.reason + "\n", head: method == "HEAD")
    }

    /// Runs an async check from a plain thread and waits for it.
    private static func runBlocking(_ check: @escaping @Sendable () async -> HealthReport, timeout: Duration) -> HealthReport {
        let box = Mutex<HealthReport?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let report = await check()
            box.withLock { $0 = report }
            done.signal()
        }
        if done.wait(timeout: .now() + .nanoseconds(timeout.wholeNanoseconds)) == .timedOut {
            return HealthReport(healthy: false, reason: "health check did not finish within \(DriverWatcher.seconds(timeout))")
        }
        return box.withLock { $0 } ?? HealthReport(healthy: false, reason: "health check produced no result")
    }

    /// Reads up to the blank line ending the request head; returns method and target.
    static func readRequestHead(_ fd: Int32) -> (String, String)? {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        let terminator: [UInt8] = [13, 10, 13, 10]
        while data.count < maxRequestBytes {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            data.append(contentsOf: chunk[0..<n])
            if data.count >= 4 && containsTerminator(data, terminator) { break }
        }
        return parseRequestLine(data)
    }

    private static func containsTerminator(_ data: [UInt8], _ terminator: [UInt8]) -> Bool {
        guard data.count >= terminator.count else { return false }
        for i in 0...(data.count - terminator.count) where data[i..<(i + terminator.count)].elementsEqual(terminator) {
            return true
        }
        return false
    }

    /// Parses `METHOD SP TARGET SP HTTP/1.x` from the start of a request head.
    static func parseRequestLine(_ data: [UInt8]) -> (String, String)? {
        guard let end = data.firstIndex(of: 13) ?? data.firstIndex(of: 10) else { return nil }
        let parts = data[..<end].split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version.hasPrefix("HTTP/1."), !method.isEmpty, method.utf8.allSatisfy({ (65...90).contains($0) }),
            target.hasPrefix("/")
        else { return nil }
        return (method, target)
    }

    private static func respond(_ fd: Int32, status: Int, reason: String, body: String, head: Bool, extra: String = "") {
        let bodyBytes = Array(body.utf8)
        var response = Array(
            ("HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + "Content-Length: \(bodyBytes.count)\r\n\(extra)Connection: close\r\n\r\n").utf8)
        if !head { response += bodyBytes }
        var offset = 0
        while offset < response.count {
            let n = response[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
        _ = shutdown(fd, Int32(SHUT_WR))
    }
}

