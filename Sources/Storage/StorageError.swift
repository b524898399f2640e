/// An error from a storage operation: a stable ``Code`` the caller can map to a gRPC status, and a
/// message naming the volume group, logical volume, file or path involved.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default` case.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Wrapped: Hashable, Sendable {
            case notFound, alreadyExists, insufficientCapacity, outOfRange, invalidName, invalidArgument
            case busy, unsupported, failed
        }
        let wrapped: Wrapped

        /// The volume, snapshot, volume group or path does not exist.
        public static let notFound = Code(wrapped: .notFound)
        /// An object of that name exists with incompatible properties (for example another size).
        public static let alreadyExists = Code(wrapped: .alreadyExists)
        /// The volume group, thin pool or directory has too little free space.
        public static let insufficientCapacity = Code(wrapped: .insufficientCapacity)
        /// No size the backend can allocate lies within the requested range: the required size
        /// rounded up to the allocation unit (a MiB, an extent), or a source snapshot's size, is
        /// above the limit.
        public static let outOfRange = Code(wrapped: .outOfRange)
        /// A name, tag or id breaks LVM's naming rules or the backend's own.
        public static let invalidName = Code(wrapped: .invalidName)
        /// Another argument (size, path, mount flag, filesystem type) is not acceptable.
        public static let invalidArgument = Code(wrapped: .invalidArgument)
        /// The object is in use (mounted, open, has snapshots).
        public static let busy = Code(wrapped: .busy)
        /// The operation cannot be done on this machine or with this backend.
        public static let unsupported = Code(wrapped: .unsupported)
        /// Any other failure; the message carries the details.
        public static let failed = Code(wrapped: .failed)

        public var description: String {
            switch wrapped {
            case .notFound: "notFound"
            case .alreadyExists: "alreadyExists"
            case .insufficientCapacity: "insufficientCapacity"
            case .outOfRange: "outOfRange"
            case .invalidName: "invalidName"
            case .invalidArgument: "invalidArgument"
            case .busy: "busy"
            case .unsupported: "unsupported"
            case .failed: "failed"
            }
        }
    }

    /// The kind of failure.
    public var code: Code
    /// What was expected and what was found, naming the object.
    public var message: String
    /// The command that failed (an LVM command line or a program's argument vector), if any.
    public var command: String?
    /// Error lines reported by LVM or a subprocess, if any.
    public var details: [String]

    /// Creates an error.
    public init(_ code: Code, _ message: String, command: String? = nil, details: [String] = []) {
        self.code = code
        self.message = message
        self.command = command
        self.details = details
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let command { text += " [command: \(command)]" }
        if !details.isEmpty { text += " [" + details.joined(separator: "; ") + "]" }
        return text
    }
}
