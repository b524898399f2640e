#if canImport(Glibc)
import Glibc
#endif
import CNGHTTP2
import Platform
import RPCCore

/// One call on a client connection: its state machine (RPCCore) and what only the transport holds
/// (the request queue, the timer, the continuations, the callbacks). Loop thread only.
final class ClientCall: @unchecked Sendable {
    let path: String
    let headers: HeaderBlock
    var streamID: Int32 = -1
    var out = OutboundMessages()
    /// The response's fields, messages and status; the request side's progress. Loop thread
    /// only, and no transition reaches back into the record: unchecked, as `ServerStream.machine`.
    @exclusivity(unchecked) var machine: ClientStreamStateMachine
    var timer: LoopTimer? = nil
    /// The call's place among the channel's waiters for a connect in flight.
    var connectWaiter: Int? = nil
    var writeWaiters: [CheckedContinuation<Void, any Error>] = []
    /// Strong on purpose (a weak reference would slow every retain of the connection).
    var connection: ClientConnection? = nil
    /// Response DATA not yet acknowledged because messages wait in `holdsMessages`' queue.
    var unconsumed = 0
    /// True while response messages wait for the caller (then DATA is acknowledged later).
    var holdsMessages: () -> Bool = { false }
    /// Each response message, as it arrives.
    let onMessage: ([UInt8]) -> Void
    /// Once, with nil for OK or the error.
    let onClose: (RPCError?) -> Void

    init(path: String, headers: HeaderBlock, maxMessageSize: Int, onMessage: @escaping ([UInt8]) -> Void, onClose: @escaping (RPCError?) -> Void) {
        self.path = path
        self.headers = headers
        self.machine = ClientStreamStateMachine(maxMessageSize: maxMessageSize)
        self.onMessage = onMessage
        self.onClose = onClose
    }

    /// Whether the call has ended locally.
    var finished: Bool { machine.finished }

    /// The caller has sent its last request message.
    func endRequests() { machine.endRequests() }

    /// Ends the call locally. Idempotent.
    func complete(_ error: RPCError?) {
        guard machine.complete() else { return }
        timer?.cancel()
        connection = nil
        let waiters = writeWaiters
        writeWaiters.removeAll()
        for w in waiters { w.resume(throwing: error ?? RPCError(code: .cancelled, message: "the call ended")) }
        onClose(error)
    }
}

/// The client side of one HTTP/2 connection. Loop thread only.
final class ClientConnection: HTTP2Connection, @unchecked Sendable {
    let target: String
    var calls: [Int32: ClientCall] = [:]
    private(set) var ready = false
    private(set) var goingAway = false
    private var readyWaiters: [(RPCError?) -> Void] = []
    var onClosed: ((ClientConnection) -> Void)? = nil
    private var pingTimer: LoopTimer? = nil
    private var pingOutstanding = false
    private var pingDeadline: LoopTimer? = nil

    init(loop: EventLoop, fd: Int32, target: String) {
        self.target = target
        super.init(loop: loop, fd: fd, peerName: target)
    }

