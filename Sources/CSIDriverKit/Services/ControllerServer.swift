public import CSI
import H2
public import Platform
public import RPCCore
import ProtoWire
public import Storage

/// csi.v1.Controller for local volumes: the controller runs on the node that holds the storage,
/// so every volume's accessible topology is this node's (``DriverOptions/topology``).
///
/// Mutating calls lock the volume (or snapshot) they touch; a second call on the same one while the
/// first runs gets ABORTED. List, get, capacity and capability calls take no lock.
///
/// Sizes cross the CSI boundary here: the request's signed `capacity_range` is checked and becomes
/// the backend's unsigned sizes; sizes in responses are clamped to `Int64`.
public struct ControllerServer: ControllerService {
    let options: DriverOptions
    let backend: any VolumeBackend
    let locks: VolumeLocks
    let log: RequestLog
    /// The node service of this process, which applies IO limits to the pods on this node; nil
    /// when this process serves no node (then MODIFY_VOLUME is not advertised).
    let ioLimitsNode: (any IOLimitsNode)?

    /// Volumes made with neither a required size nor a limit get this many bytes.
    package static let defaultVolumeBytes: UInt64 = VolumeRequest.defaultVolumeBytes

    /// Parameter keys CreateVolume and GetCapacity understand.
    package enum Parameter {
        package static let volumeGroup = "volumeGroup"
        package static let vgPattern = "vgPattern"
        package static let thinPool = "thinPool"
        package static let fsType = "fsType"
        /// `luks2`: the volume is encrypted on the node with the node-stage secret's `passphrase`.
        package static let encryption = "encryption"
        /// The LVM backend's placement keys, passed on to it (`encryption` is read by the kit).
        package static let placement: Set<String> = [volumeGroup, vgPattern, thinPool]
    }

    /// Creates the service.
    /// - Parameters:
    ///   - options: the node's topology and the parameter keys the backend takes.
    ///   - backend: where volumes and snapshots live.
    ///   - locks: the per-volume locks, shared with the ``NodeServer`` of the same process.
    ///   - logger: where each call is logged once (requests at debug level, secrets redacted).
    ///   - node: the ``NodeServer`` of the same process, when it has an `IOThrottle`: then a backend
    ///     that records IO limits (``Storage/VolumeBackend/recordsIOLimits``) gets MODIFY_VOLUME, and
    ///     ControllerModifyVolume re-applies the new limits to the pods that publish the volume here.
    public init(
        options: DriverOptions, backend: any VolumeBackend, locks: VolumeLocks = VolumeLocks(), logger: Logger = .disabled,
        node: NodeServer? = nil
    ) {
        self.init(options: options, backend: backend, locks: locks, log: RequestLog(logger: logger), ioLimitsNode: node)
    }

    package init(
        options: DriverOptions, backend: any VolumeBackend, locks: VolumeLocks, log: RequestLog, ioLimitsNode: (any IOLimitsNode)? = nil
    ) {
        self.options = options
        self.backend = backend
        self.locks = locks
        self.log = log
        self.ioLimitsNode = ioLimitsNode
    }

    package init(configuration: DriverConfiguration, backend: any VolumeBackend, locks: VolumeLocks, log: RequestLog) {
        self.init(options: configuration.driverOptions, backend: backend, locks: locks, log: log)
    }

    // MARK: - Volumes

