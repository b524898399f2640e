public import CSI
import H2
public import Platform
public import RPCCore
import ProtoWire
public import Storage

/// csi.v1.GroupController: group snapshots, one snapshot of each of several volumes taken at one
/// point in time (``Storage/VolumeBackend/createGroupSnapshot(name:sourceVolumeIDs:)``). Serve it
/// only over a backend whose ``Storage/VolumeBackend/supportsGroupSnapshots`` is true, and set
/// ``DriverOptions/groupSnapshots`` so that Identity advertises GROUP_CONTROLLER_SERVICE.
///
/// Each member is a snapshot like any other for the Controller service (ListSnapshots and
/// GetSnapshot show it with its `group_snapshot_id`, CreateVolume restores it), except that
/// DeleteSnapshot refuses it with INVALID_ARGUMENT, as the spec says: it goes with its group.
///
/// CreateVolumeGroupSnapshot locks its name and every source volume (all or none, in one sorted
/// order, so two calls over overlapping volumes cannot wait on each other: the second gets
/// ABORTED); DeleteVolumeGroupSnapshot locks the group and its members.
public struct GroupControllerServer: GroupControllerService {
    let options: DriverOptions
    let backend: any VolumeBackend
    let locks: VolumeLocks
    let log: RequestLog

    /// Creates the service.
    /// - Parameters:
    ///   - options: the driver's name, for messages.
    ///   - backend: where volumes and their snapshots live.
    ///   - locks: the per-volume locks, shared with the ``ControllerServer`` and ``NodeServer`` of the same process.
    ///   - logger: where each call is logged once (requests at debug level, secrets redacted).
    public init(options: DriverOptions, backend: any VolumeBackend, locks: VolumeLocks = VolumeLocks(), logger: Logger = .disabled) {
        self.init(options: options, backend: backend, locks: locks, log: RequestLog(logger: logger))
    }

    package init(options: DriverOptions, backend: any VolumeBackend, locks: VolumeLocks, log: RequestLog) {
        self.options = options
        self.backend = backend
        self.locks = locks
        self.log = log
    }

    public func groupControllerGetCapabilities(
        _ request: GroupControllerGetCapabilitiesRequest, context: ServerContext
    ) async throws -> GroupControllerGetCapabilitiesResponse {
        try await log.call("GroupControllerGetCapabilities", request) {
            var response = GroupControllerGetCapabilitiesResponse()
            if backend.supportsGroupSnapshots {
                var rpc = GroupControllerServiceCapability.RPC()
                rpc.type = .createDeleteGetVolumeGroupSnapshot
                var capability = GroupControllerServiceCapability()
                capability.type = .rpc(rpc)
                response.capabilities = [capability]
            }
            return response
        }
    }

    public func createVolumeGroupSnapshot(
        _ request: CreateVolumeGroupSnapshotRequest, context: ServerContext
    ) async throws -> CreateVolumeGroupSnapshotResponse {
        try await log.call("CreateVolumeGroupSnapshot", request) {
            try requireGroups("CreateVolumeGroupSnapshot")
            try Rules.require(request.name, "name")
            guard !request.sourceVolumeIds.isEmpty else { throw Rules.missing("source_volume_ids") }
            if let key = request.parameters.keys.sorted().first(where: { !$0.hasPrefix("csi.storage.k8s.io/") }) {
                throw RPCError(code: .invalidArgument, message: "parameters: unknown key '\(key)'; group snapshots take no parameters")
            }
            var seen = Set<String>()
            for id in request.sourceVolumeIds {
                try Rules.require(id, "source_volume_ids")
                guard seen.insert(id).inserted else {
                    throw RPCError(code: .invalidArgument, message: "source_volume_ids: volume \(id) is listed twice")
                }
                // An id this driver never made names no volume.
                guard Rules.isPlausibleID(id) else { throw RPCError(code: .notFound, message: "source volume \(id) does not exist") }
            }
            let requested = request.sourceVolumeIds.sorted()
            return try await locks.withLock(["group-name:" + request.name] + request.sourceVolumeIds) {
                for id in requested {
                    guard try await ErrorMapping.mapping("looking up volume \(id)", { try await backend.volume(id: id) }) != nil else {
                        throw RPCError(code: .notFound, message: "source volume \(id) does not exist")
                    }
                }
                let group = try await ErrorMapping.mapping(
                    "snapshotting volumes \(requested.joined(separator: ", ")) together as \(request.name)"
                ) {
                    try await backend.createGroupSnapshot(name: request.name, sourceVolumeIDs: request.sourceVolumeIds)
                }
                let sources = group.snapshots.map(\.sourceVolumeID).sorted()
                guard sources == requested else {
                    throw RPCError(
                        code: .alreadyExists,
                        message:
                            "group snapshot \(request.name) already exists of volumes \(sources.joined(separator: ", ")), not \(requested.joined(separator: ", "))"
                    )
                }
                var response = CreateVolumeGroupSnapshotResponse()
                response.groupSnapshot = Self.csiGroup(group)
                return response
            }
        }
    }

