// The server side of one gRPC call as a value: what has been received, what the handler has done,
// what has been sent. Each transition returns what the transport must do; the transport (H2's
// ServerConnection) does it with nghttp2. No sockets, no C, no allocation of its own: it is stored
// inline in the transport's per-stream record.

/// The state of one gRPC call on a server, from its HEADERS to its status.
///
/// The transport feeds it what the peer sends (``receiveHeader(name:value:)``,
/// ``receiveHeadersEnd(endStream:)``, ``receiveData(_:deliver:)``, ``receiveEnd()``,
/// ``streamClosed(errorCode:)``) and what the handler does (``handlerStarts(streaming:)``,
/// ``takeMessage()``, ``sendMessage()``, ``finish(status:)``); each returns the action to take.
/// Illegal transitions are answered, never trapped on: a message after a unary request, a request
/// ending inside a message, an oversized message, a bad content-type or `grpc-timeout` each end
/// the call with a status whose code and message say what was wrong.
package struct ServerStreamStateMachine: Sendable {
    /// How far the request has come.
    package enum Phase: Sendable, Equatable {
        /// Header fields are arriving.
        case receivingHeaders
        /// The headers are complete; the call is not routed yet.
        case headersReceived
        /// Routed to a unary handler, which starts once the request has ended.
        case awaitingUnaryRequest
        /// The handler runs.
        case running
        /// The status is decided (or the call was aborted): nothing more is accepted.
        case done
    }

    /// What the handler's request stream has been told.
    package enum Inbound: Sendable, Equatable {
        /// Messages may still come.
        case open
        /// The client ended the request; after the queued messages the stream ends.
        case ended
        /// The handler was cancelled; its next read throws.
        case cancelled
    }

    /// Where the response is.
    package enum Response: Sendable, Equatable {
        /// Nothing sent yet.
        case idle
        /// HEADERS submitted with a data source; DATA flows from the transport's queue.
        case streaming(deferred: Bool)
        /// A response without a body (Trailers-Only, or an HTTP error) is submitted.
        case headersOnly
    }

    /// The request's header fields as received.
    package private(set) var head = GRPCRequestHead()
    /// The request's progress.
    package private(set) var phase = Phase.receivingHeaders {
        didSet { isDone = phase == .done }
    }
    /// Whether the status is decided or the call aborted. Stored, like every property the
    /// transport reads: reading a stored property of the machine inside the transport's record
    /// touches that field alone, where a computed one would copy the whole machine first.
    package private(set) var isDone = false
    /// What the handler's request stream has been told (streaming handlers).
    package private(set) var inbound = Inbound.open
    /// The response's progress.
    package private(set) var response = Response.idle
    /// Whether the client has ended its side (END_STREAM).
    package private(set) var requestEnded = false
    /// Whether nghttp2 has closed the stream.
    package private(set) var closed = false
    /// Whether the handler pulls messages (streaming) rather than taking one request (unary).
    package private(set) var streaming = false
    /// The status to send after the queued messages, once decided.
    package private(set) var trailers: RPCError? = nil
    /// Messages received and not yet taken by the handler.
    package private(set) var pending = MessageQueue()
    /// Bytes of ``pending`` messages.
    package private(set) var pendingBytes = 0
    /// DATA bytes behind queued messages, to acknowledge (WINDOW_UPDATE) once the handler takes them.
    package private(set) var unconsumed = 0
    /// Request bytes this call buffers: a partial message plus messages not yet taken. Stored (kept
    /// current by every transition) so that reading it from the transport copies nothing.
    package private(set) var bufferedBytes = 0
    private var headerBytes = 0
    private var deframer: GRPCMessageDeframer
    private let maxHeaderListSize: Int

    /// A call that refuses messages over `maxMessageSize` bytes and header lists over
    /// `maxHeaderListSize` bytes (names and values plus 32 bytes a field, as HTTP/2 counts them).
    package init(maxMessageSize: Int, maxHeaderListSize: Int) {
        self.deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
        self.maxHeaderListSize = maxHeaderListSize
    }

    private mutating func updateBufferedBytes() { bufferedBytes = deframer.bufferedBytes + pendingBytes }

    /// The method path, for messages.
    package var pathDescription: String { head.path ?? "the call" }

    // MARK: Receiving

    /// Records one header field. Returns false when the header list grew over the limit: the
    /// transport then fails the stream (nghttp2 resets it).
    package mutating func receiveHeader(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Bool {
        headerBytes += name.count + value.count + 32
        if headerBytes > maxHeaderListSize { return false }
        guard phase == .receivingHeaders else { return true }  // trailers from the client: ignored
        @inline(__always) func str() -> String { String(decoding: value, as: UTF8.self) }
        if name.first == UInt8(ascii: ":") {
            if name.elementsEqual(":path".utf8) { head.path = str() }
            else if name.elementsEqual(":method".utf8) { head.method = str() }
            return true
        }
        switch name.count {
        case 2 where name.elementsEqual("te".utf8): head.te = str()
        case 12 where name.elementsEqual("content-type".utf8): head.contentType = str()
        case 12 where name.elementsEqual("grpc-timeout".utf8): head.timeout = str()
        case 13 where name.elementsEqual("grpc-encoding".utf8): head.encoding = str()
        case 20 where name.elementsEqual("grpc-accept-encoding".utf8): head.acceptEncoding = str()
        default:
            let n = String(decoding: name, as: UTF8.self)
            if !GRPCRequestHead.isReserved(n) { head.metadata.addWire(name: n, value: Array(value)) }
        }
        return true
    }

    /// Records one header field given as strings (for tests and tools).
    package mutating func receiveHeader(_ name: String, _ value: String) -> Bool {
        let n = Array(name.utf8), v = Array(value.utf8)
        return n.withUnsafeBufferPointer { n in v.withUnsafeBufferPointer { v in receiveHeader(name: n, value: v) } }
    }

    /// What to do when the request's HEADERS are complete.
    package enum HeadersEndAction: Sendable, Equatable {
        /// Nothing (a second HEADERS frame, or a finished call).
        case none
        /// Route the call; when `compression` is set, the request's messages use that encoding
        /// and the transport supplies its decompressor (``acceptCompression(_:decompressor:peer:)``).
        case route(compression: GRPCCompression?)
    }

    /// The request's HEADERS frame is complete; `endStream` when it also ended the request.
    package mutating func receiveHeadersEnd(endStream: Bool) -> HeadersEndAction {
        guard phase == .receivingHeaders else { return .none }
        phase = .headersReceived
        if endStream { requestEnded = true }
        if let encoding = head.encoding, let c = GRPCCompression(name: encoding.utf8) { return .route(compression: c) }
        return .route(compression: nil)
    }

    /// Accepts request messages encoded with `compression`, undone by `decompressor`.
    package mutating func acceptCompression(_ compression: GRPCCompression, decompressor: any MessageDecompressor, peer: String) {
        deframer.compression = compression
        deframer.decompressor = decompressor
        deframer.peer = peer
    }

    /// What a DATA chunk led to.
    package enum DataOutcome: Sendable, Equatable {
        /// Not looked at (the call has ended, or its `grpc-encoding` is not supported and the
        /// call is answered with UNIMPLEMENTED): acknowledge the bytes at once.
        case ignored
        /// Deframed. `ready`: the call needs the transport's attention after this receive (a
        /// unary request got a second message). `failure`: end the call with this status.
        case processed(ready: Bool, failure: RPCError?)
    }

    /// Feeds a DATA chunk. Each complete message of a streaming call is first offered to
    /// `deliver` (a handler waiting for its next message takes it and returns true); otherwise
    /// it is queued. Then ask ``acknowledge(received:)`` how much of the chunk to acknowledge.
    package mutating func receiveData(_ chunk: UnsafeRawBufferPointer, deliver: ([UInt8]) -> Bool) -> DataOutcome {
        guard phase != .done,
            head.encoding == nil || deframer.compression != nil || head.encoding == "identity"
        else { return .ignored }
        // The closure touches locals only, so that it does not overlap the deframer's access.
        let streaming = self.streaming
        var queue = MessageQueue()
        swap(&queue, &pending)
        var bytes = pendingBytes
        var ready = false
        var failure: RPCError? = nil
        do {
            try deframer.process(chunk) { message in
                if streaming && deliver(message) { return }
                queue.append(message)
                bytes += message.count
                if !streaming && queue.count == 2 { ready = true }
            }
        } catch {
            failure = error
        }
        swap(&queue, &pending)
        pendingBytes = bytes
        updateBufferedBytes()
        return .processed(ready: ready, failure: failure)
    }

    /// How many of `received` DATA bytes to acknowledge now: none while a streaming handler has
    /// messages to take (they are acknowledged as it takes them, which is the back-pressure).
    package mutating func acknowledge(received: Int) -> Int {
        if streaming && !pending.isEmpty {
            unconsumed += received
            return 0
        }
        return received
    }

    /// The client ended the request (END_STREAM). Returns true when the transport should act on
    /// the call after this receive.
    package mutating func receiveEnd() -> Bool {
        guard phase != .done else { return false }
        requestEnded = true
        return true
    }

    /// What to do when nghttp2 closes the stream.
    package struct CloseAction: Sendable, Equatable {
        /// Cancel the handler with this error (nil: the call had already ended).
        package var abort: RPCError? = nil
        /// DATA bytes still unacknowledged, to give back to the connection window.
        package var consume = 0
        /// An action.
        package init(abort: RPCError? = nil, consume: Int = 0) {
            self.abort = abort
            self.consume = consume
        }
    }

    /// nghttp2 closed the stream: after the response, or because the client reset it.
    package mutating func streamClosed(errorCode: UInt32) -> CloseAction {
        var action = CloseAction()
        closed = true
        releaseBuffers()
        action.consume = unconsumed
        unconsumed = 0
        if phase != .done {
            action.abort = RPCError(code: .cancelled, message: "the client reset the stream (HTTP/2 error \(errorCode))")
            _ = abort()
        }
        return action
    }

    // MARK: Routing

    /// What the complete headers say about the call: ``GRPCRequestHead/validate()``. An HTTP
    /// error ends the call here; the transport answers with ``httpErrorHeaders(status:message:)``.
    package mutating func validate() -> GRPCRequestHead.Verdict {
        let verdict = head.validate()
        if case .httpError = verdict {
            phase = .done
            response = .headersOnly
        }
        return verdict
    }

    /// The header fields that answer a request that is not gRPC at all (``validate()`` gave
    /// `.httpError`): the HTTP status, and the gRPC status a client would map it to.
    package static func httpErrorHeaders(status: Int, message: String) -> [(String, String)] {
        [
            (":status", String(status)),
            ("grpc-status", String(status == 415 ? RPCError.Code.internalError.rawValue : RPCError.Code.unimplemented.rawValue)),
            ("grpc-message", GRPCPercentEncoding.encode(message)),
        ]
    }

    /// Takes the request's custom metadata (for the handler's context), leaving none behind.
    package mutating func takeMetadata() -> Metadata {
        let m = head.metadata
        head.metadata = Metadata()
        head.timeout = nil
        return m
    }

    /// The call was routed to a handler: a streaming one starts now, a unary one once its
    /// request has ended (``nextStep()``).
    package mutating func handlerStarts(streaming: Bool) {
        guard phase == .headersReceived else { return }
        self.streaming = streaming
        phase = streaming ? .running : .awaitingUnaryRequest
    }

    /// What to do with a call whose headers, messages or end arrived in the last receive.
    package enum Step: Sendable, Equatable {
        /// Nothing yet.
        case none
        /// Route it first (``validate()``, then ``handlerStarts(streaming:)`` or ``finish(status:)``).
        case route
        /// End it with this status.
        case fail(RPCError)
        /// Start the unary handler with this request message.
        case startUnary([UInt8])
        /// Tell the streaming handler's request stream that it has ended, when it waits.
        case endInbound
    }

    /// Decides what the transport does with the call after a receive.
    package mutating func nextStep() -> Step {
        switch phase {
        case .receivingHeaders, .done: return .none
        case .headersReceived: return .route
        case .awaitingUnaryRequest, .running: break
        }
        if !streaming && pending.count > 1 {
            return .fail(RPCError(code: .internalError, message: "\(pathDescription) is unary but the client sent more than one request message"))
        }
        guard requestEnded else { return .none }
        if deframer.hasPartialMessage {
            return .fail(RPCError(code: .internalError, message: "the request ended inside a message"))
        }
        if streaming {
            if inbound == .open { inbound = .ended }
            return .endInbound
        }
        if phase == .running { return .none }
        guard pending.count == 1, let request = pending.popLast() else {
            return .fail(RPCError(code: .internalError, message: "\(pathDescription) is unary but the client sent no request message"))
        }
        pendingBytes = 0
        updateBufferedBytes()
        phase = .running
        return .startUnary(request)
    }

    // MARK: The handler's side

    /// What a streaming handler's read gets.
    package enum Take: Sendable, Equatable {
        /// The next message; acknowledge `consume` DATA bytes (the queue drained).
        case message([UInt8], consume: Int)
        /// The request stream ended.
        case end
        /// The handler was cancelled.
        case cancelled
        /// Nothing yet: wait for the client.
        case wait
    }

    /// The next request message for a streaming handler.
    package mutating func takeMessage() -> Take {
        if !pending.isEmpty {
            let m = pending.removeFirst()
            pendingBytes -= m.count
            updateBufferedBytes()
            var consume = 0
            if pending.isEmpty && unconsumed > 0 {
                consume = unconsumed
                unconsumed = 0
            }
            return .message(m, consume: consume)
        }
        if inbound == .cancelled { return .cancelled }
        if inbound == .ended || phase == .done { return .end }
        return .wait
    }

    /// What to do with a response message the handler sends.
    package enum SendAction: Sendable, Equatable {
        /// Refuse it: the call has ended (CANCELLED for the handler).
        case reject
        /// Queue it and submit the response HEADERS with a data source.
        case submitHeaders
        /// Queue it and resume the deferred data source.
        case resumeData
        /// Queue it; the data source is already reading.
        case queue
    }

    /// The handler sends a response message.
    package mutating func sendMessage() -> SendAction {
        if phase == .done || closed { return .reject }
        switch response {
        case .idle:
            response = .streaming(deferred: false)
            return .submitHeaders
        case .streaming(deferred: true):
            response = .streaming(deferred: false)
            return .resumeData
        case .streaming(deferred: false), .headersOnly:
            return .queue
        }
    }

    /// What ending the call takes.
    package struct FinishAction: Sendable, Equatable {
        /// How the response goes out.
        package enum Response: Sendable, Equatable {
            /// Nothing: the call had already ended.
            case none
            /// One HEADERS frame with the status (Trailers-Only).
            case trailersOnly(RPCError)
            /// Submit HEADERS with a data source; the trailers follow the queued messages.
            case submitHeaders
            /// Resume the deferred data source; the trailers follow the queued messages.
            case resumeData
            /// The data source is reading; it sends the trailers when the queue drains.
            case trailersAfterData
        }
        /// How the response goes out.
        package var response: Response = .none
        /// Cancel the deadline timer, end the handler's request stream (a waiting read gets the
        /// end), fail the handler's waiting writes and drop buffered request bytes.
        package var cleanUp = false
        /// An action; the default does nothing.
        package init(response: Response = .none, cleanUp: Bool = false) {
            self.response = response
            self.cleanUp = cleanUp
        }
    }

    /// Ends the call with `status` (nil: OK). `messagesQueued`: whether response messages wait
    /// in the transport's queue (then the status follows them instead of being Trailers-Only).
    package mutating func finish(status: RPCError?, messagesQueued: Bool) -> FinishAction {
        guard phase != .done, !closed else { return FinishAction() }
        phase = .done
        if streaming && inbound == .open { inbound = .ended }
        releaseBuffers()
        trailers = status ?? RPCError(code: .ok, message: "")
        var action = FinishAction(cleanUp: true)
        switch response {
        case .idle:
            if !messagesQueued, let status {
                response = .headersOnly
                action.response = .trailersOnly(status)
            } else {
                response = .streaming(deferred: false)
                action.response = .submitHeaders
            }
        case .streaming(deferred: true):
            response = .streaming(deferred: false)
            action.response = .resumeData
        case .streaming(deferred: false), .headersOnly:
            action.response = .trailersAfterData
        }
        return action
    }

    /// Ends the call with whatever a handler threw: an ``RPCError`` as it is, cancellation as
    /// CANCELLED, anything else as UNKNOWN with its description.
    package static func status(for error: any Error) -> RPCError {
        if let e = error as? RPCError { return e }
        if error is CancellationError { return RPCError(code: .cancelled, message: "the handler was cancelled") }
        return RPCError(code: .unknown, message: "\(error)")
    }

    /// The deadline passed. Returns the status to end the call with, or nil when it had ended.
    /// The transport cancels the handler (``cancelHandler()``) and finishes with the status.
    package mutating func deadlineExpired() -> RPCError? {
        guard phase != .done, !closed else { return nil }
        return RPCError(code: .deadlineExceeded, message: "the deadline of \(pathDescription) expired")
    }

    /// The handler is cancelled: its request stream throws from now on. Returns true when a
    /// waiting read must be woken with the cancellation.
    package mutating func cancelHandler() -> Bool {
        guard streaming else { return false }
        inbound = .cancelled
        return pending.isEmpty
    }

    /// The peer went away: the call ends without a response. Returns true when a waiting read
    /// of a streaming handler must be woken with the cancellation.
    package mutating func abort() -> Bool {
        phase = .done
        let wake = cancelHandler()
        releaseBuffers()
        return wake
    }

    /// What the data source does after copying out of the transport's queue.
    package enum ReadAction: Sendable, Equatable {
        /// Send what was copied.
        case send
        /// The queue is drained and the status decided: end DATA and submit these trailers.
        case sendTrailers(RPCError)
        /// Nothing to send now: pause until ``sendMessage()`` or ``finish(status:messagesQueued:)`` resumes.
        case deferred
    }

    /// The data source copied `copied` bytes and the queue is now `queueEmpty`.
    package mutating func read(copied: Int, queueEmpty: Bool) -> ReadAction {
        guard queueEmpty else { return .send }
        if let status = trailers { return .sendTrailers(status) }
        if copied == 0 {
            response = .streaming(deferred: true)
            return .deferred
        }
        return .send
    }

    private mutating func releaseBuffers() {
        pending = MessageQueue()
        pendingBytes = 0
        if deframer.bufferedBytes > 0 || deframer.hasPartialMessage {
            deframer = GRPCMessageDeframer(maxMessageSize: 0)
        }
        bufferedBytes = 0
    }

    /// Whether a message is partly received.
    package var hasPartialMessage: Bool { deframer.hasPartialMessage }
}
