/// Where volumes live: the operations the CSI controller and node services need, independent of
/// gRPC and of the storage technology. Implementations: ``LVMBackend`` and ``LoopFileBackend``;
/// a driver of your own implements it for its storage and hands it to CSIDriverKit's servers.
///
/// Every method is safe to call concurrently; mutating calls on one volume should be serialized by
/// the caller (the CSI services lock per volume id). Create and delete calls are idempotent.
/// Failures are ``StorageError``s, whose ``StorageError/Code`` the services map to gRPC codes
/// (`.notFound` → NOT_FOUND, `.insufficientCapacity` → RESOURCE_EXHAUSTED, …). Ids should be
/// made of `A-Z a-z 0-9 + _ . -` (at most 127 characters, no leading `-`): the services answer
/// NOT_FOUND for any other id without asking the backend.
public protocol VolumeBackend: Sendable {
    /// Creates a volume, or returns the existing one when a volume of that name and a compatible
    /// size already exists. The size is a whole number of the backend's allocation unit: the
    /// required size rounded up, else the limit rounded down, else the default size rounded up;
    /// and at least the source snapshot's or source volume's size and what ``VolumeRequest/fsType``
    /// needs (``FilesystemMinimum``). A volume with a ``VolumeRequest/sourceVolumeID`` is a clone:
    /// it holds the source volume's data as it was when it was made, and is independent of it.
    /// - Throws: `.invalidName`/`.invalidArgument` for bad input (a source the backend cannot
    ///   clone from, such as one in another volume group), `.outOfRange` when no whole
    ///   number of allocation units lies between `requiredBytes` and `limitBytes` (or the source's
    ///   size or the filesystem's minimum is above `limitBytes`), `.alreadyExists` when the name is taken with
    ///   another size or source, `.insufficientCapacity` when there is no room, `.notFound` when
    ///   the source snapshot or source volume does not exist, `.busy` when the source volume is
    ///   itself still being filled.
    func createVolume(_ request: VolumeRequest) async throws(StorageError) -> BackendVolume

    /// Deletes a volume; deleting a volume that does not exist succeeds.
    /// - Throws: `.busy` when the volume is in use or has snapshots that depend on it.
    func deleteVolume(id: String) async throws(StorageError)

    /// Grows a volume to at least `bytes` (rounded up to the backend's allocation unit); a volume
    /// already that large is returned unchanged. The filesystem on it is not resized.
    /// - Parameters:
    ///   - id: the volume id.
    ///   - bytes: the size it must have at least.
    ///   - limitBytes: the largest acceptable size, or nil (or 0) for no limit; checked before
    ///     anything grows.
    /// - Throws: `.notFound`, `.outOfRange` when the rounded size is above `limitBytes`,
    ///   `.insufficientCapacity`.
    func expandVolume(id: String, toBytes bytes: UInt64, limitBytes: UInt64?) async throws(StorageError) -> BackendVolume

    /// The volume with this id, or nil when there is none (or it belongs to another driver).
    func volume(id: String) async throws(StorageError) -> BackendVolume?

    /// Every volume this driver owns, sorted by id.
    func listVolumes() async throws(StorageError) -> [BackendVolume]

    /// Creates a snapshot of a volume, or returns the existing one of that name and source.
    /// - Throws: `.notFound` for an unknown source, `.alreadyExists` when the name is taken by a
    ///   snapshot of another volume, `.insufficientCapacity`, `.unsupported` where the machine cannot
    ///   make one.
    func createSnapshot(name: String, sourceVolumeID: String) async throws(StorageError) -> BackendSnapshot

    /// Deletes a snapshot; deleting one that does not exist succeeds.
    func deleteSnapshot(id: String) async throws(StorageError)

    /// The snapshot with this id, or nil.
    func snapshot(id: String) async throws(StorageError) -> BackendSnapshot?

    /// Every snapshot this driver owns, sorted by id.
    func listSnapshots() async throws(StorageError) -> [BackendSnapshot]

    /// Bytes available for new volumes with these creation parameters.
    func capacity(parameters: [String: String]) async throws(StorageError) -> UInt64

    /// The block device of a volume, attaching or activating it if needed.
    /// - Throws: `.notFound` for an unknown volume.
    func device(forVolume id: String) async throws(StorageError) -> VolumeDevice

    /// Succeeds while the backing store answers (for CSI Probe).
    func probe() async throws(StorageError)

    /// Why `device`, found behind a path where volume `id` is published, is not (or no longer) a
    /// working device of that volume, or nil when it is or the backend cannot tell. ``LVMBackend``:
    /// the LV is not active while device-mapper is available, or is active as another device.
    func deviceProblem(_ device: DeviceNumber, ofVolume id: String) async throws(StorageError) -> String?

