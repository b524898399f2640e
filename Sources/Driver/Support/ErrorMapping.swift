package import RPCCore
package import Storage

/// The one place where backend and mount errors become gRPC status codes, following the CSI
/// spec's error tables.
package enum ErrorMapping {
    /// Maps `error` to the `RPCError` a CSI caller receives. `RPCError`s pass through unchanged;
    /// Storage errors map by code, their message and details prefixed with what was being done;
    /// anything else is INTERNAL.
    package static func rpcError(_ error: any Error, while action: String) -> RPCError {
        if let rpc = error as? RPCError { return rpc }
        if let storage = error as? StorageError {
            var message = storage.message
            if !storage.details.isEmpty { message += " (" + storage.details.joined(separator: "; ") + ")" }
            return RPCError(code: code(for: storage.code), message: "\(action): \(message)")
        }
        return RPCError(code: .internalError, message: "\(action): \(error)")
    }

    /// The gRPC code of a Storage error code.
    package static func code(for code: StorageError.Code) -> RPCError.Code {
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
    package static func deviceUnavailable(volumeID: String, reason: String) -> RPCError {
        RPCError(
            code: .failedPrecondition,
            message: "finding the device of volume \(volumeID): volume \(volumeID) has no device node on this node: \(reason)")
    }

    /// Runs `body`, mapping whatever it throws.
    /// (Untyped `throws` on purpose: the typed-throws form of this generic async helper crashes
    /// Swift 6.3's optimizer while splitting its callers' coroutines in release builds.)
    package static func mapping<T>(_ action: String, _ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch { throw rpcError(error, while: action) }
    }
}
