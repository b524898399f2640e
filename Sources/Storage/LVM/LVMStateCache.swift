import Glibc
import Synchronization

/// Answers read-only questions from memory.
///
/// The cached ``LVMState`` is dropped when LVM writes metadata backups (inotify on the host's
/// `backup/` and `archive/` directories — every `lvm` tool writes them after a change), after the
/// backend's own writes, and in any case once it is older than `maximumAge` (default 0.9 s), so a
/// change made with the `lvm` command-line tools is visible within one second even with backups
/// switched off.
///
/// Concurrent readers that find the state stale share one load (single flight), so a burst of
/// polls after expiry costs one LVM scan, not one per caller.
final class LVMStateCache: Sendable {
    private struct Load: Sendable {
        var task: Task<LVMState, any Error>
        var generation: UInt64
    }
    private struct Entry: Sendable {
        var state: LVMState?
        var loadedAt: ContinuousClock.Instant
        var generation: UInt64
        var inflight: Load?
    }
    private let entry = Mutex(Entry(state: nil, loadedAt: .now, generation: 0, inflight: nil))
    private let watcher: MetadataWatcher?
    private let lvm: LVM
    let maximumAge: Duration
    /// How many times LVM was asked (for tests and benchmarks).
    let loads = Atomic<Int>(0)

    init(lvm: LVM, lvmDirectory: String, maximumAge: Duration) {
        self.lvm = lvm
        self.maximumAge = maximumAge
        self.watcher = MetadataWatcher(directories: [lvmDirectory + "/backup", lvmDirectory + "/archive"])
    }

    /// Forgets the cached state; the next read loads it again.
    func invalidate() {
        entry.withLock {
            $0.state = nil
            $0.inflight = nil
            $0.generation &+= 1
        }
    }

    /// The current state: cached when still valid, else loaded from LVM (joining a load already
    /// under way for the current generation: it started less than `maximumAge` ago).
    func state() async throws(StorageError) -> LVMState {
        if watcher?.drain() == true { invalidate() }
        let now = ContinuousClock.now
        let (cached, load) = entry.withLock { e -> (LVMState?, Load?) in
            if let s = e.state, now - e.loadedAt < maximumAge { return (s, nil) }
            if let inflight = e.inflight, inflight.generation == e.generation { return (nil, inflight) }
            let started = ContinuousClock.now
            let generation = e.generation
            let task = Task<LVMState, any Error> { [self] in
                try await loadAndCache(generation: generation, startedAt: started, finishesInflight: true)
            }
            let load = Load(task: task, generation: generation)
            e.inflight = load
            return (nil, load)
        }
        if let cached { return cached }
        do {
            return try await load!.task.value
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(.failed, "reading LVM state failed: \(error)")
        }
    }

    /// Loads the state from LVM now, bypassing the cache and any load under way, and caches it.
    func fresh() async throws(StorageError) -> LVMState {
        let generation = entry.withLock { $0.generation }
        return try await loadAndCache(generation: generation, startedAt: .now, finishesInflight: false)
    }

    /// Loads the state from LVM and caches it as of `startedAt`, unless a write or change notice
    /// arrived while loading (that makes this answer suspect); the shared in-flight load, when this
    /// is it, is cleared.
    private func loadAndCache(
        generation: UInt64, startedAt started: ContinuousClock.Instant, finishesInflight: Bool
    ) async throws(StorageError) -> LVMState {
        let state = try await LVMState.load(lvm)
        loads.add(1, ordering: .relaxed)
        entry.withLock { e in
            if e.generation == generation {
                e.state = state
                e.loadedAt = started
            }
            if finishesInflight, e.inflight?.generation == generation { e.inflight = nil }
        }
        return state
    }
}

/// A non-blocking inotify descriptor watching directories for written, renamed or removed files.
final class MetadataWatcher: Sendable {
    private let fd: Int32

    init?(directories: [String]) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE)
        var watching = 0
        for directory in directories where inotify_add_watch(fd, directory, mask) >= 0 { watching += 1 }
        guard watching > 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Reads every pending event; true when there was at least one.
    func drain() -> Bool {
        var any = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                any = true
                continue
            }
            if n < 0 && errno == EINTR { continue }
            return any
        }
    }
}