    /// Whether the backend takes group snapshots (``createGroupSnapshot(name:sourceVolumeIDs:)``);
    /// false by default, and then the three group calls throw `.unsupported`.
    var supportsGroupSnapshots: Bool { get }

    /// Takes one snapshot of each source volume, all at one point in time as far as writes to
    /// them go (write-order consistent: as if the power failed for all of them at once), or
    /// returns the existing group of that name and the same sources. Each member is a snapshot
    /// like any other (``snapshot(id:)``, ``listSnapshots()``, a volume source) whose
    /// ``BackendSnapshot/groupSnapshotID`` names the group; it is deleted only with the group.
    /// A group cut short (the driver died) is never served: its members are hidden, and the
    /// repeated call removes them and takes the group again.
    /// - Throws: `.notFound` for an unknown source, `.alreadyExists` when the name is taken by a
    ///   group of other sources, `.insufficientCapacity`, `.unsupported` when these volumes cannot
    ///   be snapshotted together consistently (the message says why), `.busy` for a source that is
    ///   still being filled.
    func createGroupSnapshot(name: String, sourceVolumeIDs: [String]) async throws(StorageError) -> BackendGroupSnapshot

    /// Deletes a group snapshot and all its members; deleting one that does not exist succeeds.
    func deleteGroupSnapshot(id: String) async throws(StorageError)

    /// The complete group snapshot with this id, or nil (none, or one cut short).
    func groupSnapshot(id: String) async throws(StorageError) -> BackendGroupSnapshot?

    /// Whether the backend records IO limits with its volumes: ``VolumeRequest/ioLimits`` at
    /// creation, ``setIOLimits(_:ofVolume:)`` later, ``BackendVolume/ioLimits`` when read.
    var recordsIOLimits: Bool { get }

    /// Replaces the IO limits recorded with volume `id` (the node applies them to the pods that
    /// use it). Setting the limits it already has changes nothing.
    /// - Throws: `.notFound` for an unknown volume, `.unsupported` where ``recordsIOLimits`` is false.
    func setIOLimits(_ limits: IOLimits, ofVolume id: String) async throws(StorageError) -> BackendVolume
}

extension VolumeBackend {
    /// Nil: the backend cannot tell.
    public func deviceProblem(_ device: DeviceNumber, ofVolume id: String) async throws(StorageError) -> String? { nil }

    /// False: no group snapshots.
    public var supportsGroupSnapshots: Bool { false }

    /// Throws `.unsupported`.
    public func createGroupSnapshot(name: String, sourceVolumeIDs: [String]) async throws(StorageError) -> BackendGroupSnapshot {
        throw StorageError(.unsupported, "this backend takes no group snapshots")
    }

    /// Throws `.unsupported`.
    public func deleteGroupSnapshot(id: String) async throws(StorageError) {
        throw StorageError(.unsupported, "this backend takes no group snapshots")
    }

    /// Throws `.unsupported`.
    public func groupSnapshot(id: String) async throws(StorageError) -> BackendGroupSnapshot? {
        throw StorageError(.unsupported, "this backend takes no group snapshots")
    }

    /// False: the backend records no IO limits.
    public var recordsIOLimits: Bool { false }

    /// `.unsupported`: the backend records no IO limits.
    public func setIOLimits(_ limits: IOLimits, ofVolume id: String) async throws(StorageError) -> BackendVolume {
        throw StorageError(.unsupported, "volume \(id): this backend records no IO limits")
    }
}

/// What to create.
public struct VolumeRequest: Sendable, Hashable {
    /// The size a volume gets when the caller asks for none: 1 GiB.
    public static let defaultVolumeBytes: UInt64 = 1 << 30

    /// The caller's name for the volume (the CSI request name); the volume id is derived from it.
    public var name: String
    /// The smallest acceptable size in bytes, or 0 when the caller gives none. It is rounded up
    /// to the allocation unit, and the result must not be above `limitBytes`.
    public var requiredBytes: UInt64
    /// The largest acceptable size in bytes, or nil (or 0) for no limit. Without `requiredBytes`,
    /// the volume gets `defaultBytes`, or the largest whole number of allocation units not above
    /// the limit when that is smaller.
    public var limitBytes: UInt64?
    /// The size made when the caller gives no `requiredBytes`; rounded up to the allocation unit
    /// and capped by `limitBytes`.
    public var defaultBytes: UInt64
    /// The filesystem the volume is meant to carry, recorded with it (`ext4`, `xfs`), or nil for raw
    /// block or unspecified. The volume is made at least as large as the filesystem needs.
    public var fsType: String?
    /// A snapshot to fill the new volume from.
    public var sourceSnapshotID: String?
    /// A volume to clone: the new volume starts with its data (at most one of this and
    /// `sourceSnapshotID` is set).
    public var sourceVolumeID: String?
    /// Backend-specific parameters (the storage class parameters), see each backend.
    public var parameters: [String: String]
    /// How the volume's data is to be encrypted on the node, or nil for not at all. A volume
    /// restored from an encrypted snapshot is encrypted the same way whatever this says.
    public var encryption: VolumeEncryption?
    /// The IO limits to record with the volume (CSI mutable parameters); empty for none. Only a
    /// backend whose ``VolumeBackend/recordsIOLimits`` is true is given any.
    public var ioLimits: IOLimits