    public func deleteVolumeGroupSnapshot(
        _ request: DeleteVolumeGroupSnapshotRequest, context: ServerContext
    ) async throws -> DeleteVolumeGroupSnapshotResponse {
        try await log.call("DeleteVolumeGroupSnapshot", request) {
            try checkGroupRequest("DeleteVolumeGroupSnapshot", request.groupSnapshotID, request.snapshotIds)
            // An id this driver never made cannot exist: deleting it succeeds, as the spec asks.
            guard Rules.isPlausibleID(request.groupSnapshotID) else { return DeleteVolumeGroupSnapshotResponse() }
            let members = request.snapshotIds.filter(Rules.isPlausibleID)
            return try await locks.withLock(["group:" + request.groupSnapshotID] + members) {
                if let group = try await existingGroup(request.groupSnapshotID) {
                    try Self.checkMembers(request.snapshotIds, of: group)
                } else {
                    // No complete group: nothing the caller can have been told about. A listed id
                    // that is a snapshot of something else is still a mismatch.
                    for id in members {
                        if let snapshot = try await ErrorMapping.mapping("looking up snapshot \(id)", { try await backend.snapshot(id: id) }),
                            snapshot.groupSnapshotID != request.groupSnapshotID
                        {
                            throw RPCError(
                                code: .invalidArgument,
                                message: "snapshot_ids: snapshot \(id) is not a member of group snapshot \(request.groupSnapshotID)")
                        }
                    }
                }
                try await ErrorMapping.mapping("deleting group snapshot \(request.groupSnapshotID)") {
                    try await backend.deleteGroupSnapshot(id: request.groupSnapshotID)
                }
                return DeleteVolumeGroupSnapshotResponse()
            }
        }
    }

    public func getVolumeGroupSnapshot(
        _ request: GetVolumeGroupSnapshotRequest, context: ServerContext
    ) async throws -> GetVolumeGroupSnapshotResponse {
        try await log.call("GetVolumeGroupSnapshot", request) {
            try checkGroupRequest("GetVolumeGroupSnapshot", request.groupSnapshotID, request.snapshotIds)
            guard Rules.isPlausibleID(request.groupSnapshotID), let group = try await existingGroup(request.groupSnapshotID) else {
                throw RPCError(code: .notFound, message: "group snapshot \(request.groupSnapshotID) does not exist")
            }
            try Self.checkMembers(request.snapshotIds, of: group)
            var response = GetVolumeGroupSnapshotResponse()
            response.groupSnapshot = Self.csiGroup(group)
            return response
        }
    }

    // MARK: - Helpers

    /// UNIMPLEMENTED when the backend takes no group snapshots.
    func requireGroups(_ method: String) throws(RPCError) {
        guard backend.supportsGroupSnapshots else {
            throw RPCError(code: .unimplemented, message: "\(method): \(options.name) takes no group snapshots")
        }
    }

    /// What Get and Delete check first: the service, then both fields, which the spec requires.
    func checkGroupRequest(_ method: String, _ groupSnapshotID: String, _ snapshotIDs: [String]) throws {
        try requireGroups(method)
        try Rules.require(groupSnapshotID, "group_snapshot_id")
        guard !snapshotIDs.isEmpty else { throw Rules.missing("snapshot_ids") }
    }

    func existingGroup(_ id: String) async throws -> BackendGroupSnapshot? {
        try await ErrorMapping.mapping("looking up group snapshot \(id)") { try await backend.groupSnapshot(id: id) }
    }

    /// INVALID_ARGUMENT unless `ids` are exactly the members of `group` (the spec's "snapshot list
    /// mismatch").
    static func checkMembers(_ ids: [String], of group: BackendGroupSnapshot) throws(RPCError) {
        let members = group.snapshots.map(\.id).sorted()
        guard ids.sorted() == members else {
            throw RPCError(
                code: .invalidArgument,
                message:
                    "snapshot_ids: \(ids.sorted().joined(separator: ", ")) are not the members of group snapshot \(group.id): \(members.joined(separator: ", "))"
            )
        }
    }

    static func csiGroup(_ group: BackendGroupSnapshot) -> VolumeGroupSnapshot {
        var out = VolumeGroupSnapshot()
        out.groupSnapshotID = group.id
        out.snapshots = group.snapshots.map(ControllerServer.csiSnapshot)
        out.creationTime = Timestamp(seconds: group.creationTime)
        out.readyToUse = group.readyToUse
        return out
    }
}
