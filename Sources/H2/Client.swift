#if canImport(Glibc)
import Glibc
#endif
import CNGHTTP2
public import ProtoWire
public import RPCCore
import Synchronization
import Platform

/// How a ``GRPCChannel`` connects and retries.
public struct GRPCChannelConfiguration: Sendable {
    /// The largest response message accepted (after decompression, for compressed messages).
    public var maxReceiveMessageSize: Int = 4 * 1024 * 1024
    /// Compress request messages with this encoding (sent as `grpc-encoding`); nil sends them
    /// uncompressed. Compressed responses (`gzip`, `deflate`) are accepted either way, and every
    /// call says so in `grpc-accept-encoding`.
    public var compression: GRPCCompression? = nil
    /// The first pause after a failed connection attempt.
    public var initialBackoff: Duration = .milliseconds(50)
    /// The longest pause between connection attempts.
    public var maxBackoff: Duration = .seconds(2)
    /// Send a PING this often on an open connection; nil disables keepalive.
    public var keepaliveInterval: Duration? = nil
    /// Close the connection when a keepalive PING is not answered within this time.
    public var keepaliveTimeout: Duration = .seconds(20)
    /// How long one TCP connection attempt may wait for the handshake before it fails with
    /// UNAVAILABLE naming the target. The wait happens on the client loop without blocking it;
    /// a call whose deadline is shorter fails at its deadline instead.
    public var connectTimeout: Duration = .seconds(20)
    /// The `:authority` sent; defaults to `localhost` for Unix sockets and `host:port` for TCP.
    public var authority: String? = nil
    /// Defaults.
    public init() {}
}

extension CallOptions {
    /// When true, the call waits (up to its timeout) for the server to be reachable instead of
    /// failing at once with UNAVAILABLE.
    public var waitForReady: Bool {
        get { metadata["grpc-internal-wait-for-ready"] == "1" }
        set {
            var m = Metadata()
            for e in metadata where e.key != "grpc-internal-wait-for-ready" {
                switch e.value {
                case .string(let s): m.add(e.key, s)
                case .binary(let b): m.add(e.key, bytes: b)
                }
            }
            if newValue { m.add("grpc-internal-wait-for-ready", "1") }
            metadata = m
        }
    }
}

/// A connection to a gRPC server that multiplexes many calls; generated clients wrap it.
///
/// It connects on first use and reconnects after failures, pausing between attempts with capped
/// exponential backoff. Calls fail with UNAVAILABLE naming the target when it cannot be reached.
public final class GRPCChannel: GRPCClientTransport {
    /// The target: `unix:///path`, a plain path, or `host:port` for TCP.
    public let target: String
    /// How the channel connects.
    public let configuration: GRPCChannelConfiguration
    let core: ChannelCore?
    private let setupError: RPCError?

    /// Creates a channel; it connects on first use.
    public convenience init(target: String) { self.init(target: target, configuration: GRPCChannelConfiguration()) }

    /// Creates a channel with a configuration; it connects on first use.
    public init(target: String, configuration: GRPCChannelConfiguration) {
        self.target = target
        self.configuration = configuration
        do {
            let address = try SocketAddress.parse(target)
            core = ChannelCore(loop: try SharedLoop.get(), address: address, target: target, configuration: configuration)
            setupError = nil
        } catch let e as SocketAddressError {
            core = nil
            setupError = RPCError(code: .invalidArgument, message: e.description)
        } catch {
            core = nil
            setupError = RPCError(code: .unavailable, message: "cannot start the client loop for \(target): \(error)")
        }
    }

    deinit { close() }

    private func requireCore() throws -> ChannelCore {
        guard let core else { throw setupError! }
        return core
    }

    /// Closes the connection; calls in flight fail with CANCELLED, later calls with UNAVAILABLE.
    public func close() {
        guard let core else { return }
        core.loop.execute { core.close() }
    }

