package import Storage

/// The services' view of a Storage ``VolumeBackend`` (LVM or loop files): sizes as CSI's signed
/// integers, ids checked before they reach the backend, Storage errors as ``StoreError`` kinds.
package struct BackendVolumeStore: VolumeStore {
    let backend: any VolumeBackend

    package init(backend: any VolumeBackend) { self.backend = backend }

    package func probe() async throws { try await backend.probe() }

    package func volume(id: String) async throws -> StoredVolume? {
        try await backend.volume(id: id).map(Self.stored)
    }

    package func volumes() async throws -> [StoredVolume] {
        try await backend.listVolumes().map(Self.stored)
    }

    package func createVolume(_ spec: VolumeSpec) async throws -> StoredVolume {
        let request = VolumeRequest(
            name: spec.name, requiredBytes: UInt64(max(spec.requiredBytes, 0)),
            limitBytes: spec.limitBytes > 0 ? UInt64(spec.limitBytes) : nil, fsType: spec.fsType,
            sourceSnapshotID: spec.sourceSnapshotID, parameters: spec.parameters)
        return Self.stored(try await backend.createVolume(request))
    }

    package func deleteVolume(id: String) async throws { try await backend.deleteVolume(id: id) }

    package func expandVolume(id: String, to bytes: Int64, limit: Int64) async throws -> StoredVolume {
        Self.stored(
            try await backend.expandVolume(id: id, toBytes: UInt64(max(bytes, 0)), limitBytes: limit > 0 ? UInt64(limit) : nil))
    }

    package func availableCapacity(parameters: [String: String]) async throws -> Int64 {
        Self.clamp(try await backend.capacity(parameters: parameters))
    }

    package func snapshot(id: String) async throws -> StoredSnapshot? {
        try await backend.snapshot(id: id).map(Self.stored)
    }

    package func snapshots() async throws -> [StoredSnapshot] {
        try await backend.listSnapshots().map(Self.stored)
    }

    package func createSnapshot(name: String, sourceVolumeID: String) async throws -> StoredSnapshot {
        Self.stored(try await backend.createSnapshot(name: name, sourceVolumeID: sourceVolumeID))
    }

    package func deleteSnapshot(id: String) async throws { try await backend.deleteSnapshot(id: id) }

    package func devicePath(volumeID: String) async throws -> String {
        switch try await backend.device(forVolume: volumeID) {
        case .node(let path):
            return path
        case .unavailable(let reason):
            throw StoreError(.unavailable, "volume \(volumeID) has no device node on this node: \(reason)")
        }
    }

    static func clamp(_ value: UInt64) -> Int64 { value > UInt64(Int64.max) ? .max : Int64(value) }

    static func stored(_ volume: Volume) -> StoredVolume {
        StoredVolume(
            id: volume.id, name: volume.name, capacityBytes: clamp(volume.capacityBytes), location: volume.location,
            fsType: volume.fsType, sourceSnapshotID: volume.sourceSnapshotID,
            abnormal: volume.condition.abnormal ? volume.condition.message : nil)
    }

    static func stored(_ snapshot: Snapshot) -> StoredSnapshot {
        StoredSnapshot(
            id: snapshot.id, name: snapshot.name, sourceVolumeID: snapshot.sourceVolumeID,
            sizeBytes: clamp(snapshot.sizeBytes), creationSeconds: snapshot.creationTime, readyToUse: snapshot.readyToUse)
    }
}