    public func createVolume(_ request: CreateVolumeRequest, context: ServerContext) async throws -> CreateVolumeResponse {
        try await log.call("CreateVolume", request) {
            try Rules.require(request.name, "name")
            try CapabilityRules.requireSupported(request.volumeCapabilities)
            let (required, limit) = try Self.capacity(request.capacityRange)
            let placement = try placement(request.parameters)
            if let fsType = request.parameters[Parameter.fsType], !CapabilityRules.filesystems.contains(fsType) {
                throw RPCError(
                    code: .invalidArgument,
                    message:
                        "parameters.fsType: '\(fsType)' is not supported; expected one of \(CapabilityRules.filesystems.sorted().joined(separator: ", "))"
                )
            }
            try checkTopology(request.accessibilityRequirements)
            let encryption = try Self.encryption(request.parameters)
            let ioLimits = try await newIOLimits(request.mutableParameters, name: request.name)

            var sourceSnapshot: BackendSnapshot?
            // A source snapshot that does not exist, still passed to the backend: a restore from it
            // that was cut short is removed there, and the answer is NOT_FOUND either way.
            var missingSnapshotID: String?
            var sourceVolume: BackendVolume?
            // The same for a source volume: a clone cut short is removed when its source is gone.
            var missingVolumeID: String?
            switch request.volumeContentSource?.type {
            case nil:
                break
            case .snapshot(let source)?:
                guard options.snapshots else {
                    throw RPCError(code: .invalidArgument, message: "volume_content_source: \(options.name) takes no snapshots")
                }
                try Rules.require(source.snapshotID, "volume_content_source.snapshot.snapshot_id")
                guard Rules.isPlausibleID(source.snapshotID) else {
                    throw RPCError(code: .notFound, message: "source snapshot \(source.snapshotID) does not exist")
                }
                sourceSnapshot = try await ErrorMapping.mapping(
                    "looking up the source snapshot", { try await backend.snapshot(id: source.snapshotID) })
                if sourceSnapshot == nil { missingSnapshotID = source.snapshotID }
            case .volume(let source)?:
                guard options.clones else {
                    throw RPCError(code: .invalidArgument, message: "volume_content_source: \(options.name) does not clone volumes; use a snapshot")
                }
                try Rules.require(source.volumeID, "volume_content_source.volume.volume_id")
                guard Rules.isPlausibleID(source.volumeID) else {
                    throw RPCError(code: .notFound, message: "source volume \(source.volumeID) does not exist")
                }
                sourceVolume = try await ErrorMapping.mapping(
                    "looking up the source volume", { try await backend.volume(id: source.volumeID) })
                if sourceVolume == nil { missingVolumeID = source.volumeID }
            }
            if let snapshot = sourceSnapshot {
                if limit > 0 && snapshot.sizeBytes > limit {
                    throw RPCError(
                        code: .outOfRange,
                        message: "snapshot \(snapshot.id) holds \(snapshot.sizeBytes) bytes, more than limit_bytes \(limit)")
                }
            }
            if let volume = sourceVolume, limit > 0 && volume.capacityBytes > limit {
                throw RPCError(
                    code: .outOfRange,
                    message: "source volume \(volume.id) holds \(volume.capacityBytes) bytes, more than limit_bytes \(limit)")
            }
            // Repeats of one name are serialized; the backend derives the id from the name and
            // recognises a compatible repeat from what it recorded with the volume. A source volume
            // is locked too, as CreateSnapshot locks it, so it is not deleted or staged mid-copy.
            let name = "name:" + request.name
            return try await locks.withLock(name, sourceVolume?.id ?? name) {
                // The caller's range goes to the backend as given: it rounds a required size up
                // and a lone limit down to its allocation unit, uses the default size when
                // neither is set, and never makes a volume smaller than the source snapshot.
                let volumeRequest = VolumeRequest(
                    name: request.name, requiredBytes: required, limitBytes: limit > 0 ? limit : nil,
                    defaultBytes: Self.defaultVolumeBytes,
                    fsType: request.parameters[Parameter.fsType] ?? Self.filesystem(of: request.volumeCapabilities),
                    sourceSnapshotID: sourceSnapshot?.id ?? missingSnapshotID, sourceVolumeID: sourceVolume?.id ?? missingVolumeID,
                    parameters: placement, encryption: encryption, ioLimits: ioLimits)
                let volume = try await ErrorMapping.mapping("creating volume \(request.name)") {
                    try await backend.createVolume(volumeRequest)
                }
                if let missingSnapshotID {
                    throw RPCError(code: .notFound, message: "source snapshot \(missingSnapshotID) does not exist")
                }
                if let missingVolumeID {
                    throw RPCError(code: .notFound, message: "source volume \(missingVolumeID) does not exist")
                }
                try Self.checkCompatible(
                    volume, name: request.name, required: required, limit: limit, snapshot: sourceSnapshot?.id, volume: sourceVolume?.id)
                var response = CreateVolumeResponse()
                response.volume = csiVolume(volume)
                return response
            }
        }
    }

