import RPCCore
import Synchronization

/// Serializes mutating operations per volume (or snapshot) id: a second operation on an id that
/// is busy fails at once with ABORTED, as the CSI spec asks, instead of queueing behind the first.
public final class VolumeLocks: Sendable {
    private let busy = Mutex<Set<String>>([])

    /// Creates an empty lock table.
    public init() {}

    /// Takes the lock on `id` or returns false when it is taken.
    public func tryLock(_ id: String) -> Bool {
        busy.withLock { $0.insert(id).inserted }
    }

    /// Releases the lock on `id`.
    public func unlock(_ id: String) {
        _ = busy.withLock { $0.remove(id) }
    }

    /// Whether an operation on `id` is running.
    public func isLocked(_ id: String) -> Bool { busy.withLock { $0.contains(id) } }

    /// Runs `body` holding the lock on every id in `ids` (taken in sorted order, all or none).
    /// - Throws: `RPCError` ABORTED naming the busy id, or what `body` throws.
    public func withLock<T: Sendable>(
        _ ids: String..., body: () async throws -> T
    ) async throws -> T {
        try await withLock(ids, body: body)
    }

    /// Runs `body` holding the lock on every id in `ids` (taken in sorted order, all or none).
    /// - Throws: `RPCError` ABORTED naming the busy id, or what `body` throws.
    public func withLock<T: Sendable>(
        _ ids: [String], body: () async throws -> T
    ) async throws -> T {
        let unique = Array(Set(ids)).sorted()
        var taken: [String] = []
        for id in unique {
            guard tryLock(id) else {
                for t in taken { unlock(t) }
                throw RPCError(code: .aborted, message: "an operation for volume \(id) is already in progress")
            }
            taken.append(id)
        }
        defer { for t in taken { unlock(t) } }
        return try await body()
    }
}
