/// Why the registrar, its link, its health endpoint or `inspect` could not do its job.
///
/// Every message names the path, socket or peer involved and says what was expected and what was found.
public struct RegistrarError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure. A struct wrapping a private enum, so kinds can be added without breaking users.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Kind: Sendable, Hashable {
            case invalidConfiguration, driverUnavailable, driverMismatch, pathConflict, systemCall, timeout
        }
        private let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// A flag or a combination of flags is invalid.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The CSI driver's socket does not exist or does not answer.
        public static let driverUnavailable = Code(.driverUnavailable)
        /// The driver answered with an unexpected name, or no name.
        public static let driverMismatch = Code(.driverMismatch)
        /// A path is occupied by something the registrar must not replace.
        public static let pathConflict = Code(.pathConflict)
        /// A system call failed.
        public static let systemCall = Code(.systemCall)
        /// A bounded wait ran out.
        public static let timeout = Code(.timeout)

        public var description: String {
            switch kind {
            case .invalidConfiguration: "invalid configuration"
            case .driverUnavailable: "driver unavailable"
            case .driverMismatch: "driver mismatch"
            case .pathConflict: "path conflict"
            case .systemCall: "system call failed"
            case .timeout: "timeout"
            }
        }
    }

    /// The kind of failure.
    public var code: Code
    /// What happened, naming the path or peer, what was expected and what was found.
    public var message: String
    /// The error that caused this one, if any.
    public var underlying: String?
    /// The gRPC status code of a failed call (``Code/driverUnavailable``), for metrics.
    package var grpcCode: Int?

    /// Creates an error.
    public init(code: Code, message: String, underlying: String? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying { return "\(message): \(underlying)" }
        return message
    }
}