    public func deleteVolume(_ request: DeleteVolumeRequest, context: ServerContext) async throws -> DeleteVolumeResponse {
        try await log.call("DeleteVolume", request) {
            try Rules.require(request.volumeID, "volume_id")
            // An id this driver never made cannot exist: deleting it succeeds, as the spec asks.
            guard Rules.isPlausibleID(request.volumeID) else { return DeleteVolumeResponse() }
            return try await locks.withLock(request.volumeID) {
                try await ErrorMapping.mapping("deleting volume \(request.volumeID)") {
                    try await backend.deleteVolume(id: request.volumeID)
                }
                return DeleteVolumeResponse()
            }
        }
    }

    public func controllerPublishVolume(
        _ request: ControllerPublishVolumeRequest, context: ServerContext
    ) async throws -> ControllerPublishVolumeResponse {
        throw RPCError(code: .unimplemented, message: "ControllerPublishVolume: local volumes need no attach step")
    }

    public func controllerUnpublishVolume(
        _ request: ControllerUnpublishVolumeRequest, context: ServerContext
    ) async throws -> ControllerUnpublishVolumeResponse {
        throw RPCError(code: .unimplemented, message: "ControllerUnpublishVolume: local volumes need no detach step")
    }

    public func validateVolumeCapabilities(
        _ request: ValidateVolumeCapabilitiesRequest, context: ServerContext
    ) async throws -> ValidateVolumeCapabilitiesResponse {
        try await log.call("ValidateVolumeCapabilities", request) {
            try Rules.require(request.volumeID, "volume_id")
            guard !request.volumeCapabilities.isEmpty else { throw Rules.missing("volume_capabilities") }
            _ = try await existingVolume(request.volumeID)
            var response = ValidateVolumeCapabilitiesResponse()
            var reasons = request.volumeCapabilities.compactMap(CapabilityRules.unsupportedReason)
            if !request.mutableParameters.isEmpty, let reason = await mutableParametersProblem(request.mutableParameters, volume: request.volumeID) {
                reasons.append(reason)
            }
            if let reason = reasons.first {
                response.message = reason
            } else {
                var confirmed = ValidateVolumeCapabilitiesResponse.Confirmed()
                confirmed.volumeCapabilities = request.volumeCapabilities
                confirmed.volumeContext = request.volumeContext
                confirmed.parameters = request.parameters
                confirmed.mutableParameters = request.mutableParameters
                response.confirmed = confirmed
            }
            return response
        }
    }

    public func listVolumes(_ request: ListVolumesRequest, context: ServerContext) async throws -> ListVolumesResponse {
        try await log.call("ListVolumes", request) {
            _ = try Rules.pageStart(request.startingToken)
            let all = try await ErrorMapping.mapping("listing volumes") { try await backend.listVolumes() }
            let page = try Rules.page(all, id: \.id, maxEntries: request.maxEntries, token: request.startingToken)
            var response = ListVolumesResponse()
            response.entries = page.items.map { volume in
                var entry = ListVolumesResponse.Entry()
                entry.volume = csiVolume(volume)
                var status = ListVolumesResponse.VolumeStatus()
                status.volumeCondition = Self.condition(volume)
                entry.status = status
                return entry
            }
            response.nextToken = page.next
            return response
        }
    }

    public func getCapacity(_ request: GetCapacityRequest, context: ServerContext) async throws -> GetCapacityResponse {
        try await log.call("GetCapacity", request) {
            var response = GetCapacityResponse()
            if let topology = request.accessibleTopology, !matchesThisNode(topology) { return response }
            if request.volumeCapabilities.contains(where: { CapabilityRules.unsupportedReason($0) != nil }) { return response }
            let placement = try placement(request.parameters)
            let free = try await ErrorMapping.mapping("reading free space") {
                try await backend.capacity(parameters: placement)
            }
            response.availableCapacity = Int64(clamping: free)
            response.maximumVolumeSize = Int64(clamping: free)
            return response
        }
    }