    /// Waits until the target's socket exists and a server answers on it (its HTTP/2 SETTINGS
    /// arrived), retrying with backoff.
    ///
    /// - Parameter timeout: How long to keep trying.
    /// - Throws: ``RPCError`` UNAVAILABLE naming the target and the last failure.
    public func waitUntilReady(timeout: Duration) async throws {
        let core = try requireCore()
        let deadline = ContinuousClock.now + timeout
        var delay = Duration.milliseconds(5)
        while true {
            let remaining = max(deadline - ContinuousClock.now, .zero)
            let error: RPCError? = await withCheckedContinuation { (c: CheckedContinuation<RPCError?, Never>) in
                core.loop.execute { core.connectForReady(timeout: remaining) { c.resume(returning: $0) } }
            }
            guard let error else { return }
            let now = ContinuousClock.now
            if now >= deadline {
                throw RPCError(code: .unavailable, message: "\(target) did not become ready within \(timeout): \(error.message)")
            }
            try await Task.sleep(for: min(delay, deadline - now))
            delay = min(delay * 2, configuration.maxBackoff)
        }
    }

    /// Makes a unary call.
    public func unary<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor, request: Request, options: CallOptions = CallOptions()
    ) async throws -> Response {
        let core = try requireCore()
        if options.waitForReady { try await waitUntilReady(timeout: options.timeout ?? .seconds(86400)) }
        let bytes = try await core.unaryCall(method.path, request.serializedBytes(), options)
        return try Self.decode(Response.self, bytes, method)
    }

    /// Makes a server-streaming call; the responses arrive as a stream.
    public func serverStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor, request: Request, options: CallOptions = CallOptions()
    ) -> AsyncThrowingStream<Response, any Error> {
        let bytes = request.serializedBytes()
        return streamingCall(method, options, Response.self) { sink in
            sink.finishRequests(with: bytes)
        }
    }

    /// Makes a client-streaming call.
    public func clientStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor, requests: AsyncStream<Request>, options: CallOptions = CallOptions()
    ) async throws -> Response {
        let responses = streamingCall(method, options, Response.self) { sink in
            await sink.pump(requests)
        }
        var result: Response? = nil
        for try await r in responses {
            if result != nil {
                throw RPCError(code: .internalError, message: "\(method.path) on \(target): the server sent more than one response")
            }
            result = r
        }
        guard let result else {
            throw RPCError(code: .internalError, message: "\(method.path) on \(target): the server sent no response")
        }
        return result
    }

    /// Makes a bidirectional-streaming call.
    public func bidirectionalStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor, requests: AsyncStream<Request>, options: CallOptions = CallOptions()
    ) -> AsyncThrowingStream<Response, any Error> {
        streamingCall(method, options, Response.self) { sink in
            await sink.pump(requests)
        }
    }

    private func streamingCall<Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor, _ options: CallOptions, _: Response.Type,
        _ produce: @escaping @Sendable (RequestSink) async -> Void
    ) -> AsyncThrowingStream<Response, any Error> {
        guard let core else {
            let error = setupError!
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
        let target = self.target
        let handle = CallHandle()
        let source = ResponseSource(core: core, handle: handle, description: "\(method.path) on \(target)")
        let sink = RequestSink(core: core, handle: handle, compression: core.requestCompression(options))
        let starter = Task {
            if options.waitForReady {
                do { try await self.waitUntilReady(timeout: options.timeout ?? .seconds(86400)) } catch {
                    core.loop.execute { handle.end(error) }
                    return
                }
            }
            core.loop.execute {
                if handle.cancelled {
                    handle.end(RPCError(code: .cancelled, message: "\(method.path) on \(target) was cancelled"))
                    return
                }
                let call = core.makeCall(
                    method.path, options,
                    onMessage: { handle.deliver($0) },
                    onClose: { error in
                        handle.pump?.cancel()
                        handle.end(error)
                    })
                call.holdsMessages = { [unowned handle] in !handle.queue.isEmpty }
                handle.call = call
                core.start(call, timeout: options.timeout)
            }
            await produce(sink)
        }
        core.loop.execute { handle.pump = starter }
        // Pull-based: each message is taken when the caller asks for it, and only then is its
        // DATA acknowledged to the server. Dropping the stream cancels the call.
        return AsyncThrowingStream(unfolding: {
            guard let bytes = try await source.next() else { return nil }
            return try Self.decode(Response.self, bytes, method)
        })
    }

    private static func decode<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8], _ method: GRPCMethodDescriptor) throws -> M {
        do { return try M(serializedBytes: bytes) } catch {
            throw RPCError(code: .internalError, message: "cannot decode \(M.protoMessageName) from \(method.path): \(error)")
        }
    }
}

