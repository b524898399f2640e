// The client side of one gRPC call as a value: the response's header fields and messages, whether
// the requests are done, and the status they amount to. The transport (H2's ClientConnection)
// stores it inline in the call's record and does what each transition returns with nghttp2.

/// HTTP/2 error codes (RFC 9113, section 7) a client maps to gRPC statuses.
package enum HTTP2ErrorCode {
    /// NO_ERROR: the stream ended normally.
    package static let noError: UInt32 = 0
    /// REFUSED_STREAM: the server did not process the stream; it is safe to retry.
    package static let refusedStream: UInt32 = 7
    /// CANCEL: the stream is no longer needed.
    package static let cancel: UInt32 = 8
}

/// The state of one gRPC call on a client, from its HEADERS to its status.
package struct ClientStreamStateMachine: Sendable {
    /// The response's `:status`.
    package private(set) var httpStatus: Int? = nil
    /// The response's `grpc-status` (a malformed value counts as UNKNOWN).
    package private(set) var grpcStatus: Int? = nil
    /// The response's `grpc-message`, percent-decoded.
    package private(set) var grpcMessage: String? = nil
    /// The response's `content-type`.
    package private(set) var contentType: String? = nil
    /// A `grpc-encoding` the server answered with that this client cannot decode.
    package private(set) var unsupportedEncoding: String? = nil
    /// The response's custom metadata (headers and trailers).
    package private(set) var metadata = Metadata()
    /// The request stream is complete: after the queued messages, END_STREAM.
    package private(set) var requestsDone = false
    /// The request data source is paused until more is queued.
    package private(set) var deferred = false
    /// The call has ended locally; nothing more is delivered.
    package private(set) var finished = false
    private var deframer: GRPCMessageDeframer

    /// A call that refuses response messages over `maxMessageSize` bytes.
    package init(maxMessageSize: Int) {
        deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
    }

    /// Records one response header or trailer field. Returns the encoding the response's messages
    /// use when the field is a supported `grpc-encoding`: the transport then supplies its
    /// decompressor (``acceptCompression(_:decompressor:peer:)``).
    package mutating func receiveHeader(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> GRPCCompression? {
        if name.elementsEqual(":status".utf8) {
            httpStatus = Int(String(decoding: value, as: UTF8.self))
        } else if name.elementsEqual("grpc-status".utf8) {
            grpcStatus = Int(String(decoding: value, as: UTF8.self)) ?? RPCError.Code.unknown.rawValue
        } else if name.elementsEqual("content-type".utf8) {
            contentType = String(decoding: value, as: UTF8.self)
        } else if name.elementsEqual("grpc-message".utf8) {
            grpcMessage = GRPCPercentEncoding.decode(value)
        } else if name.elementsEqual("grpc-encoding".utf8) {
            if let c = GRPCCompression(name: value) { return c }
            if !value.elementsEqual("identity".utf8) { unsupportedEncoding = String(decoding: value, as: UTF8.self) }
        } else if name.first != UInt8(ascii: ":") {
            let n = String(decoding: name, as: UTF8.self)
            if !GRPCRequestHead.isReserved(n) { metadata.addWire(name: n, value: Array(value)) }
        }
        return nil
    }

    /// Records one field given as strings (for tests and tools).
    package mutating func receiveHeader(_ name: String, _ value: String) -> GRPCCompression? {
        let n = Array(name.utf8), v = Array(value.utf8)
        return n.withUnsafeBufferPointer { n in v.withUnsafeBufferPointer { v in receiveHeader(name: n, value: v) } }
    }

    /// Accepts response messages encoded with `compression`, undone by `decompressor`.
    package mutating func acceptCompression(_ compression: GRPCCompression, decompressor: any MessageDecompressor, peer: String) {
        deframer.compression = compression
        deframer.decompressor = decompressor
        deframer.peer = peer
    }

    /// Feeds a response DATA chunk; each complete message goes to `onMessage`. Returns the status
    /// to cancel the call with (the stream is reset) when the data is not a valid message stream:
    /// a message over the limit (RESOURCE_EXHAUSTED), a compressed message without or with an
    /// unsupported encoding (INTERNAL), corrupt compressed data. Names `path` and `target`.
    package mutating func receiveData(
        _ chunk: UnsafeRawBufferPointer, path: String, target: String, _ onMessage: ([UInt8]) -> Void
    ) -> RPCError? {
        do {
            try deframer.process(chunk, onMessage)
            return nil
        } catch {
            if let encoding = unsupportedEncoding {
                return RPCError(
                    code: .internalError,
                    message: "\(target) answered \(path) with grpc-encoding \(encoding), which is not supported (\(GRPCCompression.acceptEncoding))")
            }
            return RPCError(code: error.code, message: "response from \(target) for \(path): \(error.message)")
        }
    }

    /// The caller has sent its last request message; the transport then calls ``resume()`` so
    /// that a paused data source sends END_STREAM.
    package mutating func endRequests() {
        requestsDone = true
    }

    /// More request data (or the end) is queued. Returns true when the paused data source must be
    /// resumed (`nghttp2_session_resume_data`).
    package mutating func resume() -> Bool {
        guard !finished, deferred else { return false }
        deferred = false
        return true
    }

    /// What the request data source does after copying out of the transport's queue.
    package enum ReadAction: Sendable, Equatable {
        /// Send what was copied.
        case send
        /// The queue is drained and the requests are done: send END_STREAM with the data.
        case endStream
        /// Nothing to send now: pause until ``resume()``.
        case deferred
    }

    /// The data source copied `copied` bytes and the queue is now `queueEmpty`.
    package mutating func read(copied: Int, queueEmpty: Bool) -> ReadAction {
        guard queueEmpty else { return .send }
        if requestsDone { return .endStream }
        if copied == 0 {
            deferred = true
            return .deferred
        }
        return .send
    }

    /// Ends the call locally. Returns false when it had already ended (the transport then does
    /// nothing: completion happens once).
    package mutating func complete() -> Bool {
        if finished { return false }
        finished = true
        return true
    }

    /// The stream closed with `resetCode`: the status the response amounts to (nil: OK). Mutating
    /// (the response metadata moves into the status) so that the transport calls it in place.
    ///
    /// `grpc-status` wins; without it a non-200 `:status` maps as the gRPC spec lists, a response
    /// that is not `application/grpc` is UNKNOWN, and a reset maps by its code: REFUSED_STREAM is
    /// UNAVAILABLE, CANCEL is CANCELLED, a clean end without status and any other code INTERNAL.
    package mutating func streamClosed(resetCode: UInt32, path: String, target: String) -> RPCError? {
        if let code = grpcStatus {
            if code == 0 { return nil }
            let trailers = metadata
            metadata = Metadata()
            return RPCError(code: .init(rawValue: code), message: grpcMessage ?? "", metadata: trailers)
        }
        if let h = httpStatus, h != 200 {
            return RPCError(code: GRPCStatusMapping.code(forHTTPStatus: h), message: "\(path) on \(target): HTTP status \(h)")
        }
        if httpStatus != nil, let ct = contentType, !GRPCRequestHead.isGRPCContentType(ct) {
            return RPCError(code: .unknown, message: "\(path) on \(target): the response's content-type is \(ct), not application/grpc")
        }
        switch resetCode {
        case HTTP2ErrorCode.refusedStream:
            return RPCError(code: .unavailable, message: "\(target) refused the stream for \(path)")
        case HTTP2ErrorCode.cancel:
            return RPCError(code: .cancelled, message: "\(target) cancelled \(path)")
        case HTTP2ErrorCode.noError:
            return RPCError(code: .internalError, message: "\(target) ended \(path) without a grpc-status")
        default:
            return RPCError(code: .internalError, message: "\(target) reset \(path) with HTTP/2 error \(resetCode)")
        }
    }
}
