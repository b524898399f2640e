/// A volume as the services see it, rebuilt from the backend's own metadata (LV tags or
/// loop-file metadata) on every read: nothing about it lives only in memory.
package struct StoredVolume: Sendable, Hashable {
    /// The CSI volume id.
    package var id: String
    /// The CSI name the volume was created for, when recorded.
    package var name: String?
    /// The size, in bytes.
    package var capacityBytes: Int64
    /// Where it lives, for messages and the volume context: `vg/lv` or a file path.
    package var location: String
    /// The filesystem type recorded at creation, if any.
    package var fsType: String?
    /// The snapshot it was created from, if any.
    package var sourceSnapshotID: String?
    /// Why the volume is unhealthy, or nil when it is healthy.
    package var abnormal: String?

    package init(
        id: String, name: String?, capacityBytes: Int64, location: String, fsType: String? = nil,
        sourceSnapshotID: String? = nil, abnormal: String? = nil
    ) {
        self.id = id
        self.name = name
        self.capacityBytes = capacityBytes
        self.location = location
        self.fsType = fsType
        self.sourceSnapshotID = sourceSnapshotID
        self.abnormal = abnormal
    }
}

/// A snapshot of a volume.
package struct StoredSnapshot: Sendable, Hashable {
    /// The CSI snapshot id.
    package var id: String
    /// The CSI name the snapshot was created for, when recorded.
    package var name: String?
    /// The id of the volume it was taken from.
    package var sourceVolumeID: String
    /// The size of the source volume when the snapshot was taken.
    package var sizeBytes: Int64
    /// When it was taken, in seconds since the epoch.
    package var creationSeconds: Int64
    /// Whether it can be used as a volume source.
    package var readyToUse: Bool

    package init(id: String, name: String?, sourceVolumeID: String, sizeBytes: Int64, creationSeconds: Int64, readyToUse: Bool = true) {
        self.id = id
        self.name = name
        self.sourceVolumeID = sourceVolumeID
        self.sizeBytes = sizeBytes
        self.creationSeconds = creationSeconds
        self.readyToUse = readyToUse
    }
}

/// What a new volume must look like.
package struct VolumeSpec: Sendable, Hashable {
    /// The CSI request name; the store derives the volume id from it and records it.
    package var name: String
    /// The size wanted; the store rounds it up to its allocation unit.
    package var requiredBytes: Int64
    /// The most the rounded size may be; 0 means no limit.
    package var limitBytes: Int64
    /// The filesystem the volume is meant to carry, if named.
    package var fsType: String?
    /// The snapshot to copy, if any.
    package var sourceSnapshotID: String?
    /// Backend placement parameters (volume group, pattern, thin pool), already checked.
    package var parameters: [String: String]

    package init(
        name: String, requiredBytes: Int64, limitBytes: Int64, fsType: String? = nil, sourceSnapshotID: String? = nil,
        parameters: [String: String] = [:]
    ) {
        self.name = name
        self.requiredBytes = requiredBytes
        self.limitBytes = limitBytes
        self.fsType = fsType
        self.sourceSnapshotID = sourceSnapshotID
        self.parameters = parameters
    }
}

/// Why a store operation failed, by kind; ``ErrorMapping`` turns kinds into gRPC codes.
package struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure.
    package enum Kind: Sendable, Hashable {
        /// The volume, snapshot or group does not exist.
        case notFound
        /// Something with that name exists and differs.
        case alreadyExists
        /// Not enough free space.
        case insufficientSpace
        /// The size cannot be satisfied (for example, smaller than the current size, or above the limit).
        case outOfRange
        /// A name or argument is unacceptable.
        case invalidArgument
        /// The object is in use (mounted, has snapshots).
        case inUse
        /// The operation cannot run on this machine (for example, no device node without device-mapper).
        case unavailable
        /// Anything else.
        case failed
    }
    /// The kind.
    package var kind: Kind
    /// What happened, naming the volume, group, device or path.
    package var message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    package var description: String { message }
}

/// Where volumes live: the controller and node services talk only to this.
package protocol VolumeStore: Sendable {
    /// Throws unless the backing storage answers.
    func probe() async throws
    /// The volume with `id`, or nil.
    func volume(id: String) async throws -> StoredVolume?
    /// Every volume the driver owns, in a stable order.
    func volumes() async throws -> [StoredVolume]
    /// Creates a volume, or returns the existing one of that name when it is compatible.
    /// - Throws: `StoreError` `.alreadyExists` for an incompatible repeat, `.insufficientSpace`.
    func createVolume(_ spec: VolumeSpec) async throws -> StoredVolume
    /// Deletes a volume; no error when it does not exist.
    func deleteVolume(id: String) async throws
    /// Grows a volume to at least `bytes` (rounded up) but not past `limit` (0: no limit); returns the new state.
    /// - Throws: `StoreError` `.outOfRange` when the rounded size is above `limit`.
    func expandVolume(id: String, to bytes: Int64, limit: Int64) async throws -> StoredVolume
    /// Free bytes for a new volume with these placement parameters (for a thin pool: its free
    /// space times the overprovision ratio).
    func availableCapacity(parameters: [String: String]) async throws -> Int64
    /// The snapshot with `id`, or nil.
    func snapshot(id: String) async throws -> StoredSnapshot?
    /// Every snapshot the driver owns, in a stable order.
    func snapshots() async throws -> [StoredSnapshot]
    /// Takes a snapshot, or returns the existing one of that name and source.
    /// - Throws: `StoreError` `.alreadyExists` when the name belongs to a snapshot of another volume.
    func createSnapshot(name: String, sourceVolumeID: String) async throws -> StoredSnapshot
    /// Deletes a snapshot; no error when it does not exist.
    func deleteSnapshot(id: String) async throws
    /// The block device of a volume on this node, activating it when needed.
    /// - Throws: `StoreError` `.unavailable` when this machine cannot provide a device node.
    func devicePath(volumeID: String) async throws -> String
}