    /// Creates a request.
    public init(
        name: String, requiredBytes: UInt64, limitBytes: UInt64? = nil, defaultBytes: UInt64 = Self.defaultVolumeBytes,
        fsType: String? = nil, sourceSnapshotID: String? = nil, sourceVolumeID: String? = nil, parameters: [String: String] = [:],
        encryption: VolumeEncryption? = nil, ioLimits: IOLimits = IOLimits()
    ) {
        self.encryption = encryption
        self.ioLimits = ioLimits
        self.name = name
        self.requiredBytes = requiredBytes
        self.limitBytes = limitBytes
        self.defaultBytes = defaultBytes
        self.fsType = fsType
        self.sourceSnapshotID = sourceSnapshotID
        self.sourceVolumeID = sourceVolumeID
        self.parameters = parameters
    }

    /// The limit, with 0 read as none.
    var effectiveLimit: UInt64? { limitBytes.flatMap { $0 > 0 ? $0 : nil } }

    /// The size to create, a whole number of `unit`s (at least one): `requiredBytes` rounded up;
    /// without it, `defaultBytes` rounded up, capped by `limitBytes` rounded down (a limit is a
    /// ceiling, not a request: a class with a 100 GiB limit and no required size gets the default).
    /// Either way at least what `fsType` needs (``FilesystemMinimum``, rounded up to a unit), so
    /// that the filesystem can be made on it: a 64 MiB request for xfs gets 300 MiB.
    /// - Parameters:
    ///   - unit: the allocation unit in bytes.
    ///   - unitName: the unit as messages name it ("one MiB", "one extent of volume group vg0").
    ///   - volume: the volume id, for messages.
    /// - Throws: `.invalidArgument` when the limit is below the required size, `.outOfRange` when
    ///   the required size rounded up, or the filesystem's minimum, is above the limit, or the
    ///   limit alone is less than one unit.
    package func size(unit: UInt64, unitName: String, volume: String) throws(StorageError) -> UInt64 {
        let unit = max(unit, 1)
        // An encrypted volume's filesystem lives on the mapping, behind the LUKS2 header.
        let minimum = FilesystemMinimum.bytes(for: fsType) + (encryption?.headerBytes ?? 0) * (fsType == nil ? 0 : 1)
        let floor = minimum > 0 ? roundUp(minimum, to: unit) : 0
        guard let limit = effectiveLimit else {
            return max(roundUp(max(requiredBytes == 0 ? defaultBytes : requiredBytes, 1), to: unit), floor)
        }
        if requiredBytes > limit {
            throw StorageError(.invalidArgument, "volume \(volume): limit \(limit) bytes is below the required \(requiredBytes) bytes")
        }
        if floor > limit {
            throw StorageError(
                .outOfRange,
                "volume \(volume): an \(fsType ?? "") filesystem needs at least \(FilesystemMinimum.describe(minimum))\(floor > minimum ? ", \(floor) bytes in whole units of \(unit) bytes (\(unitName))" : ""), above the limit of \(limit) bytes"
            )
        }
        if requiredBytes == 0 {
            guard limit >= unit else {
                throw StorageError(
                    .outOfRange,
                    "volume \(volume): the limit of \(limit) bytes is less than \(unitName) (\(unit) bytes), the smallest size a volume can have"
                )
            }
            return max(min(roundUp(max(defaultBytes, 1), to: unit), limit / unit * unit), floor)
        }
        let size = roundUp(requiredBytes, to: unit)
        guard size <= limit else {
            throw StorageError(
                .outOfRange,
                "volume \(volume): \(requiredBytes) bytes rounded up to a multiple of \(unit) bytes (\(unitName)) is \(size) bytes, above the limit of \(limit) bytes"
            )
        }
        return max(size, floor)
    }
}

/// A volume as the backend knows it (named apart from `CSI.Volume`, the message the controller
/// builds from it).
public struct BackendVolume: Sendable, Hashable {
    /// The volume id (stable; `A-Z a-z 0-9 + _ . -`, as an LVM name).
    public var id: String
    /// The request name it was created for, when recorded.
    public var name: String?
    /// Its size in bytes.
    public var capacityBytes: UInt64
    /// The filesystem type recorded at creation.
    public var fsType: String?
    /// The snapshot it was created from.
    public var sourceSnapshotID: String?
    /// The volume it was cloned from.
    public var sourceVolumeID: String?
    /// Where it lives, for messages: `vg/lv` or a file path.
    public var location: String
    /// Whether it looks healthy.
    public var condition: VolumeHealth
    /// How its data is encrypted on the node, or nil.
    public var encryption: VolumeEncryption?
    /// The IO limits recorded with it (empty: none).
    public var ioLimits: IOLimits