    public func controllerGetCapabilities(
        _ request: ControllerGetCapabilitiesRequest, context: ServerContext
    ) async throws -> ControllerGetCapabilitiesResponse {
        try await log.call("ControllerGetCapabilities", request) {
            let types: [ControllerServiceCapability.RPC.TypeEnum] =
                [
                    .createDeleteVolume, .listVolumes, .getCapacity, .createDeleteSnapshot, .listSnapshots,
                    .expandVolume, .volumeCondition, .getVolume, .singleNodeMultiWriter,
                ].filter { options.snapshots || ($0 != .createDeleteSnapshot && $0 != .listSnapshots) }
                + (options.clones ? [.cloneVolume] : [])
                + (await ioLimitsUnavailableReason() == nil ? [.modifyVolume] : [])
            var response = ControllerGetCapabilitiesResponse()
            response.capabilities = types.map { type in
                var rpc = ControllerServiceCapability.RPC()
                rpc.type = type
                var capability = ControllerServiceCapability()
                capability.type = .rpc(rpc)
                return capability
            }
            return response
        }
    }

    public func controllerExpandVolume(
        _ request: ControllerExpandVolumeRequest, context: ServerContext
    ) async throws -> ControllerExpandVolumeResponse {
        try await log.call("ControllerExpandVolume", request) {
            try Rules.require(request.volumeID, "volume_id")
            guard let range = request.capacityRange else { throw Rules.missing("capacity_range") }
            let (required, limit) = try Self.capacity(range)
            if let capability = request.volumeCapability, let reason = CapabilityRules.unsupportedReason(capability) {
                throw RPCError(code: .invalidArgument, message: "volume_capability: \(reason)")
            }
            return try await locks.withLock(request.volumeID) {
                let volume = try await existingVolume(request.volumeID)
                var result = volume
                if volume.capacityBytes < required {
                    result = try await ErrorMapping.mapping("expanding volume \(request.volumeID) to \(required) bytes") {
                        try await backend.expandVolume(id: request.volumeID, toBytes: required, limitBytes: limit > 0 ? limit : nil)
                    }
                }
                if limit > 0 && result.capacityBytes > limit {
                    throw RPCError(
                        code: .outOfRange,
                        message: "volume \(request.volumeID) is \(result.capacityBytes) bytes, more than limit_bytes \(limit)")
                }
                // Limits per GiB follow the new size in the pods that use the volume on this node.
                let grown = result
                if grown.capacityBytes != volume.capacityBytes, grown.ioLimits.dependsOnSize, let node = ioLimitsNode {
                    try await ErrorMapping.mapping("applying the IO limits of volume \(request.volumeID) at its new size") {
                        try await node.reapplyIOLimits(of: grown)
                    }
                }
                var response = ControllerExpandVolumeResponse()
                response.capacityBytes = Int64(clamping: result.capacityBytes)
                // An encrypted volume's mapping is grown on the node, raw block or not.
                response.nodeExpansionRequired = !CapabilityRules.isBlock(request.volumeCapability) || result.encryption != nil
                return response
            }
        }
    }

    public func controllerGetVolume(_ request: ControllerGetVolumeRequest, context: ServerContext) async throws
        -> ControllerGetVolumeResponse
    {
        try await log.call("ControllerGetVolume", request) {
            try Rules.require(request.volumeID, "volume_id")
            let volume = try await existingVolume(request.volumeID)
            var response = ControllerGetVolumeResponse()
            response.volume = csiVolume(volume)
            var status = ControllerGetVolumeResponse.VolumeStatus()
            status.volumeCondition = Self.condition(volume)
            response.status = status
            return response
        }
    }

