// The surface that generated service code (Sources/CSI/Generated) is written against.
// Names and signatures here are fixed; transports (H2) serve routers and implement
// GRPCClientTransport.
public import ProtoWire

/// The shape of a gRPC method: how many messages flow each way.
public enum GRPCMethodKind: Sendable, Hashable {
    case unary, serverStreaming, clientStreaming, bidirectionalStreaming
}

/// Identifies one gRPC method, for example `/csi.v1.Node/NodeGetInfo`.
public struct GRPCMethodDescriptor: Sendable, Hashable, CustomStringConvertible {
    /// The fully qualified service, for example `csi.v1.Node`.
    public let service: String
    /// The method's name, for example `NodeGetInfo`.
    public let method: String
    /// How many messages flow each way.
    public let kind: GRPCMethodKind
    /// Creates a descriptor.
    public init(service: String, method: String, kind: GRPCMethodKind) {
        self.service = service
        self.method = method
        self.kind = kind
    }
    /// The HTTP/2 `:path`: `/service/method`.
    public var path: String { "/\(service)/\(method)" }
    /// The path, `/service/method`.
    public var description: String { path }
}

/// A gRPC status code and message: the error a handler throws and a client receives.
public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The gRPC status code.
    public var code: Code
    /// A human-readable message; sent as `grpc-message`.
    public var message: String
    /// Response metadata sent with the status (trailers).
    public var metadata: Metadata

    /// Creates an error with a code and a message.
    public init(code: Code, message: String, metadata: Metadata = Metadata()) {
        self.code = code
        self.message = message
        self.metadata = metadata
    }

    /// `CODE: message`, for example `NOT_FOUND: volume pvc-1 not found`.
    public var description: String { "\(code): \(message)" }

    /// A gRPC status code. A struct, so codes can be added without breaking users.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The numeric value carried in `grpc-status`.
        public let rawValue: Int
        /// Wraps a numeric code; values outside 0...16 are kept as they are.
        public init(rawValue: Int) { self.rawValue = rawValue }

        /// The call succeeded.
        public static let ok = Code(rawValue: 0)
        /// The call was cancelled, usually by the caller.
        public static let cancelled = Code(rawValue: 1)
        /// An error without a better code, for example an error a handler threw that is not an `RPCError`.
        public static let unknown = Code(rawValue: 2)
        /// The request is invalid whatever the state of the system.
        public static let invalidArgument = Code(rawValue: 3)
        /// The deadline passed before the call finished.
        public static let deadlineExceeded = Code(rawValue: 4)
        /// Something the request names does not exist.
        public static let notFound = Code(rawValue: 5)
        /// What the request would create exists already.
        public static let alreadyExists = Code(rawValue: 6)
        /// The caller may not do this.
        public static let permissionDenied = Code(rawValue: 7)
        /// Out of some resource: space, a quota, or a message over the size limit.
        public static let resourceExhausted = Code(rawValue: 8)
        /// The system is not in the state the call needs.
        public static let failedPrecondition = Code(rawValue: 9)
        /// The call was aborted, typically by a concurrency conflict.
        public static let aborted = Code(rawValue: 10)
        /// A value is outside the valid range.
        public static let outOfRange = Code(rawValue: 11)
        /// The method is not implemented or not supported.
        public static let unimplemented = Code(rawValue: 12)
        /// An invariant of the server or the protocol broke (gRPC's INTERNAL).
        public static let internalError = Code(rawValue: 13)
        /// The service cannot be reached now; retrying may help.
        public static let unavailable = Code(rawValue: 14)
        /// Data was lost or corrupted.
        public static let dataLoss = Code(rawValue: 15)
        /// The caller has no valid credentials.
        public static let unauthenticated = Code(rawValue: 16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        ]
        /// The canonical upper-case name, for example `NOT_FOUND`.
        public var description: String {
            Self.names.indices.contains(rawValue) ? Self.names[rawValue] : "CODE_\(rawValue)"
        }
    }
}

/// Custom metadata: ordered key/value pairs; keys are lower-case, `-bin` keys carry bytes.
public struct Metadata: Sendable, Hashable, Sequence {
    /// One metadata value: text, or bytes for keys ending in `-bin`.
    public enum Value: Sendable, Hashable {
        case string(String)
        case binary([UInt8])
    }
    private var storage: [(key: String, value: Value)] = []

    /// Empty metadata.
    public init() {}

