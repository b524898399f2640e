/// Where volumes live: the operations the CSI controller and node services need, independent of
/// gRPC and of the storage technology. Implementations: ``LVMBackend`` and ``LoopFileBackend``.
///
/// Every method is safe to call concurrently; mutating calls on one volume should be serialized by
/// the caller (the CSI services lock per volume id). Create and delete calls are idempotent.
public protocol VolumeBackend: Sendable {
    /// Creates a volume, or returns the existing one when a volume of that name and a compatible
    /// size already exists.
    /// - Throws: `.invalidName`/`.invalidArgument` for bad input, `.outOfRange` when the required
    ///   size rounded up to the allocation unit (or the source snapshot's size) is above
    ///   `limitBytes`, `.alreadyExists` when the name is taken with another size or source,
    ///   `.insufficientCapacity` when there is no room, `.notFound` when the source snapshot does
    ///   not exist.
    func createVolume(_ request: VolumeRequest) async throws(StorageError) -> Volume

    /// Deletes a volume; deleting a volume that does not exist succeeds.
    /// - Throws: `.busy` when the volume is in use or has snapshots that depend on it.
    func deleteVolume(id: String) async throws(StorageError)

    /// Grows a volume to at least `bytes` (rounded up to the backend's allocation unit); a volume
    /// already that large is returned unchanged. The filesystem on it is not resized.
    /// - Parameter limitBytes: the largest acceptable size, or nil (or 0) for no limit; checked
    ///   before anything grows.
    /// - Throws: `.notFound`, `.outOfRange` when the rounded size is above `limitBytes`,
    ///   `.insufficientCapacity`.
    func expandVolume(id: String, toBytes bytes: UInt64, limitBytes: UInt64?) async throws(StorageError) -> Volume

    /// The volume with this id, or nil when there is none (or it belongs to another driver).
    func volume(id: String) async throws(StorageError) -> Volume?

    /// Every volume this driver owns, sorted by id.
    func listVolumes() async throws(StorageError) -> [Volume]

    /// Creates a snapshot of a volume, or returns the existing one of that name and source.
    /// - Throws: `.notFound` for an unknown source, `.alreadyExists` when the name is taken by a
    ///   snapshot of another volume, `.insufficientCapacity`, `.unsupported` where the machine cannot
    ///   make one.
    func createSnapshot(name: String, sourceVolumeID: String) async throws(StorageError) -> Snapshot

    /// Deletes a snapshot; deleting one that does not exist succeeds.
    func deleteSnapshot(id: String) async throws(StorageError)

    /// The snapshot with this id, or nil.
    func snapshot(id: String) async throws(StorageError) -> Snapshot?

    /// Every snapshot this driver owns, sorted by id.
    func listSnapshots() async throws(StorageError) -> [Snapshot]

    /// Bytes available for new volumes with these creation parameters.
    func capacity(parameters: [String: String]) async throws(StorageError) -> UInt64

    /// The block device of a volume, attaching or activating it if needed.
    /// - Throws: `.notFound` for an unknown volume.
    func device(forVolume id: String) async throws(StorageError) -> VolumeDevice

    /// Succeeds while the backing store answers (for CSI Probe).
    func probe() async throws(StorageError)
}

/// What to create.
public struct VolumeRequest: Sendable, Hashable {
    /// The caller's name for the volume (the CSI request name); the volume id is derived from it.
    public var name: String
    /// The smallest acceptable size in bytes; it is rounded up to the allocation unit.
    public var requiredBytes: UInt64
    /// The largest acceptable size in bytes, or nil for no limit.
    public var limitBytes: UInt64?
    /// The filesystem the volume is meant to carry, recorded with it (`ext4`, `xfs`), or nil for raw
    /// block or unspecified.
    public var fsType: String?
    /// A snapshot to fill the new volume from.
    public var sourceSnapshotID: String?
    /// Backend-specific parameters (the storage class parameters), see each backend.
    public var parameters: [String: String]

    /// Creates a request.
    public init(
        name: String, requiredBytes: UInt64, limitBytes: UInt64? = nil, fsType: String? = nil,
        sourceSnapshotID: String? = nil, parameters: [String: String] = [:]
    ) {
        self.name = name
        self.requiredBytes = requiredBytes
        self.limitBytes = limitBytes
        self.fsType = fsType
        self.sourceSnapshotID = sourceSnapshotID
        self.parameters = parameters
    }
}

/// A volume as the backend knows it.
public struct Volume: Sendable, Hashable {
    /// The volume id (stable, valid as an LVM name).
    public var id: String
    /// The request name it was created for, when recorded.
    public var name: String?
    /// Its size in bytes.
    public var capacityBytes: UInt64
    /// The filesystem type recorded at creation.
    public var fsType: String?
    /// The snapshot it was created from.
    public var sourceSnapshotID: String?
    /// Where it lives, for messages: `vg/lv` or a file path.
    public var location: String
    /// Whether it looks healthy.
    public var condition: VolumeCondition
}

/// A snapshot as the backend knows it.
public struct Snapshot: Sendable, Hashable {
    /// The snapshot id.
    public var id: String
    /// The request name it was created for, when recorded.
    public var name: String?
    /// The id of the volume it was taken from.
    public var sourceVolumeID: String
    /// The size of the source volume at the time of the snapshot, in bytes.
    public var sizeBytes: UInt64
    /// Seconds since 1970 when it was taken.
    public var creationTime: Int64
    /// Whether it can be used as a volume source now.
    public var readyToUse: Bool
    /// Where it lives, for messages.
    public var location: String
}

/// Health of a volume (CSI VolumeCondition).
public struct VolumeCondition: Sendable, Hashable {
    /// True when something is wrong.
    public var abnormal: Bool
    /// What is wrong, or a short confirmation that all is well.
    public var message: String

    /// A healthy condition.
    public static let healthy = VolumeCondition(abnormal: false, message: "healthy")

    /// Creates a condition.
    public init(abnormal: Bool, message: String) {
        self.abnormal = abnormal
        self.message = message
    }
}

/// The block device of a volume.
public enum VolumeDevice: Sendable, Hashable {
    /// The device node, for example `/dev/vg0/pvc-1` or `/dev/loop3`.
    case node(String)
    /// The volume exists but has no device node on this machine; the reason says why (for example
    /// device-mapper is not available, so logical volumes cannot be activated).
    case unavailable(reason: String)
}