    /// Changes a volume's IO limits (its mutable parameters, ``Storage/IOLimits``): the keys given
    /// take their new values (`max`: no limit); keys not given keep theirs, as the spec asks. The
    /// parameters are checked before anything changes (INVALID_ARGUMENT naming the key), the
    /// backend records them (LVM: the LV's tags, the truth a restarted driver and a repeated
    /// NodePublishVolume read), then every pod on this node that has the volume published gets them.
    /// A repeat changes nothing and applies them again.
    public func controllerModifyVolume(
        _ request: ControllerModifyVolumeRequest, context: ServerContext
    ) async throws -> ControllerModifyVolumeResponse {
        try await log.call("ControllerModifyVolume", request) {
            try Rules.require(request.volumeID, "volume_id")
            guard backend.recordsIOLimits, let node = ioLimitsNode else {
                throw RPCError(
                    code: .unimplemented,
                    message:
                        "ControllerModifyVolume: \(options.name) has no mutable parameters here (\(backend.recordsIOLimits ? "IO limits need the node service in the same process, --mode all" : "the backend records no IO limits"))"
                )
            }
            guard Rules.isPlausibleID(request.volumeID) else {
                throw RPCError(code: .notFound, message: "volume \(request.volumeID) does not exist")
            }
            guard !request.mutableParameters.isEmpty else { throw Rules.missing("mutable_parameters") }
            let change = try Self.ioLimitsChange(request.mutableParameters, volume: request.volumeID)
            if let reason = await node.ioLimitsUnavailableReason() {
                throw RPCError(code: .failedPrecondition, message: "volume \(request.volumeID): IO limits cannot be applied on this node: \(reason)")
            }
            return try await locks.withLock(request.volumeID) {
                let volume = try await existingVolume(request.volumeID)
                let limits = volume.ioLimits.applying(change)
                let changed =
                    limits == volume.ioLimits
                    ? volume
                    : try await ErrorMapping.mapping("recording the IO limits of volume \(request.volumeID)") {
                        try await backend.setIOLimits(limits, ofVolume: request.volumeID)
                    }
                try await ErrorMapping.mapping("applying the IO limits of volume \(request.volumeID)") {
                    try await node.reapplyIOLimits(of: changed)
                }
                return ControllerModifyVolumeResponse()
            }
        }
    }

    // MARK: - Snapshots

    public func createSnapshot(_ request: CreateSnapshotRequest, context: ServerContext) async throws -> CreateSnapshotResponse {
        try await log.call("CreateSnapshot", request) {
            try requireSnapshots("CreateSnapshot")
            try Rules.require(request.name, "name")
            try Rules.require(request.sourceVolumeID, "source_volume_id")
            if let key = request.parameters.keys.sorted().first(where: { !$0.hasPrefix("csi.storage.k8s.io/") }) {
                throw RPCError(code: .invalidArgument, message: "parameters: unknown key '\(key)'; snapshots take no parameters")
            }
            return try await locks.withLock("snapshot:" + request.name, request.sourceVolumeID) {
                _ = try await existingVolume(request.sourceVolumeID)
                let snapshot = try await ErrorMapping.mapping("snapshotting volume \(request.sourceVolumeID) as \(request.name)") {
                    try await backend.createSnapshot(name: request.name, sourceVolumeID: request.sourceVolumeID)
                }
                guard snapshot.sourceVolumeID == request.sourceVolumeID else {
                    throw RPCError(
                        code: .alreadyExists,
                        message:
                            "snapshot \(request.name) already exists for volume \(snapshot.sourceVolumeID), not \(request.sourceVolumeID)")
                }
                return Self.snapshotResponse(snapshot)
            }
        }
    }

    public func deleteSnapshot(_ request: DeleteSnapshotRequest, context: ServerContext) async throws -> DeleteSnapshotResponse {
        try await log.call("DeleteSnapshot", request) {
            try requireSnapshots("DeleteSnapshot")
            try Rules.require(request.snapshotID, "snapshot_id")
            guard Rules.isPlausibleID(request.snapshotID) else { return DeleteSnapshotResponse() }
            return try await locks.withLock(request.snapshotID) {
                let existing = try await ErrorMapping.mapping("looking up snapshot \(request.snapshotID)") {
                    try await backend.snapshot(id: request.snapshotID)
                }
                // The spec's "snapshot is part of a group": it goes with its group only.
                if let group = existing?.groupSnapshotID {
                    throw RPCError(
                        code: .invalidArgument,
                        message:
                            "snapshot \(request.snapshotID) is part of group snapshot \(group) and cannot be deleted on its own; delete the group snapshot (DeleteVolumeGroupSnapshot)"
                    )
                }
                try await ErrorMapping.mapping("deleting snapshot \(request.snapshotID)") {
                    try await backend.deleteSnapshot(id: request.snapshotID)
                }
                return DeleteSnapshotResponse()
            }
        }
    }

