import Glibc
import Platform

/// A ``VolumeBackend`` for machines without LVM: each volume is a sparse file attached to a loop
/// device.
///
/// Layout under the configured directory: `volumes/<id>.img` with `volumes/<id>.json` beside it,
/// and `snapshots/<id>.img` + `snapshots/<id>.json`. The JSON file, written atomically (temporary
/// file, fsync, rename), is the record that a volume exists: an image without one is the remains of
/// an interrupted create or delete and is replaced or removed. Nothing lives only in memory; loop
/// devices are found again by the image's device and inode and re-attached on demand after a
/// reboot. Snapshots and clones are reflinks (`FICLONE`) where the filesystem supports them, sparse
/// copies elsewhere; a mounted volume's filesystem is frozen (`FIFREEZE`) while it is copied. A
/// copy cut short has no record yet, so it is never served: a repeated CreateVolume copies again.
///
/// Capacity is the directory filesystem's free space minus the space its sparse images may still
/// claim, so that what is reported can really be written.
public final class LoopFileBackend: VolumeBackend {
    let directory: String
    let owner: String

    /// Creates the backend over `directory` (created if missing) for driver `driverName`.
    /// - Throws: `.invalidArgument` when the directory is not absolute or cannot be created.
    public init(directory: String, driverName: String) throws(StorageError) {
        guard directory.hasPrefix("/") else {
            throw StorageError(.invalidArgument, "loop file directory \(LVMName.quoted(directory)) is not an absolute path")
        }
        self.directory = KubeletPathPolicy.components(directory).joinedPath()
        self.owner = driverName
        try LinuxMounter.makeDirectory(self.directory)
        for sub in ["/volumes", "/snapshots"] {
            let path = self.directory + sub
            do throws(SystemError) { try makeDirectories(path, mode: 0o700) } catch {
                throw StorageError(errnoCode(error.errno), "cannot create loop file directory \(path): \(errnoText(error.errno))")
            }
        }
        removeLeftovers()
    }

