#if canImport(Glibc)
import Glibc
#endif
import CNGHTTP2
import Platform
import RPCCore

/// Response messages queued on a stream, read out by nghttp2's data provider.
struct OutboundMessages {
    private var chunks: [[UInt8]] = []
    private var head = 0
    private var offset = 0
    private(set) var bytes = 0

    var isEmpty: Bool { bytes == 0 }

    /// Queues an already compressed message with its 5-byte prefix (compressed flag set).
    mutating func append(compressed z: [UInt8]) {
        let p = GRPCFraming.compressedPrefix(length: z.count)
        chunks.append([p.0, p.1, p.2, p.3, p.4])
        chunks.append(z)
        bytes += 5 + z.count
    }

    /// Queues `message`, or its compressed form `compressed` when there is one.
    mutating func append(message: [UInt8], compressed: [UInt8]?) {
        if let compressed { append(compressed: compressed) } else { append(message: message) }
    }

    /// Queues `message` with its 5-byte prefix.
    mutating func append(message: [UInt8]) {
        let p = GRPCFraming.prefix(length: message.count)
        chunks.append([p.0, p.1, p.2, p.3, p.4])
        bytes += 5
        if !message.isEmpty {
            chunks.append(message)
            bytes += message.count
        }
    }

    /// Copies up to `length` bytes into `buffer`; returns how many.
    mutating func read(into buffer: UnsafeMutablePointer<UInt8>, length: Int) -> Int {
        var written = 0
        while written < length && head < chunks.count {
            let n = chunks[head].withUnsafeBufferPointer { chunk -> Int in
                let n = min(chunk.count - offset, length - written)
                (buffer + written).update(from: chunk.baseAddress! + offset, count: n)
                return n
            }
            written += n
            offset += n
            if offset == chunks[head].count {
                head += 1
                offset = 0
            }
        }
        bytes -= written
        if head == chunks.count {
            chunks.removeAll(keepingCapacity: true)
            head = 0
        }
        return written
    }
}

/// One gRPC call on a server connection: its state machine (RPCCore) and what only the transport
/// holds — the handler, its task and continuations, the deadline timer, the response queue. Loop
/// thread only.
final class ServerStream: @unchecked Sendable {
    let id: Int32
    /// Where the call is; every protocol decision is made here. Only the loop thread touches it
    /// and no transition reaches back into the record, so accesses never overlap: the runtime's
    /// exclusivity tracking, which a call into another module would need on every transition (a
    /// header field, a DATA chunk), is left out (`Benchmarks/RESULTS.md`, 2026-12-06).
    @exclusivity(unchecked) var machine: ServerStreamStateMachine
    var descriptor: GRPCMethodDescriptor? = nil
    /// This stream's share of the connection's buffered request bytes.
    var held = 0
    /// The context for a unary handler, kept until the request ends.
    var context: ServerContext? = nil
    var handler: GRPCRouter.Handler? = nil
    /// A streaming handler waiting for its next request message.
    var waiter: CheckedContinuation<[UInt8]?, any Error>? = nil
    var task: Task<Void, Never>? = nil
    var timer: LoopTimer? = nil
    var out = OutboundMessages()
    /// The encoding of response messages, when the server compresses and the client accepts it.
    var responseCompression: GRPCCompression? = nil
    var writeWaiters: [CheckedContinuation<Void, any Error>] = []

    init(id: Int32, maxMessageSize: Int, maxHeaderListSize: Int) {
        self.id = id
        self.machine = ServerStreamStateMachine(maxMessageSize: maxMessageSize, maxHeaderListSize: maxHeaderListSize)
    }

    /// Whether the call's status is decided or it was aborted.
    var done: Bool { machine.isDone }
    /// Whether nghttp2 has closed the stream.
    var closed: Bool { machine.closed }
}