    public func listSnapshots(_ request: ListSnapshotsRequest, context: ServerContext) async throws -> ListSnapshotsResponse {
        try await log.call("ListSnapshots", request) {
            try requireSnapshots("ListSnapshots")
            _ = try Rules.pageStart(request.startingToken)
            var all = try await ErrorMapping.mapping("listing snapshots") { try await backend.listSnapshots() }
            if !request.snapshotID.isEmpty { all = all.filter { $0.id == request.snapshotID } }
            if !request.sourceVolumeID.isEmpty { all = all.filter { $0.sourceVolumeID == request.sourceVolumeID } }
            let page = try Rules.page(all, id: \.id, maxEntries: request.maxEntries, token: request.startingToken)
            var response = ListSnapshotsResponse()
            response.entries = page.items.map { snapshot in
                var entry = ListSnapshotsResponse.Entry()
                entry.snapshot = Self.csiSnapshot(snapshot)
                return entry
            }
            response.nextToken = page.next
            return response
        }
    }

    public func getSnapshot(_ request: GetSnapshotRequest, context: ServerContext) async throws -> GetSnapshotResponse {
        try await log.call("GetSnapshot", request) {
            try requireSnapshots("GetSnapshot")
            try Rules.require(request.snapshotID, "snapshot_id")
            guard Rules.isPlausibleID(request.snapshotID),
                let snapshot = try await ErrorMapping.mapping(
                    "looking up snapshot \(request.snapshotID)",
                    {
                        try await backend.snapshot(id: request.snapshotID)
                    })
            else { throw RPCError(code: .notFound, message: "snapshot \(request.snapshotID) does not exist") }
            var response = GetSnapshotResponse()
            response.snapshot = Self.csiSnapshot(snapshot)
            return response
        }
    }

    // MARK: - Helpers

    /// Why MODIFY_VOLUME is not offered, or nil when it is: the backend records IO limits, this
    /// process serves the node too, and the node can apply them (cgroup v2 with `io`).
    func ioLimitsUnavailableReason() async -> String? {
        guard backend.recordsIOLimits else { return "the backend records no IO limits" }
        guard let node = ioLimitsNode else { return "IO limits need the node service in the same process (--mode all)" }
        return await node.ioLimitsUnavailableReason()
    }

    /// Why these mutable parameters would be refused, or nil (ValidateVolumeCapabilities).
    func mutableParametersProblem(_ parameters: [String: String], volume: String) async -> String? {
        if let reason = await ioLimitsUnavailableReason() { return "mutable_parameters: none are taken here (\(reason))" }
        do throws(StorageError) { _ = try IOLimits.Change(parameters: parameters, volume: volume) } catch {
            return "mutable_parameters: \(error.message)"
        }
        return nil
    }

    /// The change ControllerModifyVolume's mutable parameters ask for; INVALID_ARGUMENT naming the
    /// key and the volume when one is not valid.
    static func ioLimitsChange(_ parameters: [String: String], volume: String) throws(RPCError) -> IOLimits.Change {
        do throws(StorageError) { return try IOLimits.Change(parameters: parameters, volume: volume) } catch {
            throw RPCError(code: .invalidArgument, message: "mutable_parameters: \(error.message)")
        }
    }

    /// The IO limits of a new volume from CreateVolume's mutable parameters; INVALID_ARGUMENT when
    /// there are any and MODIFY_VOLUME is not offered (the spec: they SHALL NOT be given then) or
    /// when one is not valid.
    func newIOLimits(_ parameters: [String: String], name: String) async throws(RPCError) -> IOLimits {
        guard !parameters.isEmpty else { return IOLimits() }
        if let reason = await ioLimitsUnavailableReason() {
            throw RPCError(
                code: .invalidArgument,
                message: "mutable_parameters: \(options.name) takes none here (MODIFY_VOLUME is not offered: \(reason))")
        }
        do throws(StorageError) { return try IOLimits(parameters: parameters, volume: name) } catch {
            throw RPCError(code: .invalidArgument, message: "mutable_parameters: \(error.message)")
        }
    }