    /// Removes what an interrupted create or delete left behind: images without a record that no
    /// loop device uses, and temporary record files. Only files older than a minute are touched,
    /// so a create under way in another process on the same directory is never disturbed.
    func removeLeftovers() {
        let now = time(nil)
        for folder in ["volumes", "snapshots"] {
            let path = directory + "/" + folder
            guard let dir = opendir(path) else { continue }
            var names: [String] = []
            while let entry = readdir(dir) {
                names.append(withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) })
            }
            closedir(dir)
            let present = Set(names)
            for name in names {
                let file = path + "/" + name
                var info = stat()
                guard lstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG, now - info.st_mtim.tv_sec > 60 else { continue }
                if name.contains(".json.tmp.") {
                    unlink(file)
                } else if name.hasSuffix(".img"), !present.contains(String(name.dropLast(4)) + ".json"), LoopDevice.find(file) == nil {
                    unlink(file)
                }
            }
        }
    }

    struct Record: Sendable, Equatable {
        var id: String
        var name: String
        var owner: String
        var kind: String
        var capacityBytes: UInt64
        var fsType: String?
        var source: String?
        /// "volume" when `source` names a volume (a clone); nil when it names a snapshot.
        var sourceKind: String? = nil
        var createdAt: Int64

        /// The record as a JSON object, keys sorted (the format of the files written so far).
        var json: JSONValue {
            var members: [(String, JSONValue)] = [
                ("capacityBytes", .number(String(capacityBytes))), ("createdAt", .number(String(createdAt))),
            ]
            if let fsType { members.append(("fsType", .string(fsType))) }
            members += [("id", .string(id)), ("kind", .string(kind)), ("name", .string(name)), ("owner", .string(owner))]
            if let source { members.append(("source", .string(source))) }
            if let sourceKind { members.append(("sourceKind", .string(sourceKind))) }
            return .object(members)
        }
    }

    // MARK: VolumeBackend

    public func createVolume(_ request: VolumeRequest) async throws(StorageError) -> BackendVolume {
        let id = try LVMName(LVMBackend.volumeID(forName: request.name)).rawValue
        if let key = request.parameters.keys.first(where: { !$0.hasPrefix("csi.storage.k8s.io/") }) {
            throw StorageError(.invalidArgument, "unknown parameter \(LVMName.quoted(key)); the loop file backend takes none")
        }
        if let encryption = request.encryption {
            throw StorageError(
                .invalidArgument, "volume \(id): the loop file backend does not encrypt volumes (encryption: \(encryption.rawValue)); use the LVM backend")
        }
        let size = try request.size(unit: 1 << 20, unitName: "one MiB", volume: id)
        return try await offload { [self] () throws(StorageError) -> BackendVolume in
            if let existing = try record(kind: "volume", id: id) {
                guard existing.owner == owner, existing.name == request.name else {
                    throw StorageError(
                        .alreadyExists,
                        "volume file \(imagePath("volume", id)) belongs to request \(LVMName.quoted(existing.name)) of \(existing.owner)")
                }
                let fits =
                    existing.capacityBytes >= request.requiredBytes && request.effectiveLimit.map { existing.capacityBytes <= $0 } ?? true
                let wanted = request.sourceVolumeID ?? request.sourceSnapshotID
                let wantedKind = request.sourceVolumeID != nil ? "volume" : nil
                guard fits, existing.source == wanted, wanted == nil || existing.sourceKind == wantedKind else {
                    throw StorageError(
                        .alreadyExists,
                        "volume \(id) exists with \(existing.capacityBytes) bytes and source \(Self.describeSource(existing.source, kind: existing.sourceKind)); the request asks for \(request.requiredBytes) bytes and source \(Self.describeSource(wanted, kind: wantedKind))"
                    )
                }
                return volume(existing)
            }
            let image = imagePath("volume", id)
            var sourceRecord: Record?
            if request.sourceSnapshotID != nil && request.sourceVolumeID != nil {
                throw StorageError(.invalidArgument, "volume \(id): give a source snapshot or a source volume, not both")
            }
            if let snapshotID = request.sourceSnapshotID {
                guard let snap = try record(kind: "snapshot", id: snapshotID), snap.owner == owner else {
                    throw StorageError(.notFound, "source snapshot \(snapshotID) not found in \(directory)/snapshots")
                }
                sourceRecord = snap
            }
            if let volumeID = request.sourceVolumeID {
                guard let origin = try record(kind: "volume", id: volumeID), origin.owner == owner else {
                    throw StorageError(.notFound, "source volume \(volumeID) not found in \(directory)/volumes")
                }
                sourceRecord = origin
            }
            if let sourceRecord, let limit = request.effectiveLimit, sourceRecord.capacityBytes > limit {
                throw StorageError(
                    .outOfRange,
                    "volume \(id): \(sourceRecord.kind) \(sourceRecord.id) holds \(sourceRecord.capacityBytes) bytes, above the limit of \(limit) bytes"
                )
            }
            let available = try availableBytes()
            guard size <= available else {
                throw StorageError(
                    .insufficientCapacity, "\(directory) can provide \(available) bytes; \(size) bytes requested for volume \(id)")
            }
            _ = unlink(image)  // the remains of an interrupted create, if any
            if let sourceRecord {
                let sourceImage = imagePath(sourceRecord.kind, sourceRecord.id)
                // A clone of a mounted volume is copied with its filesystem frozen, as a snapshot is.
                try withFrozenFilesystem(of: sourceRecord.kind == "volume" ? sourceImage : nil) { () throws(StorageError) in
                    try cloneOrCopy(from: sourceImage, to: image, bytes: sourceRecord.capacityBytes)
                }
            }
            try Self.createSparse(image, size: max(size, sourceRecord?.capacityBytes ?? 0))
            // The record is written last: until it is, the image is an interrupted create's.
            let record = Record(
                id: id, name: request.name, owner: owner, kind: "volume", capacityBytes: max(size, sourceRecord?.capacityBytes ?? 0),
                fsType: request.fsType, source: request.sourceVolumeID ?? request.sourceSnapshotID,
                sourceKind: request.sourceVolumeID != nil ? "volume" : nil, createdAt: Self.now())
            try write(record)
            return volume(record)
        }
    }

    public func deleteVolume(id: String) async throws(StorageError) {
        try await delete(kind: "volume", id: id)
    }

    public func expandVolume(id: String, toBytes bytes: UInt64, limitBytes: UInt64?) async throws(StorageError) -> BackendVolume {
        try await offload { [self] () throws(StorageError) -> BackendVolume in
            guard var record = try record(kind: "volume", id: id), record.owner == owner else {
                throw StorageError(.notFound, "volume \(id) not found in \(directory)/volumes")
            }
            let size = roundUp(bytes, to: 1 << 20)
            if size <= record.capacityBytes { return volume(record) }
            if let limit = limitBytes, limit > 0, size > limit {
                throw StorageError(
                    .outOfRange, "volume \(id): \(bytes) bytes rounded up to whole MiB is \(size), above the limit of \(limit) bytes")
            }
            let available = try availableBytes()
            guard size - record.capacityBytes <= available else {
                throw StorageError(
                    .insufficientCapacity,
                    "\(directory) can provide \(available) bytes; growing volume \(id) to \(size) bytes needs \(size - record.capacityBytes)"
                )
            }
            let image = imagePath("volume", id)
            try Self.createSparse(image, size: size)
            if let device = LoopDevice.find(image) { try LoopDevice.refreshCapacity(device) }
            record.capacityBytes = size
            try write(record)
            return volume(record)
        }
    }

    public func volume(id: String) async throws(StorageError) -> BackendVolume? {
        try await offload { [self] () throws(StorageError) -> BackendVolume? in
            guard let r = try record(kind: "volume", id: id), r.owner == owner else { return nil }
            return volume(r)
        }
    }

    public func listVolumes() async throws(StorageError) -> [BackendVolume] {
        try await offload { [self] () throws(StorageError) -> [BackendVolume] in try records(kind: "volume").map(volume) }
    }

    public func createSnapshot(name: String, sourceVolumeID: String) async throws(StorageError) -> BackendSnapshot {
        let id = try LVMName(LVMBackend.volumeID(forName: name)).rawValue
        return try await offload { [self] () throws(StorageError) -> BackendSnapshot in
            if let existing = try record(kind: "snapshot", id: id) {
                guard existing.owner == owner, existing.name == name, existing.source == sourceVolumeID else {
                    throw StorageError(
                        .alreadyExists, "snapshot \(name) exists for volume \(existing.source ?? "?"), not \(sourceVolumeID)")
                }
                return snapshot(existing)
            }
            guard let source = try record(kind: "volume", id: sourceVolumeID), source.owner == owner else {
                throw StorageError(.notFound, "source volume \(sourceVolumeID) not found in \(directory)/volumes")
            }
            let sourceImage = imagePath("volume", source.id)
            let image = imagePath("snapshot", id)
            _ = unlink(image)
            try withFrozenFilesystem(of: sourceImage) { () throws(StorageError) in
                try cloneOrCopy(from: sourceImage, to: image, bytes: source.capacityBytes)
            }
            let record = Record(
                id: id, name: name, owner: owner, kind: "snapshot", capacityBytes: source.capacityBytes,
                fsType: source.fsType, source: source.id, createdAt: Self.now())
            try write(record)
            return snapshot(record)
        }
    }

    public func deleteSnapshot(id: String) async throws(StorageError) {
        try await delete(kind: "snapshot", id: id)
    }

    public func snapshot(id: String) async throws(StorageError) -> BackendSnapshot? {
        try await offload { [self] () throws(StorageError) -> BackendSnapshot? in
            guard let r = try record(kind: "snapshot", id: id), r.owner == owner else { return nil }
            return snapshot(r)
        }
    }

    public func listSnapshots() async throws(StorageError) -> [BackendSnapshot] {
        try await offload { [self] () throws(StorageError) -> [BackendSnapshot] in try records(kind: "snapshot").map(snapshot) }
    }

    public func capacity(parameters: [String: String]) async throws(StorageError) -> UInt64 {
        if let key = parameters.keys.first(where: { !$0.hasPrefix("csi.storage.k8s.io/") }) {
            throw StorageError(.invalidArgument, "unknown parameter \(LVMName.quoted(key)); the loop file backend takes none")
        }
        return try await offload { [self] () throws(StorageError) -> UInt64 in try availableBytes() }
    }

    public func device(forVolume id: String) async throws(StorageError) -> VolumeDevice {
        try await offload { [self] () throws(StorageError) -> VolumeDevice in
            guard let record = try record(kind: "volume", id: id), record.owner == owner else {
                throw StorageError(.notFound, "volume \(id) not found in \(directory)/volumes")
            }
            let image = imagePath("volume", record.id)
            if let device = LoopDevice.find(image) { return .node(device) }
            return .node(try LoopDevice.attach(image))
        }
    }

    public func probe() async throws(StorageError) {
        try await offload { [self] () throws(StorageError) in
            var s = statvfs()
            _ = try syscall("statvfs", directory) { statvfs(directory, &s) }
            guard access(directory + "/volumes", W_OK) == 0 else {
                throw StorageError(.failed, "\(directory)/volumes is not writable: \(errnoText(errno))")
            }
        }
    }

    // MARK: Files

    func imagePath(_ kind: String, _ id: String) -> String { "\(directory)/\(kind == "volume" ? "volumes" : "snapshots")/\(id).img" }
    func recordPath(_ kind: String, _ id: String) -> String { "\(directory)/\(kind == "volume" ? "volumes" : "snapshots")/\(id).json" }

    private func record(kind: String, id: String) throws(StorageError) -> Record? {
        guard (try? LVMName(id)) != nil else { return nil }
        let path = recordPath(kind, id)
        guard let text = readWholeFile(path) else {
            if errno == ENOENT { return nil }
            throw StorageError(errnoCode(errno), "cannot read \(path): \(errnoText(errno))")
        }
        do { return try Record(json: JSON.parse(text)) } catch {
            throw StorageError(.failed, "\(path) is not a valid volume record: \(error.description)")
        }
    }

    private func records(kind: String) throws(StorageError) -> [Record] {
        let folder = "\(directory)/\(kind == "volume" ? "volumes" : "snapshots")"
        guard let dir = opendir(folder) else { throw StorageError(errnoCode(errno), "cannot list \(folder): \(errnoText(errno))") }
        var ids: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name.hasSuffix(".json") { ids.append(String(name.dropLast(5))) }
        }
        closedir(dir)
        var result: [Record] = []
        for id in ids.sorted() {
            if let r = try record(kind: kind, id: id), r.owner == owner { result.append(r) }
        }
        return result
    }

    private func write(_ record: Record) throws(StorageError) {
        let path = recordPath(record.kind, record.id)
        let text = JSON.print(record.json)
        guard writeWholeFile(path, text + "\n", mode: 0o600) else {
            throw StorageError(errnoCode(errno), "cannot write \(path): \(errnoText(errno))")
        }
        syncParentDirectory(of: path)
    }

    private func delete(kind: String, id: String) async throws(StorageError) {
        try await offload { [self] () throws(StorageError) in
            guard (try? LVMName(id)) != nil else { return }
            if let r = try record(kind: kind, id: id), r.owner != owner { return }
            let image = imagePath(kind, id)
            // Snapshots are independent copies here: a volume with snapshots may go.
            if let device = LoopDevice.find(image) {
                if let mount = try LinuxMounter.mount(of: device) {
                    throw StorageError(.busy, "\(kind) \(id) is in use: \(device) is mounted at \(mount.mountPoint)")
                }
                try LoopDevice.detach(device)
            }
            // The record goes first: from then on the volume does not exist, whatever happens next.
            let record = recordPath(kind, id)
            if unlink(record) != 0 && errno != ENOENT {
                throw StorageError(errnoCode(errno), "cannot remove \(record): \(errnoText(errno))")
            }
            syncParentDirectory(of: record)
            if unlink(image) != 0 && errno != ENOENT { throw StorageError(errnoCode(errno), "cannot remove \(image): \(errnoText(errno))") }
        }
    }

    /// Free space of the directory's filesystem minus what the sparse images may still claim.
    private func availableBytes() throws(StorageError) -> UInt64 {
        var s = statvfs()
        _ = try syscall("statvfs", directory) { statvfs(directory, &s) }
        let free = UInt64(s.f_bavail) * UInt64(s.f_frsize)
        var promised: UInt64 = 0
        for kind in ["volume", "snapshot"] {
            for r in try records(kind: kind) {
                var info = stat()
                guard stat(imagePath(kind, r.id), &info) == 0 else { continue }
                let allocated = UInt64(info.st_blocks) * 512
                if r.capacityBytes > allocated { promised += r.capacityBytes - allocated }
            }
        }
        return free > promised ? free - promised : 0
    }

    private func cloneOrCopy(from source: String, to destination: String, bytes: UInt64) throws(StorageError) {
        let input = try syscall("open", source) { open(source, O_RDONLY | O_CLOEXEC) }
        defer { close(input) }
        let output = try syscall("open", destination) { open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        var cloned = ioctl(output, 0x4004_9409 /* FICLONE */, input) == 0
        if cloned { cloned = fsync(output) == 0 }
        close(output)
        if cloned { return }
        try Self.createSparse(destination, size: bytes)
        try copyData(from: source, to: destination, bytes: bytes, sparse: true)
    }

    /// Runs `body` with the filesystem on `image`'s loop device frozen, if it is mounted.
    private func withFrozenFilesystem(of image: String?, _ body: () throws(StorageError) -> Void) throws(StorageError) {
        guard let image, let device = LoopDevice.find(image),
            let mount = try LinuxMounter.mount(of: device)
        else { return try body() }
        let fd = try syscall("open", mount.mountPoint) { open(mount.mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(fd) }
        let frozen = ioctl(fd, 0xC004_5877 /* FIFREEZE */, 0) == 0
        defer { if frozen { _ = ioctl(fd, 0xC004_5878 /* FITHAW */, 0) } }
        try body()
    }

    static func createSparse(_ path: String, size: UInt64) throws(StorageError) {
        let fd = try syscall("open", path) { open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600) }
        defer { close(fd) }
        var info = stat()
        _ = try syscall("fstat", path) { fstat(fd, &info) }
        if UInt64(info.st_size) < size {
            _ = try syscall("ftruncate", path) { ftruncate(fd, off_t(size)) }
        }
        _ = try syscall("fsync", path) { fsync(fd) }
    }

    static func now() -> Int64 { Int64(time(nil)) }

    /// "volume X", "snapshot X" or "none", for messages.
    static func describeSource(_ source: String?, kind: String?) -> String {
        guard let source else { return "none" }
        return (kind == "volume" ? "volume " : "snapshot ") + source
    }

    private func volume(_ r: Record) -> BackendVolume {
        BackendVolume(
            id: r.id, name: r.name, capacityBytes: r.capacityBytes, fsType: r.fsType,
            sourceSnapshotID: r.sourceKind == "volume" ? nil : r.source, sourceVolumeID: r.sourceKind == "volume" ? r.source : nil,
            location: imagePath("volume", r.id), condition: condition(r))
    }

    private func snapshot(_ r: Record) -> BackendSnapshot {
        BackendSnapshot(
            id: r.id, name: r.name, sourceVolumeID: r.source ?? "", sizeBytes: r.capacityBytes, creationTime: r.createdAt,
            readyToUse: true, location: imagePath("snapshot", r.id))
    }

    private func condition(_ r: Record) -> VolumeHealth {
        let image = imagePath("volume", r.id)
        var info = stat()
        guard stat(image, &info) == 0 else {
            return VolumeHealth(abnormal: true, message: "volume file \(image) is missing: \(errnoText(errno))")
        }
        if UInt64(info.st_size) < r.capacityBytes {
            return VolumeHealth(abnormal: true, message: "volume file \(image) has \(info.st_size) bytes, \(r.capacityBytes) expected")
        }
        return .healthy
    }
}

