#if canImport(Glibc)
import Glibc
#endif
package import Platform

/// The request line of one HTTP/1.x request, as ``HTTP1Server`` read it.
package struct HTTP1Request: Sendable, Hashable {
    /// The method, upper-case letters only (`GET`).
    package var method: String
    /// The request target as sent, starting with `/` (`/healthz?verbose=1`).
    package var target: String

    /// The target without its query (`/healthz`).
    package var path: String { target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target }

    /// Parses `METHOD SP TARGET SP HTTP/1.x` from the start of a request head; nil when the head
    /// does not start with such a line.
    package init?(head: some Collection<UInt8>) {
        let data = Array(head)
        guard let end = data.firstIndex(of: 13) ?? data.firstIndex(of: 10) else { return nil }
        let parts = data[..<end].split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version.hasPrefix("HTTP/1."), !method.isEmpty, method.utf8.allSatisfy({ (65...90).contains($0) }),
            target.hasPrefix("/")
        else { return nil }
        self.method = method
        self.target = target
    }
}

/// A plain-text response, sent with `Connection: close`.
package struct HTTP1Response: Sendable {
    /// The status code (`200`).
    package var status: Int
    /// The reason phrase (`OK`).
    package var reason: String
    /// The body, sent as `text/plain; charset=utf-8`.
    package var body: String
    /// Header lines besides Content-Type, Content-Length and Connection (`Allow: GET, HEAD`).
    package var headers: [(name: String, value: String)]

    /// Creates a response.
    package init(status: Int, reason: String, body: String, headers: [(name: String, value: String)] = []) {
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = headers
    }

    /// The bytes on the wire; the headers alone when `omittingBody` (the answer to HEAD).
    func encoded(omittingBody: Bool) -> [UInt8] {
        let body = Array(self.body.utf8)
        var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Connection: close\r\n\r\n"
        return Array(head.utf8) + (omittingBody ? [] : body)
    }
}

/// A minimal HTTP/1.1 server on the process-wide event loop (the one client channels use), for
/// answers such as a health check: no thread of its own, and nothing a client does blocks the loop.
///
/// Each connection carries one request (`Connection: close`). Its head is read as it arrives, up
/// to ``Configuration/maxRequestHeadBytes`` and for at most ``Configuration/requestHeadTimeout``;
/// then the request line of what arrived is answered (a request body is never read). A head that
/// does not start with an HTTP/1.x request line gets ``Configuration/badRequest``; beyond
/// ``Configuration/maxConnections`` at once a new connection gets
/// ``Configuration/tooManyConnections`` and is closed. The responder runs as a task preferring the
/// loop; one that takes longer than ``Configuration/responseTimeout`` is cancelled and
/// ``Configuration/responseTimedOut`` goes out instead. The answer to HEAD has no body. Once the
/// response is written the server half-closes the connection and reads until the client closes
/// its side, so that unread request bytes never turn the close into a reset that could destroy the
/// response before the client reads it.
package final class HTTP1Server: Sendable {
    /// Limits and the answers the server gives by itself.
    package struct Configuration: Sendable {
        /// Connections served at once.
        package var maxConnections: Int
        /// The longest request head read.
        package var maxRequestHeadBytes: Int
        /// How long a client has, from its connection, to send the request head; also how long
        /// writing the response and waiting for the client to close may take.
        package var requestHeadTimeout: Duration
        /// How long the responder may take.
        package var responseTimeout: Duration
        /// The answer to a head that is not an HTTP/1.x request.
        package var badRequest: HTTP1Response
        /// The answer to a connection beyond ``maxConnections``.
        package var tooManyConnections: HTTP1Response
        /// The answer when the responder did not finish within ``responseTimeout``.
        package var responseTimedOut: HTTP1Response

        /// Creates a configuration.
        package init(
            maxConnections: Int, maxRequestHeadBytes: Int, requestHeadTimeout: Duration, responseTimeout: Duration,
            badRequest: HTTP1Response, tooManyConnections: HTTP1Response, responseTimedOut: HTTP1Response
        ) {
            self.maxConnections = maxConnections
            self.maxRequestHeadBytes = maxRequestHeadBytes
            self.requestHeadTimeout = requestHeadTimeout
            self.responseTimeout = responseTimeout
            self.badRequest = badRequest
            self.tooManyConnections = tooManyConnections
            self.responseTimedOut = responseTimedOut
        }
    }

    private let loop: EventLoop
    private let listener: HTTP1Listener

    /// Serves on `fd`, a listening stream socket the server takes over (it is made non-blocking
    /// and closed by ``stop()``), until ``stop()``.
    ///
    /// - Throws: ``SystemError`` when the event loop cannot be started.
    package init(
        listeningSocket fd: Int32, configuration: Configuration,
        respond: @escaping @Sendable (HTTP1Request) async -> HTTP1Response
    ) throws(SystemError) {
        let loop = try SharedLoop.get()
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let listener = HTTP1Listener(loop: loop, fd: fd, configuration: configuration, respond: respond)
        self.loop = loop
        self.listener = listener
        loop.execute { listener.start() }
    }

    /// Stops accepting connections and closes the listening socket; requests in flight finish.
    package func stop() {
        let listener = self.listener
        loop.execute { listener.close() }
    }

    deinit { stop() }
}