    /// UNIMPLEMENTED when the options say the backend takes no snapshots.
    func requireSnapshots(_ method: String) throws(RPCError) {
        guard options.snapshots else {
            throw RPCError(code: .unimplemented, message: "\(method): \(options.name) takes no snapshots")
        }
    }

    /// The volume with `id`, or NOT_FOUND.
    func existingVolume(_ id: String) async throws -> BackendVolume {
        guard Rules.isPlausibleID(id),
            let volume = try await ErrorMapping.mapping("looking up volume \(id)", { try await backend.volume(id: id) })
        else { throw RPCError(code: .notFound, message: "volume \(id) does not exist") }
        return volume
    }

    /// Required and limit bytes from a capacity range, checked and converted to the backend's
    /// unsigned sizes (0: unspecified).
    static func capacity(_ range: CapacityRange?) throws(RPCError) -> (required: UInt64, limit: UInt64) {
        let required = range?.requiredBytes ?? 0
        let limit = range?.limitBytes ?? 0
        guard required >= 0, limit >= 0 else {
            throw RPCError(
                code: .invalidArgument,
                message: "capacity_range: sizes must not be negative (required_bytes \(required), limit_bytes \(limit))")
        }
        if limit > 0 && required > limit {
            throw RPCError(code: .invalidArgument, message: "capacity_range: required_bytes \(required) is more than limit_bytes \(limit)")
        }
        return (UInt64(required), UInt64(limit))
    }

    /// ALREADY_EXISTS unless `existing` satisfies a repeated request.
    static func checkCompatible(
        _ existing: BackendVolume, name: String, required: UInt64, limit: UInt64, snapshot: String?, volume: String? = nil
    ) throws(RPCError) {
        if let recorded = existing.name, recorded != name {
            throw RPCError(code: .alreadyExists, message: "volume id \(existing.id) already belongs to the name \(recorded)")
        }
        if existing.capacityBytes < required || (limit > 0 && existing.capacityBytes > limit) {
            throw RPCError(
                code: .alreadyExists,
                message:
                    "volume \(name) already exists with \(existing.capacityBytes) bytes, outside the requested range \(required)…\(limit == 0 ? "∞" : String(limit))"
            )
        }
        if existing.sourceSnapshotID != snapshot {
            throw RPCError(
                code: .alreadyExists,
                message: "volume \(name) already exists from source \(existing.sourceSnapshotID ?? "none"), not \(snapshot ?? "none")")
        }
        if existing.sourceVolumeID != volume {
            throw RPCError(
                code: .alreadyExists,
                message:
                    "volume \(name) already exists from source volume \(existing.sourceVolumeID ?? "none"), not \(volume ?? "none")")
        }
    }

    /// The parameters for the backend, checked: the keys of ``DriverOptions/volumeParameters``
    /// (for LVM `volumeGroup` or `vgPattern`, `thinPool`, whose values are checked here); `fsType`
    /// is the driver's own and is not passed on. Unknown keys are INVALID_ARGUMENT.
    func placement(_ parameters: [String: String]) throws(RPCError) -> [String: String] {
        var out: [String: String] = [:]
        let known = options.volumeParameters.union([Parameter.fsType])
        for key in parameters.keys.sorted() where !key.hasPrefix("csi.storage.k8s.io/") {
            guard known.contains(key) else {
                throw RPCError(
                    code: .invalidArgument,
                    message: "parameters: unknown key '\(key)'; expected \(known.sorted().joined(separator: ", "))")
            }
            if key != Parameter.fsType && key != Parameter.encryption && !Parameter.placement.contains(key) { out[key] = parameters[key] }
        }
        if parameters[Parameter.volumeGroup] != nil && parameters[Parameter.vgPattern] != nil {
            throw RPCError(code: .invalidArgument, message: "parameters: give volumeGroup or vgPattern, not both")
        }
        if let name = parameters[Parameter.volumeGroup] {
            do { try DriverConfiguration.validateLVMName(name, flag: "parameters.volumeGroup") } catch {
                throw RPCError(code: .invalidArgument, message: error.description)
            }
            out[Parameter.volumeGroup] = name
        }
        if let pattern = parameters[Parameter.vgPattern] {
            guard (try? Regex(pattern)) != nil else {
                throw RPCError(code: .invalidArgument, message: "parameters.vgPattern: '\(pattern)' is not a valid regular expression")
            }
            out[Parameter.vgPattern] = pattern
        }
        if let pool = parameters[Parameter.thinPool] {
            do { try DriverConfiguration.validateLVMName(pool, flag: "parameters.thinPool") } catch {
                throw RPCError(code: .invalidArgument, message: error.description)
            }
            out[Parameter.thinPool] = pool
        }
        return out
    }

