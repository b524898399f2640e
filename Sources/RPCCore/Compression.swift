// gRPC message compression (grpc/grpc doc/compression.md): the `grpc-encoding` a message stream
// uses, negotiated per call, with each message's compressed flag saying whether it is compressed.
// The DEFLATE work is zlib's, done in H2 (Zlib.swift); this module only names and negotiates.

/// A message encoding gRPC negotiates with the `grpc-encoding` and `grpc-accept-encoding` headers.
public struct GRPCCompression: Sendable, Hashable, CustomStringConvertible {
    private enum Algorithm: Sendable, Hashable { case identity, gzip, deflate }
    private let algorithm: Algorithm
    /// The DEFLATE effort: 1 (fastest) … 9 (smallest).
    public var level: Int

    /// No compression: a call's ``CallOptions/compression`` set to this sends that call uncompressed.
    public static let identity = GRPCCompression(algorithm: .identity, level: 0)
    /// `gzip`: DEFLATE in a gzip wrapper (RFC 1952).
    public static let gzip = GRPCCompression(algorithm: .gzip, level: 6)
    /// `deflate`: DEFLATE in a zlib wrapper (RFC 1950), as gRPC and HTTP mean it.
    public static let deflate = GRPCCompression(algorithm: .deflate, level: 6)

    private init(algorithm: Algorithm, level: Int) {
        self.algorithm = algorithm
        self.level = level
    }

    /// The same algorithm at another level (1 fastest … 9 smallest; clamped).
    public func level(_ level: Int) -> GRPCCompression {
        algorithm == .identity ? self : GRPCCompression(algorithm: algorithm, level: min(9, max(1, level)))
    }

    /// The `grpc-encoding` name.
    public var name: String {
        switch algorithm {
        case .identity: "identity"
        case .gzip: "gzip"
        case .deflate: "deflate"
        }
    }

    /// Whether this is ``identity`` (nothing is compressed).
    package var isIdentity: Bool { algorithm == .identity }

    /// The `grpc-encoding` name.
    public var description: String { name }

    /// The compressing encoding a `grpc-encoding` value names; nil for identity and for names not supported.
    package init?(name: some Collection<UInt8>) {
        if name.elementsEqual("gzip".utf8) {
            self = .gzip
        } else if name.elementsEqual("deflate".utf8) {
            self = .deflate
        } else {
            return nil
        }
    }

    /// What this side accepts, as `grpc-accept-encoding` says it.
    package static let acceptEncoding = "identity,deflate,gzip"

    /// Whether a `grpc-accept-encoding` value (a comma-separated list) contains this encoding.
    package func isAccepted(by header: String) -> Bool {
        let n = name
        return header.split(separator: ",").contains { $0.trimmingSpaces == n }
    }

    /// Whether this is ``gzip`` (DEFLATE in a gzip wrapper) rather than ``deflate`` or ``identity``.
    package var isGzip: Bool { algorithm == .gzip }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