    /// Appends a text value under `key` (lower-cased).
    public mutating func add(_ key: String, _ value: String) {
        storage.append((key.lowercased(), .string(value)))
    }
    /// Appends a binary value under `key`, which must end in `-bin`.
    public mutating func add(_ key: String, bytes: [UInt8]) {
        storage.append((key.lowercased(), .binary(bytes)))
    }
    /// The first text value stored under `key`.
    public subscript(key: String) -> String? {
        let k = key.lowercased()
        for entry in storage where entry.key == k {
            if case .string(let s) = entry.value { return s }
        }
        return nil
    }
    /// Every value stored under `key`, in order.
    public func values(forKey key: String) -> [Value] {
        let k = key.lowercased()
        return storage.filter { $0.key == k }.map(\.value)
    }
    /// The number of entries.
    public var count: Int { storage.count }
    /// Iterates over the entries in order.
    public func makeIterator() -> IndexingIterator<[(key: String, value: Value)]> {
        storage.makeIterator()
    }
    /// Equal when the same entries come in the same order.
    public static func == (a: Metadata, b: Metadata) -> Bool {
        a.storage.elementsEqual(b.storage) { $0.key == $1.key && $0.value == $1.value }
    }
    /// Hashes the entries in order.
    public func hash(into hasher: inout Hasher) {
        for e in storage {
            hasher.combine(e.key)
            hasher.combine(e.value)
        }
    }
}

/// The credentials of the process on the other end of a Unix socket (`SO_PEERCRED`).
public struct PeerCredentials: Sendable, Hashable {
    /// The peer's process id.
    public var pid: Int32
    /// The peer's user id.
    public var uid: UInt32
    /// The peer's group id.
    public var gid: UInt32
    /// Creates peer credentials.
    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// What a server handler knows about the call it serves.
public struct ServerContext: Sendable {
    /// The method being called.
    public var method: GRPCMethodDescriptor
    /// The request's custom metadata (reserved and pseudo headers removed).
    public var metadata: Metadata
    /// The caller's credentials, when the connection is a Unix socket.
    public var peer: PeerCredentials?
    /// When the call must be finished, from `grpc-timeout`.
    public var deadline: ContinuousClock.Instant?
    /// Creates a context.
    public init(
        method: GRPCMethodDescriptor, metadata: Metadata = Metadata(),
        peer: PeerCredentials? = nil, deadline: ContinuousClock.Instant? = nil
    ) {
        self.method = method
        self.metadata = metadata
        self.peer = peer
        self.deadline = deadline
    }
}

/// Options for one client call.
public struct CallOptions: Sendable {
    /// How long the call may take; sent as `grpc-timeout`.
    public var timeout: Duration?
    /// Custom metadata sent with the request.
    public var metadata: Metadata
    /// How this call's request messages are compressed: nil uses the channel's configured
    /// compression (H2's `GRPCChannelConfiguration.compression`), ``GRPCCompression/identity``
    /// sends them uncompressed.
    public var compression: GRPCCompression? = nil
    /// Creates options.
    public init(timeout: Duration? = nil, metadata: Metadata = Metadata()) {
        self.timeout = timeout
        self.metadata = metadata
    }
}

/// What generated clients make their calls through. H2's `GRPCChannel` is one; a test may
/// provide another.
public protocol GRPCClientTransport: Sendable {
    /// Makes a unary call: one request, one response.
    /// - Throws: ``RPCError`` with the status the server (or the transport) ended the call with.
    func unary<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor, request: Request, options: CallOptions
    ) async throws -> Response

    /// Makes a server-streaming call; the responses arrive as a stream that ends with the status.
    func serverStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor, request: Request, options: CallOptions
    ) -> AsyncThrowingStream<Response, any Error>

    /// Makes a client-streaming call: the requests are sent as `requests` yields them.
    /// - Throws: ``RPCError`` with the status the call ended with.
    func clientStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor, requests: AsyncStream<Request>, options: CallOptions
    ) async throws -> Response

    /// Makes a bidirectional-streaming call.
    func bidirectionalStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor, requests: AsyncStream<Request>, options: CallOptions
    ) -> AsyncThrowingStream<Response, any Error>
}

/// A stream of request messages from a client.
public struct RequestStream<Message: ProtoMessage>: AsyncSequence, Sendable {
    /// A request message.
    public typealias Element = Message
    /// Reading fails with the status the call ended with, or cancellation.
    public typealias Failure = any Error
    let base: AsyncThrowingStream<Message, any Error>
    /// Wraps a stream of messages.
    public init(_ base: AsyncThrowingStream<Message, any Error>) { self.base = base }
    /// Iterates over the messages as the client sends them.
    public func makeAsyncIterator() -> AsyncThrowingStream<Message, any Error>.AsyncIterator {
        base.makeAsyncIterator()
    }
}