    func start(keepalive: (interval: Duration, timeout: Duration)?) throws(SystemError) {
        var s: OpaquePointer? = nil
        let rv = nghttp2_session_client_new2(
            &s, ClientCallbacks.shared.callbacks, Unmanaged.passUnretained(self).toOpaque(), ClientCallbacks.options.option)
        guard rv == 0, let s else { throw SystemError(call: "nghttp2_session_client_new2", errno: ENOMEM) }
        session = s
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: 1 << 20),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: 64 << 10),
        ]
        nghttp2_submit_settings(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        nghttp2_session_set_local_window_size(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, 16 << 20)
        try activate()
        if let keepalive { armKeepalive(keepalive) }
    }

    private func armKeepalive(_ k: (interval: Duration, timeout: Duration)) {
        pingTimer = loop.schedule(after: k.interval) { [self] in
            guard !self.isClosed else { return }
            if !self.pingOutstanding {
                self.pingOutstanding = true
                nghttp2_submit_ping(self.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
                self.scheduleFlush()
                self.pingDeadline = self.loop.schedule(after: k.timeout) { [self] in
                    guard self.pingOutstanding, !self.isClosed else { return }
                    self.close(reason: "\(self.target) did not answer a keepalive ping within \(k.timeout)")
                }
            }
            self.armKeepalive(k)
        }
    }

    func pingAcknowledged() {
        pingOutstanding = false
        pingDeadline?.cancel()
    }

    /// Calls `body` once the server's SETTINGS arrived (nil) or the connection failed.
    func whenReady(_ body: @escaping (RPCError?) -> Void) {
        if ready { body(nil) } else if isClosed { body(closedError()) } else { readyWaiters.append(body) }
    }

    func closedError() -> RPCError {
        RPCError(code: .unavailable, message: "the connection to \(target) closed" + (closeReason.map { ": \($0)" } ?? ""))
    }

    func settingsReceived() {
        if ready { return }
        ready = true
        let w = readyWaiters
        readyWaiters.removeAll()
        for body in w { body(nil) }
    }

    func goawayReceived() { goingAway = true }

    /// Whether new calls may use this connection.
    var usable: Bool { !isClosed && !goingAway }

    override func didClose() {
        pingTimer?.cancel()
        pingDeadline?.cancel()
        let error = closedError()
        let w = readyWaiters
        readyWaiters.removeAll()
        for body in w { body(error) }
        let all = calls
        calls.removeAll()
        for call in all.values { call.complete(error) }
        onClosed?(self)
    }

    /// Submits `call`'s HEADERS (and any queued messages). Returns false when nghttp2 refused.
    func submit(_ call: ClientCall) -> RPCError? {
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: ClientCallbacks.read)
        let id = call.headers.withNV { nva, n in nghttp2_submit_request(session, nil, nva, n, &provider, nil) }
        guard id > 0 else {
            return RPCError(code: .unavailable, message: "cannot start \(call.path) on \(target): \(String(cString: nghttp2_strerror(id)))")
        }
        call.streamID = id
        call.connection = self
        calls[id] = call
        scheduleFlush()
        return nil
    }

    /// New data or the end of the requests is queued on `call`.
    func resume(_ call: ClientCall) {
        guard call.streamID > 0, !call.finished else { return }
        if call.machine.resume() { nghttp2_session_resume_data(session, call.streamID) }
        scheduleFlush()
    }

    /// Resets the stream (cancellation or local deadline) and completes the call with `error`.
    func cancel(_ call: ClientCall, _ error: RPCError) {
        if call.streamID > 0 && !isClosed && calls[call.streamID] != nil {
            if call.unconsumed > 0 {
                nghttp2_session_consume_connection(session, call.unconsumed)
                call.unconsumed = 0
            }
            nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), call.streamID, NGHTTP2_CANCEL.rawValue)
            calls[call.streamID] = nil
            scheduleFlush()
        }
        call.complete(error)
    }

    // MARK: Callback events

    func header(_ id: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        guard let call = calls[id] else { return }
        if let c = call.machine.receiveHeader(name: name, value: value) {
            call.machine.acceptCompression(c, decompressor: ZlibDecompressor(), peer: "the server")
        }
    }

    func data(_ id: Int32, _ chunk: UnsafeRawBufferPointer) {
        guard let call = calls[id], !call.finished else {
            consumed.append((id, chunk.count))
            return
        }
        if let error = call.machine.receiveData(chunk, path: call.path, target: target, call.onMessage) {
            cancel(call, error)
        }
        if !call.finished && call.holdsMessages() {
            call.unconsumed += chunk.count
        } else {
            consumed.append((id, chunk.count))
        }
    }

    /// DATA bytes to acknowledge after `mem_recv` returns (flow control is manual).
    private var consumed: [(Int32, Int)] = []

    override func afterReceive() {
        if consumed.isEmpty { return }
        for (id, n) in consumed { nghttp2_session_consume(session, id, n) }
        consumed.removeAll(keepingCapacity: true)
    }

    /// The caller took the last queued response message of `call`: acknowledge its DATA.
    func messagesTaken(_ call: ClientCall) {
        guard call.unconsumed > 0, !isClosed else { return }
        nghttp2_session_consume(session, call.streamID, call.unconsumed)
        call.unconsumed = 0
        scheduleFlush()
    }

    func streamClosed(_ id: Int32, errorCode: UInt32) {
        guard let call = calls.removeValue(forKey: id) else { return }
        if call.unconsumed > 0 {
            consumed.append((id, call.unconsumed))
            call.unconsumed = 0
        }
        call.complete(call.machine.streamClosed(resetCode: errorCode, path: call.path, target: target))
    }

    func read(_ id: Int32, _ buf: UnsafeMutablePointer<UInt8>, _ length: Int, _ flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let call = calls[id] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let n = call.out.read(into: buf, length: length)
        if !call.writeWaiters.isEmpty && call.out.bytes < Self.outputCap {
            let w = call.writeWaiters
            call.writeWaiters.removeAll()
            for c in w { c.resume() }
        }
        switch call.machine.read(copied: n, queueEmpty: call.out.isEmpty) {
        case .send: break
        case .endStream: flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        case .deferred: return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        return n
    }
}

/// nghttp2's callbacks for client sessions, set up once.
enum ClientCallbacks {
    final class Box: @unchecked Sendable {
        let callbacks: OpaquePointer
        init() {
            var cbs: OpaquePointer? = nil
            nghttp2_session_callbacks_new(&cbs)
            callbacks = cbs!
            nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, namelen, value, valuelen, _, user in
                connection(user, as: ClientConnection.self).header(
                    frame!.pointee.hd.stream_id, name: UnsafeBufferPointer(start: name, count: namelen),
                    value: UnsafeBufferPointer(start: value, count: valuelen))
                return 0
            }
            nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, user in
                let f = frame!.pointee
                let conn = connection(user, as: ClientConnection.self)
                switch UInt32(f.hd.type) {
                case NGHTTP2_SETTINGS.rawValue:
                    if f.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 { conn.settingsReceived() }
                case NGHTTP2_GOAWAY.rawValue:
                    conn.goawayReceived()
                case NGHTTP2_PING.rawValue:
                    if f.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 { conn.pingAcknowledged() }
                default: break
                }
                return 0
            }
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, id, data, len, user in
                connection(user, as: ClientConnection.self).data(id, UnsafeRawBufferPointer(start: data, count: len))
                return 0
            }
            nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, id, code, user in
                connection(user, as: ClientConnection.self).streamClosed(id, errorCode: code)
                return 0
            }
        }
    }
    static let shared = Box()
    static let options: SessionOptions = {
        let o = SessionOptions(server: false)
        // Response DATA is acknowledged as callers take messages (see ClientConnection.data).
        nghttp2_option_set_no_auto_window_update(o.option, 1)
        return o
    }()

    static let read: nghttp2_data_source_read_callback = { _, id, buf, length, flags, _, user in
        connection(user, as: ClientConnection.self).read(id, buf!, length, flags!)
    }
}