    /// The `encryption` parameter: nil when absent, INVALID_ARGUMENT for anything but `luks2`.
    static func encryption(_ parameters: [String: String]) throws(RPCError) -> VolumeEncryption? {
        guard let value = parameters[Parameter.encryption] else { return nil }
        guard let encryption = VolumeEncryption(rawValue: value) else {
            throw RPCError(
                code: .invalidArgument,
                message:
                    "parameters.encryption: '\(value)' is not supported; expected \(VolumeEncryption.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return encryption
    }

    /// The filesystem named by the first mount capability, if any.
    static func filesystem(of capabilities: [VolumeCapability]) -> String? {
        for capability in capabilities {
            if case .mount(let mount)? = capability.accessType, !mount.fsType.isEmpty { return mount.fsType }
        }
        return nil
    }

    /// RESOURCE_EXHAUSTED when the requisite topology excludes this node.
    func checkTopology(_ requirement: TopologyRequirement?) throws(RPCError) {
        guard let requirement, !requirement.requisite.isEmpty else { return }
        guard requirement.requisite.contains(where: matchesThisNode) else {
            throw RPCError(
                code: .resourceExhausted,
                message:
                    "accessibility_requirements: no requisite topology includes this node (\(options.topologyDescription))"
            )
        }
    }

    /// Whether every segment of `topology` this driver knows about names this node.
    func matchesThisNode(_ topology: Topology) -> Bool {
        options.matches(topology.segments)
    }

    func csiVolume(_ volume: BackendVolume) -> CSI.Volume {
        var out = CSI.Volume()
        out.volumeID = volume.id
        out.capacityBytes = Int64(clamping: volume.capacityBytes)
        var context = ["location": volume.location]
        if let fsType = volume.fsType { context["fsType"] = fsType }
        if let encryption = volume.encryption { context[Parameter.encryption] = encryption.rawValue }
        out.volumeContext = context
        if !options.topology.isEmpty {
            var topology = Topology()
            topology.segments = options.topology
            out.accessibleTopology = [topology]
        }
        if let snapshot = volume.sourceSnapshotID {
            var source = VolumeContentSource()
            var snapshotSource = VolumeContentSource.SnapshotSource()
            snapshotSource.snapshotID = snapshot
            source.type = .snapshot(snapshotSource)
            out.contentSource = source
        } else if let origin = volume.sourceVolumeID {
            var source = VolumeContentSource()
            var volumeSource = VolumeContentSource.VolumeSource()
            volumeSource.volumeID = origin
            source.type = .volume(volumeSource)
            out.contentSource = source
        }
        return out
    }

    static func condition(_ volume: BackendVolume) -> CSI.VolumeCondition {
        var condition = CSI.VolumeCondition()
        condition.abnormal = volume.condition.abnormal
        condition.message = volume.condition.abnormal ? volume.condition.message : "volume \(volume.id) is healthy"
        return condition
    }

    static func csiSnapshot(_ snapshot: BackendSnapshot) -> CSI.Snapshot {
        var out = CSI.Snapshot()
        out.snapshotID = snapshot.id
        out.sourceVolumeID = snapshot.sourceVolumeID
        out.sizeBytes = Int64(clamping: snapshot.sizeBytes)
        out.readyToUse = snapshot.readyToUse
        out.creationTime = Timestamp(seconds: snapshot.creationTime)
        out.groupSnapshotID = snapshot.groupSnapshotID ?? ""
        return out
    }

    static func snapshotResponse(_ snapshot: BackendSnapshot) -> CreateSnapshotResponse {
        var response = CreateSnapshotResponse()
        response.snapshot = csiSnapshot(snapshot)
        return response
    }
}
