import FoundationEssentials
import Platform
import Storage

#if canImport(Glibc)
    import Glibc
#endif

/// A volume backend that keeps every volume as a directory under one root directory: the idea
/// of Kubernetes' hostpath driver, for a single node and for trying things out.
///
/// ```
/// <root>/<volume id>/data       the volume: staged and published by bind mounts
/// <root>/<volume id>/capacity   the size it was created with, in bytes (not enforced)
/// ```
///
/// Everything is read back from the directory on each call, so a restarted driver knows its
/// volumes. File system calls block, so each method runs its work with `offload`, on Platform's
/// blocking pool, never on the gRPC event loop. Snapshots are not supported.
struct HostPathBackend: VolumeBackend {
    /// The directory holding one subdirectory per volume.
    let root: String

    /// Creates the backend, making `root` if it is missing.
    /// - Throws: `StorageError` naming `root` when it cannot be made.
    init(root: String) throws(StorageError) {
        self.root = root
        try Self.attempt("creating the root directory \(root)") {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        }
    }

    func createVolume(_ request: VolumeRequest) async throws(StorageError) -> BackendVolume {
        guard request.sourceSnapshotID == nil else {
            throw StorageError(.unsupported, "the hostpath backend cannot fill a volume from a snapshot")
        }
        let id = try Self.volumeID(for: request.name)
        // No allocation unit to round to: the required size, else the default capped by the limit.
        let bytes =
            request.requiredBytes > 0
            ? request.requiredBytes : min(request.defaultBytes, request.limitBytes.flatMap { $0 > 0 ? $0 : nil } ?? .max)
        let directory = directory(of: id)
        return try await offload { () throws(StorageError) -> BackendVolume in
            // A repeated request returns what was made; the controller checks that it fits.
            if let existing = try read(id) { return existing }
            try Self.attempt("creating volume \(id) in \(directory)") {
                try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
                // Written last: a volume without its capacity file was never finished.
                guard FileManager.default.createFile(atPath: directory + "/capacity", contents: Data("\(bytes)\n".utf8)) else {
                    throw StorageError(.failed, "cannot write \(directory)/capacity")
                }
            }
            return BackendVolume(id: id, name: request.name, capacityBytes: bytes, location: directory)
        }
    }

    func deleteVolume(id: String) async throws(StorageError) {
        let directory = directory(of: id)
        try await offload { () throws(StorageError) in
            guard FileManager.default.fileExists(atPath: directory) else { return }
            try Self.attempt("deleting volume \(id) at \(directory)") { try FileManager.default.removeItem(atPath: directory) }
        }
    }

    func expandVolume(id: String, toBytes bytes: UInt64, limitBytes: UInt64?) async throws(StorageError) -> BackendVolume {
        let directory = directory(of: id)
        return try await offload { () throws(StorageError) -> BackendVolume in
            guard var volume = try read(id) else { throw StorageError(.notFound, "volume \(id) does not exist in \(root)") }
            if let limit = limitBytes, limit > 0, bytes > limit {
                throw StorageError(.outOfRange, "volume \(id): \(bytes) bytes is above the limit of \(limit) bytes")
            }
            guard bytes > volume.capacityBytes else { return volume }
            guard FileManager.default.createFile(atPath: directory + "/capacity", contents: Data("\(bytes)\n".utf8)) else {
                throw StorageError(.failed, "cannot write \(directory)/capacity")
            }
            volume.capacityBytes = bytes
            return volume
        }
    }

    func volume(id: String) async throws(StorageError) -> BackendVolume? {
        try await offload { () throws(StorageError) -> BackendVolume? in try read(id) }
    }

    func listVolumes() async throws(StorageError) -> [BackendVolume] {
        try await offload { () throws(StorageError) -> [BackendVolume] in
            let names = try Self.attempt("listing \(root)") { try FileManager.default.contentsOfDirectory(atPath: root) }
            var volumes: [BackendVolume] = []
            for name in names.sorted() { if let volume = try read(name) { volumes.append(volume) } }
            return volumes
        }
    }

    func createSnapshot(name: String, sourceVolumeID: String) async throws(StorageError) -> BackendSnapshot {
        throw StorageError(.unsupported, "the hostpath backend takes no snapshots")
    }

    func deleteSnapshot(id: String) async throws(StorageError) {}

    func snapshot(id: String) async throws(StorageError) -> BackendSnapshot? { nil }

    func listSnapshots() async throws(StorageError) -> [BackendSnapshot] { [] }

    func capacity(parameters: [String: String]) async throws(StorageError) -> UInt64 {
        try await offload { () throws(StorageError) -> UInt64 in
            var info = statvfs()
            guard statvfs(root, &info) == 0 else {
                throw StorageError(.failed, "cannot read the free space of \(root): errno \(errno)")
            }
            return UInt64(info.f_bavail) * UInt64(info.f_frsize)
        }
    }

    /// A directory volume: the node service bind-mounts it, nothing is formatted.
    func device(forVolume id: String) async throws(StorageError) -> VolumeDevice {
        guard try await volume(id: id) != nil else { throw StorageError(.notFound, "volume \(id) does not exist in \(root)") }
        return .directory(directory(of: id) + "/data")
    }

    func probe() async throws(StorageError) {
        try await offload { () throws(StorageError) in
            var isDirectory = false
            guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory else {
                throw StorageError(.notFound, "the root directory \(root) is missing")
            }
        }
    }

    // MARK: - Helpers

    func directory(of id: String) -> String { root + "/" + id }

    /// The volume `id` as its directory records it, or nil when there is none. Blocks.
    func read(_ id: String) throws(StorageError) -> BackendVolume? {
        let directory = directory(of: id)
        guard let data = FileManager.default.contents(atPath: directory + "/capacity") else { return nil }
        let text = String(decoding: data, as: UTF8.self).filter { !$0.isWhitespace }
        guard let bytes = UInt64(text) else {
            throw StorageError(.failed, "\(directory)/capacity holds '\(text)', not a number of bytes")
        }
        return BackendVolume(id: id, name: id, capacityBytes: bytes, location: directory)
    }

    /// The volume id for a request name: the name itself, when it is safe as a directory name and
    /// as a CSI id (`A-Z a-z 0-9 + _ . -`, at most 127 characters, no leading `-` or `.`).
    static func volumeID(for name: String) throws(StorageError) -> String {
        let allowed = name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            case UInt8(ascii: "+"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"): true
            default: false
            }
        }
        guard allowed, (1...127).contains(name.utf8.count), !name.hasPrefix("-"), !name.hasPrefix(".") else {
            throw StorageError(.invalidName, "volume name '\(name)' is not usable as a directory name: expected 1…127 of A-Z a-z 0-9 + _ . -")
        }
        return name
    }

    /// Runs `body`, turning what Foundation throws into a `StorageError` that says what was being done.
    static func attempt<T>(_ what: String, _ body: () throws -> T) throws(StorageError) -> T {
        do { return try body() } catch let error as StorageError { throw error } catch {
            throw StorageError(.failed, "\(what): \(error)")
        }
    }
}