/// Loop-confined references of one call, shared with the closures that cancel it, and the
/// response messages waiting for the caller.
final class CallHandle: @unchecked Sendable {
    var call: ClientCall? = nil
    var cancelled = false
    var pump: Task<Void, Never>? = nil
    var queue = MessageQueue()
    private var waiter: CheckedContinuation<[UInt8]?, any Error>? = nil
    private var ended = false
    private var error: (any Error)? = nil

    func deliver(_ message: [UInt8]) {
        if let w = waiter {
            waiter = nil
            w.resume(returning: message)
        } else {
            queue.append(message)
        }
    }

    func end(_ error: (any Error)?) {
        if ended { return }
        ended = true
        self.error = error
        if let w = waiter {
            waiter = nil
            if let error { w.resume(throwing: error) } else { w.resume(returning: nil) }
        }
    }

    /// The next message, the end (nil), an error, or nothing yet (outer nil).
    func take() -> Result<[UInt8]?, any Error>? {
        if !queue.isEmpty {
            let m = queue.removeFirst()
            if queue.isEmpty, let call, let conn = call.connection { conn.messagesTaken(call) }
            return .success(m)
        }
        if ended { return error.map { .failure($0) } ?? .success(nil) }
        return nil
    }

    func wait(_ c: CheckedContinuation<[UInt8]?, any Error>) { waiter = c }
}

/// The caller's side of a call's responses; dropping it cancels the call.
final class ResponseSource: Sendable {
    let core: ChannelCore
    let handle: CallHandle
    let description: String

    init(core: ChannelCore, handle: CallHandle, description: String) {
        self.core = core
        self.handle = handle
        self.description = description
    }

    deinit {
        let core = self.core, handle = self.handle, description = self.description
        core.loop.execute { Self.cancel(core, handle, description) }
    }

    private static func cancel(_ core: ChannelCore, _ handle: CallHandle, _ description: String) {
        handle.cancelled = true
        handle.pump?.cancel()
        let error = RPCError(code: .cancelled, message: "\(description) was cancelled")
        if let call = handle.call, !call.finished { core.cancel(call, error) } else { handle.end(error) }
    }

    func next() async throws -> [UInt8]? {
        let core = self.core, handle = self.handle, description = self.description
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<[UInt8]?, any Error>) in
                core.loop.execute {
                    if let r = handle.take() { c.resume(with: r) } else { handle.wait(c) }
                }
            }
        } onCancel: {
            core.loop.execute { Self.cancel(core, handle, description) }
        }
    }
}

/// Feeds request messages into a call from the caller's task, with back-pressure.
struct RequestSink: Sendable {
    let core: ChannelCore
    let handle: CallHandle
    /// How request messages are compressed; nil sends them as they are.
    let compression: GRPCCompression?

    /// Queues the only request message and half-closes.
    func finishRequests(with bytes: [UInt8]) {
        let compressed = compression?.compress(bytes)
        core.loop.execute {
            guard let call = handle.call, !call.finished else { return }
            call.out.append(message: bytes, compressed: compressed)
            call.endRequests()
            call.connection?.resume(call)
        }
    }

    /// Sends every message of `requests`, then half-closes.
    func pump<Request: ProtoMessage>(_ requests: AsyncStream<Request>) async {
        for await request in requests {
            if Task.isCancelled { return }
            do { try await send(request.serializedBytes()) } catch { return }
        }
        core.loop.execute {
            guard let call = handle.call, !call.finished else { return }
            call.endRequests()
            call.connection?.resume(call)
        }
    }

