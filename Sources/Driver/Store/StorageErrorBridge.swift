import Storage

/// Translates the Storage module's typed errors into ``StoreError`` kinds; ``ErrorMapping``
/// turns those into gRPC codes.
package enum StorageErrorBridge {
    /// The store error for a Storage error, or nil when `error` is not one.
    package static func storeError(_ error: any Error) -> StoreError? {
        guard let storage = error as? StorageError else { return nil }
        let kind: StoreError.Kind
        switch storage.code {
        case .notFound: kind = .notFound
        case .alreadyExists: kind = .alreadyExists
        case .insufficientCapacity: kind = .insufficientSpace
        case .outOfRange: kind = .outOfRange
        case .invalidName, .invalidArgument: kind = .invalidArgument
        case .busy: kind = .inUse
        case .unsupported: kind = .unavailable
        default: kind = .failed
        }
        var message = storage.message
        if !storage.details.isEmpty { message += " (" + storage.details.joined(separator: "; ") + ")" }
        return StoreError(kind, message)
    }
}