    /// Creates a volume description.
    public init(
        id: String, name: String? = nil, capacityBytes: UInt64, fsType: String? = nil, sourceSnapshotID: String? = nil,
        sourceVolumeID: String? = nil, location: String, condition: VolumeHealth = .healthy, encryption: VolumeEncryption? = nil,
        ioLimits: IOLimits = IOLimits()
    ) {
        self.encryption = encryption
        self.ioLimits = ioLimits
        self.id = id
        self.name = name
        self.capacityBytes = capacityBytes
        self.fsType = fsType
        self.sourceSnapshotID = sourceSnapshotID
        self.sourceVolumeID = sourceVolumeID
        self.location = location
        self.condition = condition
    }
}

/// How a volume's data is encrypted on the node (the StorageClass parameter `encryption`).
public enum VolumeEncryption: String, Sendable, Hashable, CaseIterable {
    /// LUKS2 through dm-crypt, opened with the `passphrase` key of the node-stage secret.
    case luks2

    /// What the encryption header takes from the device: the LUKS2 default of 16 MiB.
    public var headerBytes: UInt64 {
        switch self {
        case .luks2: 16 << 20
        }
    }
}

/// A snapshot as the backend knows it (named apart from `CSI.Snapshot`).
public struct BackendSnapshot: Sendable, Hashable {
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
    /// How the data it holds is encrypted (its source volume's encryption), or nil.
    public var encryption: VolumeEncryption?
    /// The group snapshot it belongs to, or nil for a snapshot of its own. A member is deleted
    /// only with its group.
    public var groupSnapshotID: String?

    /// Creates a snapshot description.
    public init(
        id: String, name: String? = nil, sourceVolumeID: String, sizeBytes: UInt64, creationTime: Int64, readyToUse: Bool = true,
        location: String, encryption: VolumeEncryption? = nil, groupSnapshotID: String? = nil
    ) {
        self.groupSnapshotID = groupSnapshotID
        self.encryption = encryption
        self.id = id
        self.name = name
        self.sourceVolumeID = sourceVolumeID
        self.sizeBytes = sizeBytes
        self.creationTime = creationTime
        self.readyToUse = readyToUse
        self.location = location
    }
}

/// A group snapshot as the backend knows it (named apart from `CSI.VolumeGroupSnapshot`): one
/// snapshot of each of its source volumes, taken together.
public struct BackendGroupSnapshot: Sendable, Hashable {
    /// The group snapshot id.
    public var id: String
    /// The request name it was created for.
    public var name: String
    /// Its members, one per source volume, sorted by id; each has ``BackendSnapshot/groupSnapshotID`` == ``id``.
    public var snapshots: [BackendSnapshot]
    /// Seconds since 1970 when it was taken.
    public var creationTime: Int64

    /// Whether every member can be used as a volume source now.
    public var readyToUse: Bool { snapshots.allSatisfy(\.readyToUse) }

    /// Creates a group snapshot description.
    public init(id: String, name: String, snapshots: [BackendSnapshot], creationTime: Int64) {
        self.id = id
        self.name = name
        self.snapshots = snapshots
        self.creationTime = creationTime
    }
}

/// Health of a volume, as the backend sees it (CSI's `VolumeCondition`, named apart from it).
public struct VolumeHealth: Sendable, Hashable {
    /// True when something is wrong.
    public var abnormal: Bool
    /// What is wrong, or a short confirmation that all is well.
    public var message: String

    /// A healthy condition.
    public static let healthy = VolumeHealth(abnormal: false, message: "healthy")

    /// Creates a condition.
    public init(abnormal: Bool, message: String) {
        self.abnormal = abnormal
        self.message = message
    }
}

/// Where the node service finds a volume's data on this machine.
public enum VolumeDevice: Sendable, Hashable {
    /// The device node, for example `/dev/vg0/pvc-1` or `/dev/loop3`: staging makes a filesystem
    /// on it (only when it is blank) and mounts it; raw block publishing binds the node itself.
    case node(String)
    /// A directory that is the volume (a hostpath-style backend): staging bind-mounts it, nothing
    /// is formatted, the filesystem type is the host's, and raw block access is refused.
    case directory(String)
    /// The volume exists but has no device node on this machine; the reason says why (for example
    /// device-mapper is not available, so logical volumes cannot be activated).
    case unavailable(reason: String)
}