/// Sends response messages on a streaming call.
public struct ResponseStreamWriter<Message: ProtoMessage>: Sendable {
    let sink: @Sendable (Message) async throws -> Void
    /// Creates a writer that hands each message to `sink`.
    public init(_ sink: @escaping @Sendable (Message) async throws -> Void) { self.sink = sink }
    /// Sends one message; suspends while the peer is not reading.
    public func write(_ message: Message) async throws { try await sink(message) }
}

/// A service that can place its methods in a router; generated service protocols conform.
public protocol GRPCServiceRegistrable: Sendable {
    /// Adds every method of the service to `router`.
    func register(with router: inout GRPCRouter)
}

/// Maps `/package.Service/Method` paths to handlers.
public struct GRPCRouter: Sendable {
    /// A type-erased handler: request messages in, response messages out.
    package enum Handler: Sendable {
        case unary(@Sendable ([UInt8], ServerContext) async throws -> [UInt8])
        case streaming(
            @Sendable (
                AsyncThrowingStream<[UInt8], any Error>, @escaping @Sendable ([UInt8]) async throws -> Void,
                ServerContext
            ) async throws -> Void
        )
    }
    /// The handlers by method path.
    package private(set) var handlers: [String: (GRPCMethodDescriptor, Handler)] = [:]

    /// An empty router.
    public init() {}

    /// The descriptors of every registered method.
    public var methods: [GRPCMethodDescriptor] { handlers.values.map(\.0) }

    /// Registers a unary method.
    public mutating func registerUnary<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) {
        handlers[method.path] = (method, .unary({ bytes, context in
            let request: Request
            do { request = try Request(serializedBytes: bytes) } catch {
                throw RPCError(code: .internalError, message: "cannot decode \(Request.protoMessageName) for \(method.path): \(error)")
            }
            return try await handler(request, context).serializedBytes()
        }))
    }

    /// Registers a server-streaming method.
    public mutating func registerServerStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor,
        _ handler: @escaping @Sendable (Request, ResponseStreamWriter<Response>, ServerContext) async throws -> Void
    ) {
        handlers[method.path] = (method, .streaming({ requests, send, context in
            var iterator = requests.makeAsyncIterator()
            guard let first = try await iterator.next() else {
                throw RPCError(code: .internalError, message: "\(method.path): the client sent no request message")
            }
            if try await iterator.next() != nil {
                throw RPCError(code: .internalError, message: "\(method.path): the client sent more than one request message")
            }
            let request = try Self.decode(Request.self, first, method)
            try await handler(request, ResponseStreamWriter { try await send($0.serializedBytes()) }, context)
        }))
    }

    /// Registers a client-streaming method.
    public mutating func registerClientStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor,
        _ handler: @escaping @Sendable (RequestStream<Request>, ServerContext) async throws -> Response
    ) {
        handlers[method.path] = (method, .streaming({ requests, send, context in
            let response = try await handler(Self.decodeStream(requests, Request.self, method), context)
            try await send(response.serializedBytes())
        }))
    }

    /// Registers a bidirectional-streaming method.
    public mutating func registerBidirectionalStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: GRPCMethodDescriptor,
        _ handler: @escaping @Sendable (RequestStream<Request>, ResponseStreamWriter<Response>, ServerContext) async throws -> Void
    ) {
        handlers[method.path] = (method, .streaming({ requests, send, context in
            try await handler(
                Self.decodeStream(requests, Request.self, method),
                ResponseStreamWriter { try await send($0.serializedBytes()) }, context)
        }))
    }

    /// Adds every method of `service`.
    public mutating func register(_ service: some GRPCServiceRegistrable) {
        service.register(with: &self)
    }

    private static func decode<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8], _ method: GRPCMethodDescriptor) throws -> M {
        do { return try M(serializedBytes: bytes) } catch {
            throw RPCError(code: .internalError, message: "cannot decode \(M.protoMessageName) for \(method.path): \(error)")
        }
    }

    private static func decodeStream<M: ProtoMessage>(
        _ raw: AsyncThrowingStream<[UInt8], any Error>, _: M.Type, _ method: GRPCMethodDescriptor
    ) -> RequestStream<M> {
        // Pull-based: a message is taken from the transport only when the handler asks for it,
        // on the handler's own task (no extra task, no thread hop).
        let source = IteratorBox(raw.makeAsyncIterator())
        return RequestStream(AsyncThrowingStream(unfolding: {
            guard let bytes = try await source.next() else { return nil }
            return try decode(M.self, bytes, method)
        }))
    }
}

/// Holds an iterator for a pull-based stream. Only the one task iterating the stream calls `next`.
private final class IteratorBox: @unchecked Sendable {
    private var iterator: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator
    init(_ iterator: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator) { self.iterator = iterator }
    func next() async throws -> [UInt8]? { try await iterator.next() }
}