/// The server side of one HTTP/2 connection carrying gRPC calls. Loop thread only.
final class ServerConnection: HTTP2Connection, @unchecked Sendable {
    let core: ServerCore
    let peer: PeerCredentials?
    var streams: [Int32: ServerStream] = [:]
    /// Streams whose request headers or body completed during the last `mem_recv`.
    private var ready: [ServerStream] = []
    private var shuttingDown = false
    private var lastRoute: (path: String, route: (GRPCMethodDescriptor, GRPCRouter.Handler))? = nil
    private var idleTimer: LoopTimer? = nil
    private var lastActive: UInt64 = monotonicNanos()

    init(core: ServerCore, loop: EventLoop, fd: Int32, peer: PeerCredentials?) {
        self.core = core
        self.peer = peer
        super.init(loop: loop, fd: fd, peerName: core.addressDescription)
    }

    /// Creates the nghttp2 session, sends SETTINGS and starts reading. Loop thread only.
    func start() throws(SystemError) {
        var s: OpaquePointer? = nil
        let rv = nghttp2_session_server_new2(
            &s, ServerCallbacks.shared.callbacks, Unmanaged.passUnretained(self).toOpaque(), core.sessionOptions.option)
        guard rv == 0, let s else { throw SystemError(call: "nghttp2_session_server_new2", errno: ENOMEM) }
        session = s
        let c = core.configuration
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: c.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: c.initialStreamWindowSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: c.maxFrameSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: c.maxHeaderListSize),
        ]
        nghttp2_submit_settings(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        nghttp2_session_set_local_window_size(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(c.connectionWindowSize))
        try activate()
        if let idle = c.idleTimeout { armIdleTimer(idle) }
    }

    private func armIdleTimer(_ idle: Duration) {
        // Strong captures: a weak reference would give the connection a side table and make every
        // retain in the nghttp2 callbacks take the slow path. Timers are cancelled on close.
        idleTimer = loop.schedule(after: idle / 2) { [self] in
            guard !self.isClosed else { return }
            if self.streams.isEmpty && monotonicNanos() &- self.lastActive >= UInt64(clamping: idle.wholeNanoseconds) {
                self.beginShutdown(reason: "idle")
            } else {
                self.armIdleTimer(idle)
            }
        }
    }

    /// Sends GOAWAY: calls in flight finish, new ones are refused; the connection closes once idle.
    func beginShutdown(reason: String) {
        if isClosed || shuttingDown { return }
        shuttingDown = true
        nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
            NGHTTP2_NO_ERROR.rawValue, nil, 0)
        scheduleFlush()
    }

    /// Closes now, cancelling every call.
    func forceClose() {
        close(reason: "server shut down")
    }

    override func didClose() {
        idleTimer?.cancel()
        for stream in streams.values { abortHandler(stream, RPCError(code: .cancelled, message: "the connection closed")) }
        streams.removeAll()
        core.connectionClosed(self)
    }

    // MARK: Callback events (recorded, acted on in afterReceive)

    func beginStream(_ id: Int32) {
        let c = core.configuration
        streams[id] = ServerStream(id: id, maxMessageSize: c.maxReceiveMessageSize, maxHeaderListSize: Int(c.maxHeaderListSize))
        lastActive = monotonicNanos()
    }

    /// Returns false when the header list grew over the limit.
    func header(_ id: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let stream = streams[id] else { return true }
        return stream.machine.receiveHeader(name: name, value: value)
    }

    func headersComplete(_ id: Int32, endStream: Bool) {
        guard let stream = streams[id] else { return }
        guard case .route(let compression) = stream.machine.receiveHeadersEnd(endStream: endStream) else { return }
        if let compression {
            stream.machine.acceptCompression(
                compression, decompressor: ZlibDecompressor(),
                peer: "the client on \(core.addressDescription)" + (peer.map { " (pid \($0.pid), uid \($0.uid))" } ?? ""))
        }
        ready.append(stream)
    }

    func data(_ id: Int32, _ chunk: UnsafeRawBufferPointer) {
        guard let stream = streams[id] else { return }
        let outcome = stream.machine.receiveData(chunk) { message in
            guard let w = stream.waiter else { return false }
            stream.waiter = nil
            w.resume(returning: message)
            return true
        }
        guard case .processed(let isReady, let failure) = outcome else {
            consumed.append((id, chunk.count))
            return
        }
        if isReady { ready.append(stream) }
        if let failure { fail(stream, failure) }
        updateHeld(stream)
        if held > core.configuration.maxBufferedRequestBytesPerConnection && !stream.done {
            fail(stream, RPCError(
                code: .resourceExhausted,
                message: "the connection holds more than \(core.configuration.maxBufferedRequestBytesPerConnection) bytes of unfinished requests"))
        }
        let n = stream.machine.acknowledge(received: chunk.count)
        if n > 0 { consumed.append((id, n)) }
    }

    /// DATA bytes to acknowledge after `mem_recv` returns (flow control is manual).
    private var consumed: [(Int32, Int)] = []

    /// Request bytes buffered across all calls (partial messages and messages not yet taken).
    private var held = 0

    private func updateHeld(_ stream: ServerStream) {
        let now = stream.machine.bufferedBytes
        held += now - stream.held
        stream.held = now
    }

    /// The next request message for a streaming handler; nil at the end. Loop thread only.
    private func takeMessage(_ stream: ServerStream) -> Result<[UInt8]?, any Error>? {
        switch stream.machine.takeMessage() {
        case .message(let m, let consume):
            updateHeld(stream)
            if consume > 0 {
                nghttp2_session_consume(session, stream.id, consume)
                scheduleFlush()
            }
            return .success(m)
        case .cancelled: return .failure(CancellationError())
        case .end: return .success(nil)
        case .wait: return nil
        }
    }

    /// Pulls the next request message, waiting for the client when none is queued.
    private func nextMessage(_ stream: ServerStream) async throws -> [UInt8]? {
        if loop.inEventLoop, let r = takeMessage(stream) { return try r.get() }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<[UInt8]?, any Error>) in
            self.onLoop {
                if let r = self.takeMessage(stream) { c.resume(with: r) } else { stream.waiter = c }
            }
        }
    }

    /// Wakes a streaming handler waiting for a message: with the end (nil) or `error`.
    private func wakeReader(_ stream: ServerStream, _ error: (any Error)?) {
        guard let w = stream.waiter else { return }
        stream.waiter = nil
        if let error { w.resume(throwing: error) } else { w.resume(returning: nil) }
    }

    func endStream(_ id: Int32) {
        guard let stream = streams[id], stream.machine.receiveEnd() else { return }
        ready.append(stream)
    }

    func streamClosed(_ id: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        let action = stream.machine.streamClosed(errorCode: errorCode)
        updateHeld(stream)
        if action.consume > 0 { consumed.append((id, action.consume)) }
        stream.timer?.cancel()
        if let error = action.abort { abortHandler(stream, error) }
        lastActive = monotonicNanos()
    }

    // MARK: Acting on events

    override func afterReceive() {
        if !consumed.isEmpty {
            for (id, n) in consumed { nghttp2_session_consume(session, id, n) }
            consumed.removeAll(keepingCapacity: true)
        }
        guard !ready.isEmpty else { return }
        let batch = ready
        ready.removeAll(keepingCapacity: true)
        for stream in batch where !stream.done && !stream.closed {
            var step = stream.machine.nextStep()
            if case .route = step {
                route(stream)
                step = stream.machine.nextStep()
            }
            switch step {
            case .none, .route: break
            case .fail(let error): fail(stream, error)
            case .endInbound: wakeReader(stream, nil)
            case .startUnary(let request):
                updateHeld(stream)
                if case .unary(let h) = stream.handler { startUnary(stream, h, request) }
            }
        }
        scheduleFlush()
    }

    private func route(_ stream: ServerStream) {
        switch stream.machine.validate() {
        case .httpError(let status, let message):
            var block = HeaderBlock()
            for (name, value) in ServerStreamStateMachine.httpErrorHeaders(status: status, message: message) { block.add(name, value) }
            block.withNV { nva, n in _ = nghttp2_submit_response(session, stream.id, nva, n, nil) }
        case .grpcError(let error):
            fail(stream, error)
        case .accept(let path, let timeout):
            if let allowed = core.configuration.allowedUIDs {
                let uid = peer?.uid
                guard let uid, allowed.contains(uid) else {
                    fail(stream, RPCError(code: .permissionDenied, message: "peer uid \(uid.map(String.init) ?? "unknown") is not allowed to call \(path)"))
                    return
                }
            }
            // Most connections call one method over and over: skip the hash for a repeat.
            let found: (GRPCMethodDescriptor, GRPCRouter.Handler)?
            if let last = lastRoute, last.path == path {
                found = last.route
            } else {
                found = core.router.handlers[path]
                if let found { lastRoute = (path, found) }
            }
            guard let (descriptor, handler) = found else {
                fail(stream, RPCError(code: .unimplemented, message: "unknown method \(path)"))
                return
            }
            stream.descriptor = descriptor
            stream.handler = handler
            if let c = core.configuration.responseCompression, !c.isIdentity, let accept = stream.machine.head.acceptEncoding,
                c.isAccepted(by: accept)
            {
                stream.responseCompression = c
            }
            var deadline: ContinuousClock.Instant? = nil
            if let timeout {
                deadline = ContinuousClock.now + timeout
                stream.timer = loop.schedule(after: timeout) { [self, stream] in
                    self.deadlineExceeded(stream)
                }
            }
            let context = ServerContext(method: descriptor, metadata: stream.machine.takeMetadata(), peer: peer, deadline: deadline)
            if case .streaming(let h) = handler {
                stream.machine.handlerStarts(streaming: true)
                startStreaming(stream, h, context)
            } else {
                stream.machine.handlerStarts(streaming: false)
                stream.context = context
            }
        }
    }

    private func deadlineExceeded(_ stream: ServerStream) {
        guard let status = stream.machine.deadlineExpired() else { return }
        stream.task?.cancel()
        if stream.machine.cancelHandler() { wakeReader(stream, CancellationError()) }
        fail(stream, status)
        scheduleFlush()
    }

    private func startUnary(
        _ stream: ServerStream, _ handler: @escaping @Sendable ([UInt8], ServerContext) async throws -> [UInt8],
        _ request: [UInt8]
    ) {
        guard let context = stream.context else {
            fail(stream, RPCError(code: .internalError, message: "\(stream.machine.pathDescription) lost its context"))
            return
        }
        stream.task = Task(executorPreference: loop) { [self] in
            do {
                let response = try await handler(request, context)
                self.onLoop { self.finishUnary(stream, response) }
            } catch {
                self.onLoop { self.fail(stream, error) }
            }
        }
    }

    private func startStreaming(
        _ stream: ServerStream,
        _ handler: @escaping @Sendable (AsyncThrowingStream<[UInt8], any Error>, @escaping @Sendable ([UInt8]) async throws -> Void, ServerContext) async throws -> Void,
        _ context: ServerContext
    ) {
        let requests = AsyncThrowingStream<[UInt8], any Error>(unfolding: { [self] in try await self.nextMessage(stream) })
        stream.task = Task(executorPreference: loop) { [self] in
            do {
                try await handler(requests, { bytes in try await self.send(stream, bytes) }, context)
                self.onLoop { self.finish(stream, status: nil) }
            } catch {
                self.onLoop { self.fail(stream, error) }
            }
        }
    }

    /// Runs `body` on the loop thread: directly when already there (the usual case).
    @inline(__always)
    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    // MARK: Responses

    private func finishUnary(_ stream: ServerStream, _ response: [UInt8]) {
        guard !stream.done, !stream.closed else { return }
        stream.out.append(message: response, compressed: stream.responseCompression?.compress(response))
        finish(stream, status: nil)
    }

    /// Queues a message; suspends while more than the cap is buffered on this stream.
    private func send(_ stream: ServerStream, _ bytes: [UInt8]) async throws {
        if loop.inEventLoop {
            try enqueue(stream, bytes)
            if stream.out.bytes < Self.outputCap { return }
            // The closure runs synchronously on this (the loop) thread.
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                stream.writeWaiters.append(c)
            }
            return
        }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            loop.execute {
                do { try self.enqueue(stream, bytes) } catch {
                    c.resume(throwing: error)
                    return
                }
                if stream.out.bytes < Self.outputCap { c.resume() } else { stream.writeWaiters.append(c) }
            }
        }
    }

    private func enqueue(_ stream: ServerStream, _ bytes: [UInt8]) throws {
        let action = stream.machine.sendMessage()
        if action == .reject { throw RPCError(code: .cancelled, message: "the call ended") }
        stream.out.append(message: bytes, compressed: stream.responseCompression?.compress(bytes))
        switch action {
        case .submitHeaders: submitHeaders(stream)
        case .resumeData: nghttp2_session_resume_data(session, stream.id)
        case .queue, .reject: break
        }
        scheduleFlush()
    }

    private func submitHeaders(_ stream: ServerStream) {
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: ServerCallbacks.read)
        let h = stream.responseCompression.map { $0.name == "gzip" ? ServerCallbacks.gzipHeaders : ServerCallbacks.deflateHeaders }
            ?? ServerCallbacks.okHeaders
        nghttp2_submit_response(session, stream.id, h.nva, h.count, &provider)
    }

    /// Ends the call with `status` (nil: OK).
    private func finish(_ stream: ServerStream, status: RPCError?) {
        let action = stream.machine.finish(status: status, messagesQueued: !stream.out.isEmpty)
        guard action.cleanUp else { return }
        stream.timer?.cancel()
        wakeReader(stream, nil)
        updateHeld(stream)
        resumeWaiters(stream, error: RPCError(code: .cancelled, message: "the call ended"))
        switch action.response {
        case .trailersOnly(let status): submitTrailersOnly(stream, status)
        case .submitHeaders: submitHeaders(stream)
        case .resumeData: nghttp2_session_resume_data(session, stream.id)
        case .trailersAfterData, .none: break
        }
        scheduleFlush()
    }

    /// Ends the call with an error (any error a handler throws).
    func fail(_ stream: ServerStream, _ error: any Error) {
        stream.context = nil
        finish(stream, status: ServerStreamStateMachine.status(for: error))
    }

    private func submitTrailersOnly(_ stream: ServerStream, _ status: RPCError) {
        var block = HeaderBlock()
        block.add(":status", "200")
        block.add("content-type", "application/grpc")
        if let encoding = stream.machine.head.encoding, encoding != "identity" {
            block.add("grpc-accept-encoding", GRPCCompression.acceptEncoding)  // what the client may use instead
        }
        addStatus(&block, status)
        block.withNV { nva, n in _ = nghttp2_submit_response(session, stream.id, nva, n, nil) }
    }

    private func addStatus(_ block: inout HeaderBlock, _ status: RPCError) {
        block.add("grpc-status", String(status.code.rawValue))
        if !status.message.isEmpty { block.add("grpc-message", GRPCPercentEncoding.encode(status.message)) }
        for (k, v) in status.metadata.wireHeaders { block.add(k, v) }
    }

    /// The data provider: copies queued bytes; at the end submits the trailers.
    func read(_ id: Int32, _ buf: UnsafeMutablePointer<UInt8>, _ length: Int, _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = streams[id] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let n = stream.out.read(into: buf, length: length)
        if !stream.writeWaiters.isEmpty && stream.out.bytes < Self.outputCap { resumeWaiters(stream, error: nil) }
        switch stream.machine.read(copied: n, queueEmpty: stream.out.isEmpty) {
        case .send: break
        case .sendTrailers(let status):
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            if status.code == .ok && status.metadata.count == 0 {
                let t = ServerCallbacks.okTrailers
                nghttp2_submit_trailer(session, id, t.nva, t.count)
            } else {
                var block = HeaderBlock()
                addStatus(&block, status)
                block.withNV { nva, c in _ = nghttp2_submit_trailer(session, id, nva, c) }
            }
        case .deferred:
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        return n
    }

    private func resumeWaiters(_ stream: ServerStream, error: RPCError?) {
        guard !stream.writeWaiters.isEmpty else { return }
        let waiters = stream.writeWaiters
        stream.writeWaiters.removeAll()
        for w in waiters {
            if let error { w.resume(throwing: error) } else { w.resume() }
        }
    }

    /// The peer went away or reset: cancel the handler, answer nothing.
    private func abortHandler(_ stream: ServerStream, _ error: RPCError) {
        stream.timer?.cancel()
        stream.task?.cancel()
        if stream.machine.abort() { wakeReader(stream, CancellationError()) }
        updateHeld(stream)
        resumeWaiters(stream, error: error)
        stream.context = nil
    }
}