extension LoopFileBackend.Record {
    /// Reads a record from its JSON object; throws naming the field that is missing or mistyped.
    init(json: JSONValue) throws(JSONError) {
        guard json.objectValue != nil else { throw JSONError(message: "the record is not a JSON object", offset: 0) }
        func string(_ key: String) throws(JSONError) -> String {
            guard let s = json[key]?.stringValue else { throw JSONError(message: "field \(key) is missing or not a string", offset: 0) }
            return s
        }
        func optionalString(_ key: String) throws(JSONError) -> String? {
            guard let v = json[key], v != .null else { return nil }
            guard let s = v.stringValue else { throw JSONError(message: "field \(key) is not a string", offset: 0) }
            return s
        }
        func integer<T: FixedWidthInteger>(_ key: String, _: T.Type) throws(JSONError) -> T {
            guard let text = json[key]?.numberText, let n = T(text) else {
                throw JSONError(message: "field \(key) is missing or not an integer in range", offset: 0)
            }
            return n
        }
        self.init(
            id: try string("id"), name: try string("name"), owner: try string("owner"), kind: try string("kind"),
            capacityBytes: try integer("capacityBytes", UInt64.self), fsType: try optionalString("fsType"),
            source: try optionalString("source"), sourceKind: try optionalString("sourceKind"),
            createdAt: try integer("createdAt", Int64.self))
    }
}
