// The pure parts of gRPC over HTTP/2: message framing, header values, timeouts, status text.
// No sockets here; every function is testable on its own.

/// Received messages in arrival order, waiting to be taken. Taking the first is O(1), where
/// `Array.removeFirst` would move every message behind it.
package struct MessageQueue: Sendable {
    private var items: [[UInt8]] = []
    private var head = 0

    /// An empty queue.
    package init() {}

    /// Whether no message waits.
    package var isEmpty: Bool { head == items.count }
    /// How many messages wait.
    package var count: Int { items.count - head }

    /// Queues `message` behind the others.
    package mutating func append(_ message: [UInt8]) { items.append(message) }

    /// Takes the oldest message; the queue must not be empty.
    package mutating func removeFirst() -> [UInt8] {
        let m = items[head]
        items[head] = []
        head += 1
        if head == items.count { clear() }
        return m
    }

    /// Takes the newest message, if any.
    package mutating func popLast() -> [UInt8]? {
        if isEmpty { return nil }
        let m = items.removeLast()
        if head == items.count { clear() }
        return m
    }

    private mutating func clear() {
        items.removeAll(keepingCapacity: items.capacity <= 64)
        head = 0
    }
}

/// Undoes a message encoding for the deframer. The transport supplies it (H2: zlib), so that this
/// module stays free of C.
package protocol MessageDecompressor: Sendable {
    /// Decompresses one message of at most `limit` bytes, encoded with `encoding`, sent by `peer`.
    /// Throws RESOURCE_EXHAUSTED past the limit, INTERNAL for data that does not decompress.
    func decompress(_ message: [UInt8], encoding: GRPCCompression, limit: Int, peer: String) throws(RPCError) -> [UInt8]
}

/// Splits a DATA byte stream into gRPC length-prefixed messages. A prefix split across DATA frames
/// is normal, so the deframer keeps partial state between calls.
package struct GRPCMessageDeframer: Sendable {
    /// The largest message accepted, in bytes (after decompression, for compressed messages).
    package let maxMessageSize: Int
    /// The negotiated `grpc-encoding` for messages with the compressed flag; nil: identity only,
    /// and a compressed message is an error.
    package var compression: GRPCCompression?
    /// What decompresses messages with the compressed flag; set with ``compression``.
    package var decompressor: (any MessageDecompressor)?
    /// Who sends the messages, named in decompression errors.
    package var peer = ""
    private var prefix: UInt64 = 0
    private var prefixCount = 0
    private var expected = 0
    private var message: [UInt8] = []
    private var inMessage = false
    private var compressed = false
    /// Bytes consumed so far (for error messages).
    package private(set) var messagesSeen = 0

    /// Creates a deframer that refuses messages over `maxMessageSize` bytes; compressed messages
    /// are accepted when `compression` and `decompressor` are given.
    package init(
        maxMessageSize: Int, compression: GRPCCompression? = nil, decompressor: (any MessageDecompressor)? = nil
    ) {
        self.maxMessageSize = maxMessageSize
        self.compression = compression
        self.decompressor = decompressor
    }

    /// Bytes of the message being assembled.
    package var bufferedBytes: Int { message.count }

    /// Whether a message is partly received (a prefix or body is incomplete).
    package var hasPartialMessage: Bool { prefixCount > 0 || inMessage }

    /// Feeds bytes; calls `onMessage` for each complete message, decompressed. Throws an
    /// ``RPCError``: INTERNAL for a compressed message without a negotiated encoding or one that
    /// does not decompress, RESOURCE_EXHAUSTED for a message over the limit (before or after
    /// decompression).
    package mutating func process(
        _ chunk: UnsafeRawBufferPointer, _ onMessage: ([UInt8]) -> Void
    ) throws(RPCError) {
        var i = 0
        let n = chunk.count
        while i < n {
            if !inMessage {
                // Fast path: a whole prefix in this chunk.
                if prefixCount == 0 && n - i >= 5 {
                    let flag = chunk[i]
                    let len = Int(chunk[i + 1]) << 24 | Int(chunk[i + 2]) << 16 | Int(chunk[i + 3]) << 8 | Int(chunk[i + 4])
                    i += 5
                    try begin(flag: flag, length: len)
                } else {
                    prefix = prefix << 8 | UInt64(chunk[i])
                    prefixCount += 1
                    i += 1
                    if prefixCount == 5 {
                        let flag = UInt8(truncatingIfNeeded: prefix >> 32)
                        let len = Int(truncatingIfNeeded: prefix & 0xFFFF_FFFF)
                        prefix = 0
                        prefixCount = 0
                        try begin(flag: flag, length: len)
                    }
                }
                if inMessage && expected == 0 {
                    inMessage = false
                    messagesSeen += 1
                    onMessage([])  // empty, whether or not flagged as compressed
                }
                continue
            }
            let take = min(expected - message.count, n - i)
            message.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[i..<(i + take)]))
            i += take
            if message.count == expected {
                inMessage = false
                messagesSeen += 1
                let done = message
                message = []
                if compressed, let c = compression, !c.isIdentity {
                    guard let decompressor else {
                        throw RPCError(code: .internalError, message: "no decompressor for grpc-encoding \(c.name)")
                    }
                    onMessage(try decompressor.decompress(done, encoding: c, limit: maxMessageSize, peer: peer))
                } else {
                    onMessage(done)
                }
            }
        }
    }

    private mutating func begin(flag: UInt8, length: Int) throws(RPCError) {
        compressed = flag & 1 != 0
        if compressed && compression == nil {
            throw RPCError(
                code: .internalError,
                message: "received a compressed message but no grpc-encoding was negotiated")
        }
        if flag & ~1 != 0 {
            throw RPCError(code: .internalError, message: "invalid message flags 0x\(String(flag, radix: 16))")
        }
        if length > maxMessageSize {
            throw RPCError(
                code: .resourceExhausted,
                message: "message of \(length) bytes exceeds the limit of \(maxMessageSize) bytes")
        }
        expected = length
        inMessage = true
        message = []
        if length > 0 { message.reserveCapacity(length) }
    }
}

