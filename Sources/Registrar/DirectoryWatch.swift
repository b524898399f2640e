internal import Glibc
internal import H2
internal import RPCCore
internal import Synchronization

/// An inotify watch on one directory: wakes its waiter when an entry is created, removed, renamed or changed.
/// The wait happens on the process-wide event loop (H2's `DescriptorWait`): no thread blocks in it.
///
/// Arm the watch first, then look at the file system, then ``wait(timeout:)``: a change that happens between
/// the look and the wait is not lost, because the kernel queues it on the watch.
package final class DirectoryWatch: Sendable {
    /// The directory being watched.
    package let directory: String
    private let inotifyFD: Int32
    private let closed = Atomic<Bool>(false)

    /// Why ``wait(timeout:)`` returned.
    package enum Outcome: Sendable, Hashable {
        /// Entries changed; their names (empty when the directory itself moved or went away).
        case changed([String])
        /// Nothing changed within the timeout.
        case timedOut
        /// The waiting task was cancelled, or the watch was closed.
        case cancelled
    }

    /// Starts watching `directory`.
    package init(directory: String) throws(RegistrarError) {
        self.directory = directory
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw PathInspection.systemError("inotify_init1", directory) }
        let mask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
        guard inotify_add_watch(fd, directory, mask) >= 0 else {
            let error = PathInspection.systemError("inotify_add_watch", directory)
            Glibc.close(fd)
            throw error
        }
        inotifyFD = fd
    }

    /// Watches the nearest existing ancestor of `path` (the path itself when it is a directory).
    ///
    /// Use it to wait for a file whose directory may not exist yet: when the next missing directory is
    /// created, the watch fires and the caller re-arms one level deeper.
    package static func nearestExisting(_ path: String) throws(RegistrarError) -> DirectoryWatch {
        var candidate = PathInspection.absolute(path)
        while true {
            if case .directory = PathInspection.resolvedKind(of: candidate) {
                return try DirectoryWatch(directory: candidate)
            }
            let parent = PathInspection.directoryName(of: candidate)
            if parent == candidate { return try DirectoryWatch(directory: "/") }
            candidate = parent
        }
    }

    deinit {
        // A waiter holds a strong reference while it waits, so nobody uses the descriptor now.
        Glibc.close(inotifyFD)
    }

    /// Stops watching: a later ``wait(timeout:)``, and one pending when it ends, returns
    /// ``Outcome/cancelled``.
    package func close() {
        closed.store(true, ordering: .releasing)
    }

    /// Waits until something changes in the directory, the timeout passes, or the task is cancelled.
    package func wait(timeout: Duration) async -> Outcome {
        if closed.load(ordering: .acquiring) || Task.isCancelled { return .cancelled }
        let outcome = await DescriptorWait.readable(inotifyFD, timeout: max(timeout, .zero))
        if closed.load(ordering: .acquiring) { return .cancelled }
        switch outcome {
        case .cancelled: return .cancelled
        case .timedOut: return .timedOut
        case .readable: return .changed(drainEvents())
        }
    }

    private func drainEvents() -> [String] {
        var names: [String] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(inotifyFD, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            var offset = 0
            let header = MemoryLayout<inotify_event>.size
            while offset + header <= n {
                let length = buffer.withUnsafeBytes { raw in
                    Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                }
                let start = offset + header
                let end = min(start + length, n)
                if length > 0 {
                    let nameBytes = buffer[start..<end].prefix { $0 != 0 }
                    names.append(String(decoding: nameBytes, as: UTF8.self))
                }
                offset = start + length
            }
        }
        return names
    }
}