extension HTTP1Server {
    /// Why ``listeningSocket(host:port:)`` could not open a socket.
    package enum ListenFailure: Error, Sendable, Hashable {
        /// `getaddrinfo` failed; the text is `gai_strerror`'s.
        case resolve(String)
        /// No address to try.
        case noAddress
        /// The last address tried failed in `call` (`socket` or `bind/listen`) with `errno`.
        case systemCall(String, errno: Int32)
    }

    /// A listening TCP socket (close-on-exec, `SO_REUSEADDR`, backlog 16) on `host` and `port` (a
    /// number), for ``init(listeningSocket:configuration:respond:)``, and the port bound (useful
    /// with port 0). An empty `host` is every interface: the IPv6 wildcard first (which also
    /// accepts IPv4), then IPv4's; each address `host` resolves to is tried in turn.
    package static func listeningSocket(host: String, port: String) throws(ListenFailure) -> (fd: Int32, port: Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host.isEmpty ? nil : host, port, &hints, &list)
        guard rc == 0, let first = list else { throw .resolve(String(cString: gai_strerror(rc))) }
        defer { freeaddrinfo(list) }
        var candidates: [UnsafeMutablePointer<addrinfo>] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            candidates.append(entry)
            cursor = entry.pointee.ai_next
        }
        if host.isEmpty { candidates.sort { a, _ in a.pointee.ai_family == AF_INET6 } }
        var failure = ListenFailure.noAddress
        for entry in candidates {
            let fd = socket(entry.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                failure = .systemCall("socket", errno: errno)
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if entry.pointee.ai_family == AF_INET6 {
                var zero: Int32 = 0
                _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
            }
            guard bind(fd, entry.pointee.ai_addr, entry.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
                failure = .systemCall("bind/listen", errno: errno)
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
            return (fd, bound)
        }
        throw failure
    }

    /// Splits `host:port`, `:port` and `[v6]:port` at the last colon, without the brackets; nil
    /// when there is no colon. The port is not checked.
    package static func splitAddress(_ address: String) -> (host: String, port: String)? {
        guard let colon = address.lastIndex(of: ":") else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, String(address[address.index(after: colon)...]))
    }
}

extension HTTP1Response {
    /// 405 naming `path` and `Allow: GET, HEAD` when `request` is neither GET nor HEAD; nil when it is.
    package static func onlyGetOrHead(_ request: HTTP1Request, on path: String) -> HTTP1Response? {
        guard request.method != "GET" && request.method != "HEAD" else { return nil }
        return HTTP1Response(
            status: 405, reason: "Method Not Allowed", body: "use GET or HEAD on \(path), not \(request.method)\n",
            headers: [("Allow", "GET, HEAD")])
    }
}

/// Accepts connections and counts them. Loop thread only (hence `@unchecked Sendable`).
private final class HTTP1Listener: LoopSelectable, @unchecked Sendable {
    let loop: EventLoop
    let fd: Int32
    let configuration: HTTP1Server.Configuration
    let respond: @Sendable (HTTP1Request) async -> HTTP1Response
    private var token: UInt64?
    private(set) var closed = false
    /// Connections open now.
    var connections = 0

    init(
        loop: EventLoop, fd: Int32, configuration: HTTP1Server.Configuration,
        respond: @escaping @Sendable (HTTP1Request) async -> HTTP1Response
    ) {
        self.loop = loop
        self.fd = fd
        self.configuration = configuration
        self.respond = respond
    }

    func start() {
        guard !closed else { return }
        do { token = try loop.register(fd, events: Epoll.readable, self) } catch { close() }
    }

    func handleEvent(_ events: UInt32) {
        while !closed {
            let result: IOResult<Int32>
            do { result = try Sys.accept(fd) } catch {
                // Out of descriptors or memory: the pending connection would wake the loop at once.
                if let token { loop.pauseAccepting(fd, token: token, events: Epoll.readable) { [weak self] in self?.closed ?? true } }
                return
            }
            guard case .done(let client) = result else { return }
            guard connections < configuration.maxConnections else {
                // Small enough for an empty socket buffer: one non-blocking send.
                let answer = configuration.tooManyConnections.encoded(omittingBody: false)
                _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                _ = shutdown(client, Int32(SHUT_WR))
                Sys.close(client)
                continue
            }
            connections += 1
            HTTP1Connection(listener: self, fd: client).start()
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        if let token { loop.deregister(fd, token: token) }
        token = nil
        Sys.close(fd)
    }
}

/// One request and its response. Loop thread only (hence `@unchecked Sendable`); the selectable
/// registration keeps it alive until it closes.
private final class HTTP1Connection: LoopSelectable, @unchecked Sendable {
    private enum State { case reading, responding, writing, draining, closed }