/// gRPC's 5-byte message prefix.
package enum GRPCFraming {
    /// The prefix for an uncompressed message of `length` bytes.
    @inline(__always)
    package static func prefix(length: Int) -> (UInt8, UInt8, UInt8, UInt8, UInt8) {
        (0, UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
         UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length))
    }

    /// The prefix for a compressed message of `length` bytes.
    package static func compressedPrefix(length: Int) -> (UInt8, UInt8, UInt8, UInt8, UInt8) {
        var p = prefix(length: length)
        p.0 = 1
        return p
    }

    /// `payload` with its prefix, as one buffer.
    package static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 5)
        let p = prefix(length: payload.count)
        out.append(p.0); out.append(p.1); out.append(p.2); out.append(p.3); out.append(p.4)
        out.append(contentsOf: payload)
        return out
    }
}

/// `grpc-timeout` values: at most 8 ASCII digits followed by a unit (H, M, S, m, u, n).
package enum GRPCTimeout {
    /// Parses a `grpc-timeout` value; nil when malformed.
    package static func parse(_ value: some Collection<UInt8>) -> Duration? {
        guard value.count >= 2, value.count <= 9 else { return nil }
        var amount: Int64 = 0
        var digits = 0
        var unit: UInt8 = 0
        for (i, b) in value.enumerated() {
            if i == value.count - 1 { unit = b; break }
            guard b >= 0x30 && b <= 0x39 else { return nil }
            amount = amount * 10 + Int64(b - 0x30)
            digits += 1
        }
        guard digits >= 1 else { return nil }
        switch unit {
        case UInt8(ascii: "H"): return .seconds(amount * 3600)
        case UInt8(ascii: "M"): return .seconds(amount * 60)
        case UInt8(ascii: "S"): return .seconds(amount)
        case UInt8(ascii: "m"): return .milliseconds(amount)
        case UInt8(ascii: "u"): return .microseconds(amount)
        case UInt8(ascii: "n"): return .nanoseconds(amount)
        default: return nil
        }
    }

    /// Parses a `grpc-timeout` string.
    package static func parse(_ value: String) -> Duration? { parse(Array(value.utf8)) }

    /// Encodes `duration` with the finest unit that fits in 8 digits (rounding up).
    package static func encode(_ duration: Duration) -> String {
        let (s, a) = duration.components
        if s < 0 || (s == 0 && a <= 0) { return "1n" }
        let nanos = Double(s) * 1e9 + Double(a) / 1e9
        let units: [(Double, String)] = [(1, "n"), (1e3, "u"), (1e6, "m"), (1e9, "S"), (60e9, "M"), (3600e9, "H")]
        for (scale, unit) in units {
            let v = (nanos / scale).rounded(.up)
            if v < 100_000_000 { return "\(Int64(v))\(unit)" }
        }
        return "99999999H"
    }
}

/// Percent-encoding of `grpc-message`: bytes outside printable ASCII and `%` become `%XX`.
package enum GRPCPercentEncoding {
    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Encodes `message` for the `grpc-message` trailer.
    package static func encode(_ message: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(message.utf8.count)
        for b in message.utf8 {
            if b >= 0x20 && b <= 0x7E && b != UInt8(ascii: "%") {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes a `grpc-message` value; malformed escapes are kept literally.
    package static func decode(_ value: some Collection<UInt8>) -> String {
        let bytes = Array(value)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
                let h = hexValue(bytes[i + 1]), let l = hexValue(bytes[i + 2])
            {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes a `grpc-message` string.
    package static func decode(_ value: String) -> String { decode(Array(value.utf8)) }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}

/// Standard base64 for `-bin` metadata; decoding accepts padded and unpadded input.
package enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let reverse: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// Encodes with padding.
    package static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(v >> 18 & 63)]); out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)]); out.append(alphabet[Int(v & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(v >> 18 & 63)]); out.append(alphabet[Int(v >> 12 & 63)])
            out.append(UInt8(ascii: "=")); out.append(UInt8(ascii: "="))
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(v >> 18 & 63)]); out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)]); out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes; nil when the input contains characters outside the alphabet.
    package static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        var padding = 0
        for c in text {
            if c == UInt8(ascii: "=") { padding += 1; continue }
            if padding > 0 { return nil }
            let v = reverse[Int(c)]
            if v == 0xFF { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        if padding > 2 { return nil }
        return out
    }

    /// Decodes a string.
    package static func decode(_ text: String) -> [UInt8]? { decode(Array(text.utf8)) }
}