    private func send(_ bytes: [UInt8]) async throws {
        let compressed = compression?.compress(bytes)
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            core.loop.execute {
                guard let call = handle.call, !call.finished else {
                    c.resume(throwing: RPCError(code: .cancelled, message: "the call ended"))
                    return
                }
                call.out.append(message: bytes, compressed: compressed)
                call.connection?.resume(call)
                if call.out.bytes < HTTP2Connection.outputCap { c.resume() } else { call.writeWaiters.append(c) }
            }
        }
    }
}

/// A channel's connection state. Loop thread only.
final class ChannelCore: @unchecked Sendable {
    let loop: EventLoop
    let address: SocketAddress
    let target: String
    let configuration: GRPCChannelConfiguration
    let authority: String
    private var connection: ClientConnection? = nil
    /// The TCP handshake in flight, if any, and who waits for it.
    private var pending: PendingConnect? = nil
    private var waiters: [(id: Int, done: (Result<ClientConnection, RPCError>) -> Void)] = []
    private var nextWaiterID = 0
    private var failures = 0
    private var nextAttempt: UInt64 = 0
    private var lastError: RPCError? = nil
    private var closed = false

    init(loop: EventLoop, address: SocketAddress, target: String, configuration: GRPCChannelConfiguration) {
        self.loop = loop
        self.address = address
        self.target = target
        self.configuration = configuration
        if let a = configuration.authority {
            authority = a
        } else if case .tcp = address {
            authority = address.description
        } else {
            authority = "localhost"
        }
    }

    func close() {
        closed = true
        connection?.close(reason: "the channel was closed")
        connection = nil
        if let p = pending {
            pending = nil
            p.abandon(on: loop)
            Sys.close(p.fd)
            fail(waitersOf: RPCError(code: .unavailable, message: "the channel to \(target) was closed while connecting"))
        }
    }

    /// Calls `done` with a usable connection, connecting when there is none (unless within the
    /// backoff pause). A TCP connect that does not complete at once is waited for on the loop
    /// (writability, then `SO_ERROR`), so other calls keep running meanwhile; `done` then runs
    /// when it finishes, fails, or exceeds ``GRPCChannelConfiguration/connectTimeout``.
    ///
    /// - Returns: the waiter's id when `done` has not run yet (see ``removeWaiter(_:)``).
    @discardableResult
    private func withConnection(
        ignoringBackoff: Bool, _ done: @escaping (Result<ClientConnection, RPCError>) -> Void
    ) -> Int? {
        if closed {
            done(.failure(RPCError(code: .unavailable, message: "the channel to \(target) is closed")))
            return nil
        }
        if let c = connection, c.usable {
            done(.success(c))
            return nil
        }
        if pending == nil {
            connection = nil
            if !ignoringBackoff, let e = lastError, monotonicNanos() < nextAttempt {
                done(.failure(e))
                return nil
            }
            do {
                if let c = try connect() {
                    succeeded(c)
                    done(.success(c))
                    return nil
                }
            } catch {
                done(.failure(failed(error)))
                return nil
            }
        }
        let id = nextWaiterID
        nextWaiterID &+= 1
        waiters.append((id, done))
        return id
    }