/// nghttp2's callbacks for server sessions, set up once.
enum ServerCallbacks {
    final class Box: @unchecked Sendable {
        let callbacks: OpaquePointer
        init() {
            var cbs: OpaquePointer? = nil
            nghttp2_session_callbacks_new(&cbs)
            callbacks = cbs!
            nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, user in
                let f = frame!.pointee
                if f.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) && f.headers.cat == NGHTTP2_HCAT_REQUEST {
                    connection(user, as: ServerConnection.self).beginStream(f.hd.stream_id)
                }
                return 0
            }
            nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, namelen, value, valuelen, _, user in
                let conn = connection(user, as: ServerConnection.self)
                let ok = conn.header(
                    frame!.pointee.hd.stream_id, name: UnsafeBufferPointer(start: name, count: namelen),
                    value: UnsafeBufferPointer(start: value, count: valuelen))
                return ok ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
            }
            nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, user in
                let f = frame!.pointee
                let conn = connection(user, as: ServerConnection.self)
                let endStream = f.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
                switch UInt32(f.hd.type) {
                case NGHTTP2_HEADERS.rawValue:
                    if f.headers.cat == NGHTTP2_HCAT_REQUEST {
                        conn.headersComplete(f.hd.stream_id, endStream: endStream)
                    } else if endStream {
                        conn.endStream(f.hd.stream_id)
                    }
                case NGHTTP2_DATA.rawValue:
                    if endStream { conn.endStream(f.hd.stream_id) }
                default: break
                }
                return 0
            }
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, id, data, len, user in
                connection(user, as: ServerConnection.self).data(id, UnsafeRawBufferPointer(start: data, count: len))
                return 0
            }
            nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, id, code, user in
                connection(user, as: ServerConnection.self).streamClosed(id, errorCode: code)
                return 0
            }
        }
    }
    static let shared = Box()

    static let read: nghttp2_data_source_read_callback = { _, id, buf, length, flags, _, user in
        connection(user, as: ServerConnection.self).read(id, buf!, length, flags!)
    }

    static let okHeaders = StaticHeaders([
        (":status", "200"), ("content-type", "application/grpc"), ("grpc-accept-encoding", GRPCCompression.acceptEncoding),
    ])
    static let gzipHeaders = StaticHeaders([
        (":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "gzip"),
        ("grpc-accept-encoding", GRPCCompression.acceptEncoding),
    ])
    static let deflateHeaders = StaticHeaders([
        (":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "deflate"),
        ("grpc-accept-encoding", GRPCCompression.acceptEncoding),
    ])
    static let okTrailers = StaticHeaders([("grpc-status", "0")])
}