    private let listener: HTTP1Listener
    private let fd: Int32
    private var loop: EventLoop { listener.loop }
    private var configuration: HTTP1Server.Configuration { listener.configuration }
    private var token: UInt64?
    private var state = State.reading
    private var head: [UInt8] = []
    private var output: [UInt8] = []
    private var written = 0
    private var timer: LoopTimer?
    private var responder: Task<Void, Never>?

    init(listener: HTTP1Listener, fd: Int32) {
        self.listener = listener
        self.fd = fd
    }

    func start() {
        do { token = try loop.register(fd, events: Epoll.readable, self) } catch {
            close()
            return
        }
        timer = loop.schedule(after: configuration.requestHeadTimeout) { [weak self] in self?.headEnded() }
        readHead()
    }

    func handleEvent(_ events: UInt32) {
        switch state {
        case .reading: readHead()
        // Nothing is asked for while the responder runs: this is a hangup or an error.
        case .responding: close()
        case .writing: write()
        case .draining: drain()
        case .closed: break
        }
    }

    /// Reads what has arrived; the head ends at its blank line, at the size limit or when the
    /// client stops sending.
    private func readHead() {
        let buffer = loop.readBuffer
        while state == .reading {
            let room = configuration.maxRequestHeadBytes - head.count
            guard room > 0 else { return headEnded() }
            let result: IOResult<Int>
            do { result = try Sys.read(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(room, buffer.count)])) } catch {
                return headEnded()
            }
            switch result {
            case .wouldBlock: return
            case .done(0): return headEnded()
            case .done(let n):
                let searchFrom = max(0, head.count - 3)
                head.append(contentsOf: buffer[..<n])
                if Self.hasBlankLine(head[searchFrom...]) { return headEnded() }
            }
        }
    }

    private static func hasBlankLine(_ bytes: ArraySlice<UInt8>) -> Bool {
        var i = bytes.startIndex
        while i + 3 < bytes.endIndex {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return true }
            i += 1
        }
        return false
    }

    /// Answers the request line of what arrived.
    private func headEnded() {
        guard state == .reading else { return }
        state = .responding
        timer?.cancel()
        if let token { loop.modify(fd, token: token, events: 0) }
        guard let request = HTTP1Request(head: head) else { return send(configuration.badRequest, omittingBody: false) }
        head = []
        let omittingBody = request.method == "HEAD"
        timer = loop.schedule(after: configuration.responseTimeout) { [weak self] in
            guard let self else { return }
            self.responder?.cancel()
            self.send(self.configuration.responseTimedOut, omittingBody: omittingBody)
        }
        let respond = listener.respond
        let loop = self.loop
        responder = Task(executorPreference: loop) {
            let response = await respond(request)
            loop.executeOrRun { self.send(response, omittingBody: omittingBody) }
        }
    }

    private func send(_ response: HTTP1Response, omittingBody: Bool) {
        guard state == .responding else { return }
        state = .writing
        timer?.cancel()
        responder = nil
        output = response.encoded(omittingBody: omittingBody)
        timer = loop.schedule(after: configuration.requestHeadTimeout) { [weak self] in self?.close() }
        write()
    }

    private func write() {
        while written < output.count {
            let result: IOResult<Int>
            do {
                result = try output[written...].withUnsafeBytes { bytes throws(SystemError) in
                    try nonBlockingSystemCall("send") { Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
                }
            } catch {
                return close()
            }
            switch result {
            case .done(let n): written += n
            case .wouldBlock:
                if let token { loop.modify(fd, token: token, events: Epoll.writable) }
                return
            }
        }
        // Sent: half-close, then read until the client closes its side or the time is up.
        _ = shutdown(fd, Int32(SHUT_WR))
        state = .draining
        output = []
        if let token { loop.modify(fd, token: token, events: Epoll.readable) }
        drain()
    }

    private func drain() {
        let buffer = loop.readBuffer
        while state == .draining {
            let result: IOResult<Int>
            do { result = try Sys.read(fd, buffer) } catch { return close() }
            switch result {
            case .wouldBlock: return
            case .done(0): return close()
            case .done: continue
            }
        }
    }

    private func close() {
        guard state != .closed else { return }
        state = .closed
        timer?.cancel()
        timer = nil
        responder?.cancel()
        responder = nil
        if let token { loop.deregister(fd, token: token) }
        token = nil
        Sys.close(fd)
        listener.connections -= 1
    }
}
