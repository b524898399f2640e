// The zlib side of gRPC message compression: RPCCore names and negotiates encodings, this file
// compresses and decompresses with zlib (Zlib.swift).
package import RPCCore

extension GRPCCompression {
    private var framing: ZlibFraming { isGzip ? .gzip : .zlib }

    /// `message` compressed, or nil when compressing does not make it smaller (it is then sent
    /// uncompressed, with the compressed flag clear, as the spec allows).
    package func compress(_ message: [UInt8]) -> [UInt8]? {
        if message.count < 24 || isIdentity { return nil }
        return Zlib.compress(message, framing: framing, level: level)
    }

    /// Decompresses one message of at most `limit` bytes sent by `peer`.
    package func decompress(_ message: [UInt8], limit: Int, peer: String) throws(RPCError) -> [UInt8] {
        if isIdentity { return message }
        do {
            return try Zlib.decompress(message, framing: framing, limit: limit)
        } catch {
            switch error {
            case .tooLarge:
                throw RPCError(
                    code: .resourceExhausted,
                    message: "\(name)-compressed message from \(peer) decompresses to more than the limit of \(limit) bytes")
            case .invalid(let what):
                throw RPCError(code: .internalError, message: "\(name)-compressed message from \(peer) is invalid: \(what)")
            }
        }
    }
}

/// The deframer's decompressor: zlib. Stateless, so storing it costs no allocation.
package struct ZlibDecompressor: MessageDecompressor {
    /// The decompressor.
    package init() {}

    package func decompress(
        _ message: [UInt8], encoding: GRPCCompression, limit: Int, peer: String
    ) throws(RPCError) -> [UInt8] {
        try encoding.decompress(message, limit: limit, peer: peer)
    }
}

extension GRPCMessageDeframer {
    /// A deframer that refuses messages over `maxMessageSize` bytes and decompresses messages
    /// encoded with `compression` through zlib.
    package init(maxMessageSize: Int, compression: GRPCCompression?) {
        self.init(maxMessageSize: maxMessageSize, compression: compression, decompressor: ZlibDecompressor())
    }

    /// Accepts messages encoded with `compression` from now on, decompressed through zlib.
    package mutating func negotiate(_ compression: GRPCCompression, peer: String) {
        self.compression = compression
        self.decompressor = ZlibDecompressor()
        self.peer = peer
    }
}