/// Request header rules of gRPC over HTTP/2, separate from nghttp2 so they can be tested alone.
package struct GRPCRequestHead: Sendable {
    /// `:method`.
    package var method: String?
    /// `:path`.
    package var path: String?
    /// `content-type`.
    package var contentType: String?
    /// `te`.
    package var te: String?
    /// `grpc-encoding`: how the request's messages are compressed.
    package var encoding: String?
    /// `grpc-accept-encoding`: what the client can decompress.
    package var acceptEncoding: String?
    /// `grpc-timeout`, as sent.
    package var timeout: String?
    /// Every other header, as custom metadata.
    package var metadata = Metadata()

    /// No fields yet.
    package init() {}

    /// What to do with a request whose headers are complete.
    package enum Verdict: Equatable, Sendable {
        /// A valid call to `path`, with the deadline from `grpc-timeout`.
        case accept(path: String, timeout: Duration?)
        /// Answer with this HTTP status and no gRPC status (not a gRPC request at all).
        case httpError(status: Int, message: String)
        /// Answer with a Trailers-Only gRPC error.
        case grpcError(RPCError)
    }

    /// Headers that never become metadata.
    package static func isReserved(_ name: String) -> Bool {
        if name.utf8.first == UInt8(ascii: ":") { return true }
        switch name {
        case "content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "connection",
            "host", "content-length", "grpc-status", "grpc-message", "grpc-status-details-bin":
            return true
        default: return false
        }
    }

    /// Applies the protocol's rules.
    package func validate() -> Verdict {
        guard method == "POST" else {
            return .httpError(status: 405, message: "method \(method ?? "(none)") is not allowed; gRPC requires POST")
        }
        guard let ct = contentType, Self.isGRPCContentType(ct) else {
            return .httpError(status: 415, message: "content-type \(contentType ?? "(none)") is not application/grpc")
        }
        guard let path, path.utf8.first == UInt8(ascii: "/"),
            path.utf8.dropFirst().contains(UInt8(ascii: "/")), path.utf8.last != UInt8(ascii: "/")
        else {
            return .grpcError(RPCError(code: .unimplemented, message: "malformed method path \(path ?? "(none)"); expected /package.Service/Method"))
        }
        guard te == "trailers" else {
            return .grpcError(RPCError(code: .internalError, message: "te header is \(te ?? "missing"); gRPC requires te: trailers"))
        }
        if let enc = encoding, enc != "identity", GRPCCompression(name: enc.utf8) == nil {
            return .grpcError(RPCError(
                code: .unimplemented,
                message: "grpc-encoding \(enc) is not supported; supported: \(GRPCCompression.acceptEncoding)"))
        }
        var deadline: Duration? = nil
        if let t = timeout {
            guard let d = GRPCTimeout.parse(t) else {
                return .grpcError(RPCError(code: .internalError, message: "malformed grpc-timeout \(t)"))
            }
            deadline = d
        }
        return .accept(path: path, timeout: deadline)
    }

    /// `application/grpc`, optionally followed by `+format` or `;parameters`.
    package static func isGRPCContentType(_ value: String) -> Bool {
        if value == "application/grpc" || value == "application/grpc+proto" { return true }
        let v = value.lowercased()
        return v == "application/grpc" || v.hasPrefix("application/grpc+") || v.hasPrefix("application/grpc;")
    }
}

/// Maps HTTP statuses of non-gRPC answers to gRPC codes, as the gRPC spec lists them.
package enum GRPCStatusMapping {
    /// The gRPC code a client reports for an HTTP status without `grpc-status`.
    package static func code(forHTTPStatus status: Int) -> RPCError.Code {
        switch status {
        case 400: return .internalError
        case 401: return .unauthenticated
        case 403: return .permissionDenied
        case 404: return .unimplemented
        case 429, 502, 503, 504: return .unavailable
        default: return .unknown
        }
    }
}

extension Metadata {
    /// Adds a received header as metadata: `-bin` values are base64-decoded. Returns false when a
    /// `-bin` value is not valid base64.
    @discardableResult
    package mutating func addWire(name: String, value: [UInt8]) -> Bool {
        if name.hasSuffix("-bin") {
            guard let bytes = Base64.decode(value) else { return false }
            add(name, bytes: bytes)
        } else {
            add(name, String(decoding: value, as: UTF8.self))
        }
        return true
    }

    /// The metadata as header name/value pairs: binary values base64-encoded.
    package var wireHeaders: [(String, String)] {
        map { entry in
            switch entry.value {
            case .string(let s): return (entry.key, s)
            case .binary(let b): return (entry.key, Base64.encode(b))
            }
        }
    }
}
