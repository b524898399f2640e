public import RPCCore
public import Storage

/// The one place where backend and mount errors become gRPC status codes, following the CSI
/// spec's error tables. The servers map every error through it; a driver's own service code can
/// use it the same way.
///
/// | `StorageError.Code` | gRPC code |
/// |---|---|
/// | `.notFound` | NOT_FOUND |
/// | `.alreadyExists` | ALREADY_EXISTS |
/// | `.insufficientCapacity` | RESOURCE_EXHAUSTED |
/// | `.outOfRange` | OUT_OF_RANGE |
/// | `.invalidName`, `.invalidArgument` | INVALID_ARGUMENT |
/// | `.busy`, `.unsupported` | FAILED_PRECONDITION |
/// | anything else | INTERNAL |
public enum ErrorMapping {
    /// Maps `error` to the `RPCError` a CSI caller receives. `RPCError`s pass through unchanged;
    /// Storage errors map by code, their message and details prefixed with what was being done;
    /// anything else is INTERNAL.
    /// - Parameters:
    ///   - error: what was thrown.
    ///   - action: what was being done, for example "creating volume pvc-1".
    public static func rpcError(_ error: any Error, while action: String) -> RPCError {
        if let rpc = error as? RPCError { return rpc }
        if let storage = error as? StorageError {
            var message = storage.message
            if !storage.details.isEmpty { message += " (" + storage.details.joined(separator: "; ") + ")" }
            return RPCError(code: code(for: storage.code), message: "\(action): \(message)")
        }
        return RPCError(code: .internalError, message: "\(action): \(error)")
    }

    /// The gRPC code of a Storage error code.
    public static func code(for code: StorageError.Code) -> RPCError.Code {
        switch code {
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        // No room in the volume group, pool or directory.
        case .insufficientCapacity: .resourceExhausted
        // "Unsupported capacity_range": no allocatable size lies within the range.
        case .outOfRange: .outOfRange
        case .invalidName, .invalidArgument: .invalidArgument
        // In use (mounted, has snapshots), or not possible on this machine: the caller must
        // change something first.
        case .busy, .unsupported: .failedPrecondition
        default: .internalError
        }
    }

    /// FAILED_PRECONDITION for a volume that exists but has no device node on this machine (for
    /// example LVM without device-mapper).
    public static func deviceUnavailable(volumeID: String, reason: String) -> RPCError {
        RPCError(
            code: .failedPrecondition,
            message: "finding the device of volume \(volumeID): volume \(volumeID) has no device node on this node: \(reason)")
    }

    /// Runs `body`, mapping whatever it throws with ``rpcError(_:while:)``.
    /// (Untyped `throws` on purpose: the typed-throws form of this generic async helper crashes
    /// Swift 6.3's optimizer while splitting its callers' coroutines in release builds.)
    /// - Throws: an `RPCError`.
    public static func mapping<T>(_ action: String, _ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch { throw rpcError(error, while: action) }
    }
}
