package import H2

/// The one place where backend and mount errors become gRPC status codes.
package enum ErrorMapping {
    /// Maps `error` to the `RPCError` a CSI caller receives. `RPCError`s pass through unchanged;
    /// store errors map by kind; anything else is INTERNAL, prefixed with what was being done.
    package static func rpcError(_ error: any Error, while action: String) -> RPCError {
        if let rpc = error as? RPCError { return rpc }
        if let store = error as? StoreError {
            return RPCError(code: code(for: store.kind), message: "\(action): \(store.message)")
        }
        if let mapped = StorageErrorBridge.storeError(error) {
            return RPCError(code: code(for: mapped.kind), message: "\(action): \(mapped.message)")
        }
        return RPCError(code: .internalError, message: "\(action): \(error)")
    }

    /// The gRPC code of a store error kind.
    package static func code(for kind: StoreError.Kind) -> RPCError.Code {
        switch kind {
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .insufficientSpace: .resourceExhausted
        case .outOfRange: .outOfRange
        case .invalidArgument: .invalidArgument
        case .inUse: .failedPrecondition
        case .unavailable: .failedPrecondition
        case .failed: .internalError
        }
    }

    /// Runs `body`, mapping whatever it throws.
    /// (Untyped `throws` on purpose: the typed-throws form of this generic async helper crashes
    /// Swift 6.3's optimizer while splitting its callers' coroutines in release builds.)
    package static func mapping<T>(_ action: String, _ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch { throw rpcError(error, while: action) }
    }
}