    /// Forgets a waiter of ``withConnection(ignoringBackoff:_:)`` whose caller gave up; false when it already ran.
    private func removeWaiter(_ id: Int) -> Bool {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return false }
        waiters.remove(at: index)
        return true
    }

    private func succeeded(_ c: ClientConnection) {
        failures = 0
        lastError = nil
        connection = c
    }

    /// Counts a failed attempt, sets the pause before the next one, and returns the error calls get.
    private func failed(_ error: SystemError) -> RPCError {
        failures += 1
        var pause = configuration.initialBackoff
        for _ in 1..<min(failures, 20) { pause = pause * 1.6 }
        pause = min(pause, configuration.maxBackoff)
        nextAttempt = monotonicNanos() &+ UInt64(clamping: pause.wholeNanoseconds)
        let detail =
            error.errno == ETIMEDOUT && error.call == "connect"
            ? "no answer within \(configuration.connectTimeout) (\(error.reason))" : error.reason
        let e = RPCError(code: .unavailable, message: "cannot connect to \(target): \(detail)")
        lastError = e
        return e
    }

    private func fail(waitersOf error: RPCError) {
        let list = waiters
        waiters.removeAll()
        for w in list { w.done(.failure(error)) }
    }

    /// Starts connecting: the connection when the socket connected at once, nil when a TCP
    /// handshake is in flight (``pending``).
    private func connect() throws(SystemError) -> ClientConnection? {
        let fd = try Sys.socket(address.family, Int32(SOCK_STREAM.rawValue))
        do throws(SystemError) {
            let rc = try address.withSockAddr { (sa, len) throws(SystemError) -> Int32 in
                while true {
                    if Glibc.connect(fd, sa, len) == 0 { return 0 }
                    if errno != EINTR { return errno }
                }
            }
            if rc == EINPROGRESS {
                let p = PendingConnect(fd: fd) { [weak self] p in self?.finishConnecting(p) }
                p.token = try loop.register(fd, events: Epoll.writable, p)
                p.registered = true
                p.timer = loop.schedule(after: configuration.connectTimeout) { [weak self, weak p] in
                    guard let self, let p else { return }
                    p.timedOut = true
                    self.finishConnecting(p)
                }
                pending = p
                return nil
            }
            if rc != 0 { throw SystemError(call: "connect", errno: rc, subject: target) }
            return try makeConnection(fd)
        } catch {
            Sys.close(fd)
            throw error
        }
    }

    /// The handshake of ``pending`` finished (or timed out): hand the connection or the error to the waiters.
    private func finishConnecting(_ p: PendingConnect) {
        guard pending === p else { return }
        pending = nil
        p.abandon(on: loop)
        let code = p.timedOut ? ETIMEDOUT : Sys.socketError(p.fd)
        let result: Result<ClientConnection, RPCError>
        do throws(SystemError) {
            if code != 0 { throw SystemError(call: "connect", errno: code, subject: target) }
            let c = try makeConnection(p.fd)
            succeeded(c)
            result = .success(c)
        } catch {
            Sys.close(p.fd)
            result = .failure(failed(error))
        }
        let list = waiters
        waiters.removeAll()
        for w in list { w.done(result) }
    }

    private func makeConnection(_ fd: Int32) throws(SystemError) -> ClientConnection {
        if case .tcp = address { try? Sys.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1) }
        let conn = ClientConnection(loop: loop, fd: fd, target: target)
        conn.onClosed = { [weak self] c in
            if self?.connection === c { self?.connection = nil }
        }
        let keepalive = configuration.keepaliveInterval.map { ($0, configuration.keepaliveTimeout) }
        try conn.start(keepalive: keepalive)
        return conn
    }

    /// Calls `done` once a server answers (its SETTINGS arrived) or connecting failed; gives up
    /// with UNAVAILABLE after `timeout` when the connect has not finished by then.
    func connectForReady(timeout: Duration, _ done: @escaping (RPCError?) -> Void) {
        let id = withConnection(ignoringBackoff: true) { result in
            switch result {
            case .failure(let e): done(e)
            case .success(let c): c.whenReady(done)
            }
        }
        guard let id else { return }
        let target = self.target
        loop.schedule(after: timeout) { [weak self] in
            guard let self, self.removeWaiter(id) else { return }
            done(RPCError(code: .unavailable, message: "connecting to \(target) did not finish within \(timeout)"))
        }
    }

    /// The encoding of a call's requests: the call's own, else the channel's; nil for none.
    func requestCompression(_ options: CallOptions) -> GRPCCompression? {
        guard let c = options.compression ?? configuration.compression, !c.isIdentity else { return nil }
        return c
    }

    func makeCall(_ path: String, _ options: CallOptions, onMessage: @escaping ([UInt8]) -> Void, onClose: @escaping (RPCError?) -> Void) -> ClientCall {
        var h = HeaderBlock()
        h.add(":method", "POST")
        h.add(":scheme", "http")
        h.add(":path", path)
        h.add(":authority", authority)
        h.add("content-type", "application/grpc")
        h.add("te", "trailers")
        h.add("user-agent", "swift-csi-h2/1.0")
        if let c = requestCompression(options) { h.add("grpc-encoding", c.name) }
        h.add("grpc-accept-encoding", GRPCCompression.acceptEncoding)
        if let t = options.timeout { h.add("grpc-timeout", GRPCTimeout.encode(t)) }
        for (k, v) in options.metadata.wireHeaders where k != "grpc-internal-wait-for-ready" { h.add(k, v) }
        return ClientCall(path: path, headers: h, maxMessageSize: configuration.maxReceiveMessageSize, onMessage: onMessage, onClose: onClose)
    }

    /// Arms the call's deadline, then sends its headers once there is a connection (which may
    /// first have to be made; the deadline covers that wait too).
    func start(_ call: ClientCall, timeout: Duration?) {
        if let timeout {
            call.timer = loop.schedule(after: timeout) { [weak self] in
                guard let self else { return }
                let connecting = call.connection == nil && self.pending != nil ? " while connecting to \(self.target)" : ""
                self.cancel(
                    call,
                    RPCError(
                        code: .deadlineExceeded,
                        message: "\(call.path) on \(self.target) exceeded its deadline of \(timeout)\(connecting)"))
            }
        }
        call.connectWaiter = withConnection(ignoringBackoff: false) { result in
            call.connectWaiter = nil
            if call.finished { return }
            switch result {
            case .failure(let e):
                call.complete(e)
            case .success(let conn):
                if let e = conn.submit(call) { call.complete(e) }
            }
        }
    }

    func cancel(_ call: ClientCall, _ error: RPCError) {
        if let id = call.connectWaiter {
            call.connectWaiter = nil
            _ = removeWaiter(id)
        }
        if let c = call.connection { c.cancel(call, error) } else { call.complete(error) }
    }

    /// A unary call: one request, exactly one response.
    func unaryCall(_ path: String, _ request: [UInt8], _ options: CallOptions) async throws -> [UInt8] {
        let handle = CallHandle()
        let compressed = requestCompression(options)?.compress(request)
        let target = self.target
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<[UInt8], any Error>) in
                loop.execute {
                    if handle.cancelled {
                        c.resume(throwing: RPCError(code: .cancelled, message: "\(path) on \(target) was cancelled"))
                        return
                    }
                    var response: [UInt8]? = nil
                    var count = 0
                    let call = self.makeCall(path, options, onMessage: { bytes in
                        count += 1
                        if count == 1 { response = bytes }
                    }, onClose: { error in
                        if let error { c.resume(throwing: error) }
                        else if count == 1 { c.resume(returning: response!) }
                        else {
                            c.resume(throwing: RPCError(code: .internalError, message: "\(path) on \(target): expected one response message, received \(count)"))
                        }
                    })
                    call.out.append(message: request, compressed: compressed)
                    call.endRequests()
                    handle.call = call
                    self.start(call, timeout: options.timeout)
                }
            }
        } onCancel: {
            loop.execute {
                handle.cancelled = true
                if let call = handle.call {
                    self.cancel(call, RPCError(code: .cancelled, message: "\(path) on \(target) was cancelled"))
                }
            }
        }
    }
}

/// A TCP connect in flight: its socket waits on the loop for writability. Loop thread only.
final class PendingConnect: LoopSelectable, @unchecked Sendable {
    let fd: Int32
    var token: UInt64 = 0
    var registered = false
    var timer: LoopTimer? = nil
    var timedOut = false
    private let onEvent: (PendingConnect) -> Void

    init(fd: Int32, onEvent: @escaping (PendingConnect) -> Void) {
        self.fd = fd
        self.onEvent = onEvent
    }

    func handleEvent(_ events: UInt32) { onEvent(self) }

    /// Stops watching the socket (which stays open) and cancels the timeout.
    func abandon(on loop: EventLoop) {
        timer?.cancel()
        timer = nil
        if registered {
            registered = false
            loop.deregister(fd, token: token)
        }
    }
}
