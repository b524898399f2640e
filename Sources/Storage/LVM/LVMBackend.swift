import Glibc
import Platform

/// A ``VolumeBackend`` that keeps each volume in an LVM logical volume, driven in-process through
/// liblvm2cmd.
///
/// Ownership and the request are recorded in LV tags, so everything can be rebuilt from LVM after a
/// restart: `csi.swift-csi.io/owner=<driver>`, `csi.swift-csi.io/kind=volume|snapshot`,
/// `csi.swift-csi.io/name=<request name>`, `csi.swift-csi.io/fs=<type>`,
/// `csi.swift-csi.io/source=<snapshot or volume id>` (with `csi.swift-csi.io/source-kind=volume`
/// on a clone), `csi.swift-csi.io/created=<unix seconds>`, and a volume's IO limits as
/// `csi.swift-csi.io/<key>=<value>` with the keys of ``IOLimits`` (`csi.swift-csi.io/readIOPS=100`).
/// Text outside LVM's tag charset is written as `#XX` (hex of each UTF-8 byte).
///
/// A volume from a thin snapshot, and a clone of a thin volume, is a thin snapshot of its source
/// (instant, blocks shared until written). A volume from a thick snapshot, and a clone of a thick
/// volume, is copied block by block after `lvcreate`; it carries `csi.swift-csi.io/restoring`
/// until the copy is on disk. Such a volume is listed with an abnormal condition, has no device
/// for the node (`.busy`), cannot be snapshotted or cloned; a repeated CreateVolume copies it
/// again (or removes it and answers `.notFound` when its source is gone). A thick source that is
/// written to during its copy is not frozen: the clone is consistent only when the source is idle
/// (unmounted, or its application quiesced) — a thin source has no such limit.
///
/// Creation parameters (``VolumeRequest/parameters`` and ``capacity(parameters:)``):
/// `volumeGroup` (a VG name), `vgPattern` (a regular expression matched against whole VG names;
/// the matching VG with the most free space is used) and `thinPool` (create thin volumes in this
/// pool). Keys starting with `csi.storage.k8s.io/` are ignored; others are rejected.
public final class LVMBackend: VolumeBackend {
    /// How the backend chooses volume groups and accounts thin pools.
    public struct Configuration: Sendable {
        /// The driver name recorded as the owner of every LV it creates.
        public var driverName: String
        /// The volume group to use when a request names none.
        public var volumeGroup: String?
        /// A regular expression selecting volume groups when a request names none.
        public var volumeGroupPattern: String?
        /// The thin pool to use when a request names none (nil: thick volumes).
        public var thinPool: String?
        /// A thin pool may promise its size × this ratio (≥ 1) in virtual sizes of thin volumes and
        /// snapshots, all told; see ``ThinPoolBudget``.
        public var overprovisionRatio: Double
        /// Longest time a cached answer may be served without asking LVM again.
        public var cacheMaximumAge: Duration
        /// Block devices LVM may scan (the volume groups' physical volumes), or nil for all. LVM
        /// is set up once per process: every backend in a process must give the same list.
        public var scanDevices: [String]?
        /// Told whether device-mapper is available when that is first found out, and again when
        /// it appears later (`available`, and how it was found or why it is missing).
        public var onDeviceMapperChange: (@Sendable (_ available: Bool, _ detail: String) -> Void)?
        /// A directory that outlives the process (not a tmpfs of a container): while a group
        /// snapshot holds its volumes still, a record of what is held is kept there, so that a
        /// process killed meanwhile is followed by one that releases them
        /// (``releaseLeftoverHolds()``). Nil: no record.
        public var stateDirectory: String?

        /// Creates a configuration; give a `volumeGroup` or a `volumeGroupPattern`.
        public init(
            driverName: String, volumeGroup: String? = nil, volumeGroupPattern: String? = nil,
            thinPool: String? = nil, overprovisionRatio: Double = 1.0, cacheMaximumAge: Duration = .milliseconds(900),
            scanDevices: [String]? = nil, onDeviceMapperChange: (@Sendable (_ available: Bool, _ detail: String) -> Void)? = nil,
            stateDirectory: String? = nil
        ) {
            self.stateDirectory = stateDirectory
            self.scanDevices = scanDevices
            self.onDeviceMapperChange = onDeviceMapperChange
            self.driverName = driverName
            self.volumeGroup = volumeGroup
            self.volumeGroupPattern = volumeGroupPattern
            self.thinPool = thinPool
            self.overprovisionRatio = overprovisionRatio
            self.cacheMaximumAge = cacheMaximumAge
        }
    }

    /// Parameter keys understood in requests.
    public enum Parameter {
        /// A volume group name.
        public static let volumeGroup = "volumeGroup"
        /// A regular expression over volume group names.
        public static let volumeGroupPattern = "vgPattern"
        /// A thin pool name in the chosen volume group.
        public static let thinPool = "thinPool"
    }

    let configuration: Configuration
    let lvm: LVM
    let cache: LVMStateCache
    let ownerTag: LVMTag

    static let tagPrefix = "csi.swift-csi.io/"
    /// Marks a volume whose data is still being copied from its snapshot or source volume.
    static let restoringTag = tagPrefix + "restoring"
    /// Marks a clone: its `source` tag names a volume, not a snapshot.
    static let sourceIsVolumeTag = tagPrefix + "source-kind=volume"

    /// Creates a backend; the configuration is checked here.
    /// - Throws: `.invalidName` for a bad driver, VG or pool name, `.invalidArgument` for a bad
    ///   pattern or ratio.
    public convenience init(configuration: Configuration) throws(StorageError) {
        try self.init(configuration: configuration, metadataDirectory: nil)
    }

    /// As ``init(configuration:)``, with the cache's change notices read from `metadataDirectory`
    /// (nil: `LVM_SYSTEM_DIR` or /etc/lvm); tests name a directory no other LVM user writes.
    init(configuration: Configuration, metadataDirectory: String?) throws(StorageError) {
        if let vg = configuration.volumeGroup { _ = try LVMName(vg, kind: .volumeGroup) }
        if let pool = configuration.thinPool { _ = try LVMName(pool) }
        if let pattern = configuration.volumeGroupPattern { _ = try Self.compile(pattern) }
        if configuration.volumeGroup == nil && configuration.volumeGroupPattern == nil {
            throw StorageError(.invalidArgument, "LVM backend needs a volume group name or a volume group pattern")
        }
        guard configuration.overprovisionRatio >= 1, configuration.overprovisionRatio.isFinite else {
            throw StorageError(
                .invalidArgument, "overprovision ratio must be a finite number ≥ 1, found \(configuration.overprovisionRatio)")
        }
        self.configuration = configuration
        self.ownerTag = try LVMTag(Self.tagPrefix + "owner=" + LVMTag.encode(configuration.driverName))
        self.lvm = try LVM.client(scanning: configuration.scanDevices)
        if let report = configuration.onDeviceMapperChange { lvm.observeDeviceMapper { report($0.available, $0.detail) } }
        let lvmDirectory = metadataDirectory ?? getenvString("LVM_SYSTEM_DIR") ?? "/etc/lvm"
        self.cache = LVMStateCache(lvm: lvm, lvmDirectory: lvmDirectory, maximumAge: configuration.cacheMaximumAge)
    }

    /// How long a finding that device-mapper is missing stands before it is looked for again.
    public static var deviceMapperRetryInterval: Duration { DeviceMapperAvailability.retryInterval }

    /// Whether LVs get device nodes on this machine (device-mapper is available); looked for
    /// again, loading `dm_mod`, while it is not (at most every ``deviceMapperRetryInterval``).
    public var activationAvailable: Bool {
        get async { await lvm.deviceMapper().available }
    }

    /// The volume id for a request name: the name itself when it is a valid LV name of at most 63
    /// bytes, else `csi-` and a 128-bit hash of the name in hex.
    public static func volumeID(forName name: String) -> String {
        if name.utf8.count <= 63, (try? LVMName(name)) != nil { return name }
        return "csi-" + stableHash(name)
    }

    // MARK: Reads (cached)

    /// Every volume group this backend may use, with its free space.
    public func volumeGroups() async throws(StorageError) -> [VolumeGroup] {
        let state = try await cache.state()
        return try eligibleGroups(state, parameters: [:])
    }

    /// Every thin pool in those volume groups, with its usage and what it can still promise.
    public func thinPools() async throws(StorageError) -> [ThinPoolStatus] {
        let state = try await cache.state()
        let groups = Set(try eligibleGroups(state, parameters: [:]).map(\.name))
        return state.logicalVolumes.filter { $0.isThinPool && groups.contains($0.volumeGroup) }.map { pool in
            let budget = thinBudget(pool, state)
            return ThinPoolStatus(
                volumeGroup: pool.volumeGroup, name: pool.name, sizeBytes: pool.sizeBytes, dataPercent: budget.dataPercent,
                metadataPercent: budget.metadataPercent, promisedBytes: budget.promisedBytes, availableBytes: budget.availableBytes)
        }.sorted { ($0.volumeGroup, $0.name) < ($1.volumeGroup, $1.name) }
    }

    public func volume(id: String) async throws(StorageError) -> BackendVolume? {
        let state = try await cache.state()
        guard let lv = owned(state, id: id, kind: "volume") else { return nil }
        return volume(lv, state)
    }

    public func listVolumes() async throws(StorageError) -> [BackendVolume] {
        let state = try await cache.state()
        return state.logicalVolumes.filter { isOwned($0, kind: "volume") }.map { volume($0, state) }.sorted { $0.id < $1.id }
    }

    public func snapshot(id: String) async throws(StorageError) -> BackendSnapshot? {
        let state = try await cache.state()
        guard let lv = owned(state, id: id, kind: "snapshot") else { return nil }
        // A member of a group snapshot cut short does not exist until the group does.
        if let group = tagValue(lv, "group"), !isComplete(groupMembers(state, id: group)) { return nil }
        return snapshot(lv)
    }

    public func listSnapshots() async throws(StorageError) -> [BackendSnapshot] {
        let state = try await cache.state()
        let snapshots = state.logicalVolumes.filter { isOwned($0, kind: "snapshot") }
        var members: [String: [LogicalVolume]] = [:]
        for lv in snapshots { if let group = tagValue(lv, "group") { members[group, default: []].append(lv) } }
        let incomplete = Set(members.filter { !isComplete($0.value) }.keys)
        return snapshots.filter { tagValue($0, "group").map { !incomplete.contains($0) } ?? true }.map(snapshot).sorted { $0.id < $1.id }
    }

    public func capacity(parameters: [String: String]) async throws(StorageError) -> UInt64 {
        let state = try await cache.state()
        let groups = try eligibleGroups(state, parameters: parameters)
        if let pool = try thinPoolName(parameters) {
            var best: UInt64 = 0
            for group in groups {
                guard
                    let lv = state.logicalVolumes.first(where: { $0.volumeGroup == group.name && $0.name == pool.rawValue && $0.isThinPool }
                    )
                else { continue }
                best = max(best, thinBudget(lv, state).availableBytes)
            }
            return best
        }
        return groups.map(\.freeBytes).max() ?? 0
    }

    public func device(forVolume id: String) async throws(StorageError) -> VolumeDevice {
        let state = try await cache.state()
        guard let lv = owned(state, id: id, kind: "volume") else {
            throw StorageError(.notFound, "volume \(id) not found in any volume group")
        }
        if isRestoring(lv) { throw stillRestoring(lv) }
        let deviceMapper = await lvm.deviceMapper()
        guard deviceMapper.available else {
            return .unavailable(
                reason:
                    "logical volume \(lv.path) has no device node: device-mapper is not available on this machine (\(deviceMapper.detail)), so activation is disabled; it is looked for again at most every \(DeviceMapperAvailability.retryInterval)"
            )
        }
        return .node(try await activeNode(volumeGroup: lv.volumeGroup, name: lv.name))
    }

    /// The device node of LV `vg/name`, activating it when it has none; device-mapper must be available.
    private func activeNode(volumeGroup: String, name: String) async throws(StorageError) -> String {
        let vg = try LVMName(volumeGroup, kind: .volumeGroup)
        let lvName = try LVMName(name)
        // udev makes /dev/<vg>/<lv>; libdevmapper itself makes /dev/mapper/<vg>-<lv> (dashes
        // doubled), which is all there is in a container without udev.
        let escaped = (volumeGroup.replacingDashes() + "-" + name.replacingDashes())
        let candidates = ["/dev/" + volumeGroup + "/" + name, "/dev/mapper/" + escaped]
        if let node = candidates.first(where: { access($0, F_OK) == 0 }) { return node }
        defer { cache.invalidate() }
        _ = try await lvm.run(LVMCommand([LVMWord("lvchange"), LVMWord("-ay"), LVMWord("-K"), LVMWord(vg, lvName)]))
        if let node = candidates.first(where: { access($0, F_OK) == 0 }) { return node }
        throw StorageError(
            .failed, "logical volume \(volumeGroup)/\(name) was activated but neither \(candidates.joined(separator: " nor ")) exists")
    }

    public func deviceProblem(_ device: DeviceNumber, ofVolume id: String) async throws(StorageError) -> String? {
        let state = try await cache.state()
        guard let lv = owned(state, id: id, kind: "volume"), await lvm.deviceMapper().available else { return nil }
        let attr = Array(lv.attributes)
        if attr.count > 4 && attr[4] != "a" {
            return "logical volume \(lv.path) is not active (lv_attr \(lv.attributes)): it was deactivated or its mapping removed"
        }
        if let current = lv.kernelDevice, current != device {
            return "logical volume \(lv.path) is device \(current) now (it was deactivated and activated again)"
        }
        return nil
    }

    public func probe() async throws(StorageError) {
        let state = try await cache.state()
        if try eligibleGroups(state, parameters: [:]).isEmpty {
            throw StorageError(.notFound, "no volume group matches \(selectionDescription([:]))")
        }
    }

    // MARK: Writes

    public func createVolume(_ request: VolumeRequest) async throws(StorageError) -> BackendVolume {
        let id = try LVMName(Self.volumeID(forName: request.name))
        if let limit = request.effectiveLimit, limit < request.requiredBytes {
            throw StorageError(.invalidArgument, "volume \(id): limit \(limit) bytes is below the required \(request.requiredBytes) bytes")
        }
        // Plan from the cached state (usually one LVM command in all: lvcreate). An answer that
        // a stale state could explain (the LV exists after all, no room, no such VG or snapshot)
        // is checked once more against LVM itself before it is given.
        do {
            return try await createVolume(request, id: id, state: try await cache.state())
        } catch  where [.alreadyExists, .insufficientCapacity, .notFound].contains(error.code) {
            return try await createVolume(request, id: id, state: try await cache.fresh())
        }
    }

    private func createVolume(_ request: VolumeRequest, id: LVMName, state: LVMState) async throws(StorageError) -> BackendVolume {
        var state = state
        let fsTag = try request.fsType.map { (t) throws(StorageError) in try LVMTag(Self.tagPrefix + "fs=" + LVMTag.encode(t)) }

        if let existing = state.logicalVolumes.first(where: { $0.name == id.rawValue }) {
            return try await existingVolume(existing, request: request, state: state)
        }

        var groups = try eligibleGroups(state, parameters: request.parameters)
        let pool = try thinPoolName(request.parameters)
        var source: LogicalVolume?
        if request.sourceSnapshotID != nil && request.sourceVolumeID != nil {
            throw StorageError(.invalidArgument, "volume \(id): give a source snapshot or a source volume, not both")
        }
        if let snapshotID = request.sourceSnapshotID {
            guard let snap = owned(state, id: snapshotID, kind: "snapshot") else {
                throw StorageError(.notFound, "source snapshot \(snapshotID) not found")
            }
            source = snap
        }
        if let volumeID = request.sourceVolumeID {
            guard let origin = owned(state, id: volumeID, kind: "volume") else {
                throw StorageError(.notFound, "source volume \(volumeID) not found in any volume group")
            }
            if isRestoring(origin) { throw stillRestoring(origin) }
            source = origin
        }
        if let source {
            groups = groups.filter { $0.name == source.volumeGroup }
            if groups.isEmpty {
                throw StorageError(
                    .invalidArgument,
                    "source \(describe(source)) is in a volume group that does not match \(selectionDescription(request.parameters)); a volume is made only in its source's volume group")
            }
        }
        guard let group = groups.max(by: { $0.freeBytes < $1.freeBytes }) else {
            throw StorageError(.notFound, "no volume group matches \(selectionDescription(request.parameters))")
        }
        var size = try request.size(
            unit: group.extentBytes, unitName: "one extent of volume group \(group.name)", volume: id.rawValue)
        if let source, source.dataBytes > size {
            // A volume restored from a snapshot, or cloned, holds at least its source's data.
            size = roundUp(source.dataBytes, to: group.extentBytes)
            if let limit = request.effectiveLimit, size > limit {
                throw StorageError(
                    .outOfRange,
                    "volume \(id): \(describe(source)) holds \(source.dataBytes) bytes, above the limit of \(limit) bytes")
            }
        }
        let vg = try LVMName(group.name, kind: .volumeGroup)
        var tags = [ownerTag, try LVMTag(Self.tagPrefix + "kind=volume"), try nameTag(request.name)]
        if let fsTag { tags.append(fsTag) }
        let encryption = try encryption(of: request, source: source)
        if let encryption { tags.append(try Self.encryptionTag(encryption)) }
        for tag in request.ioLimits.tags(prefix: Self.tagPrefix) { tags.append(try LVMTag(tag)) }
        if let source { tags.append(try LVMTag(Self.tagPrefix + "source=" + LVMTag.encode(source.name))) }
        if request.sourceVolumeID != nil { tags.append(try LVMTag(Self.sourceIsVolumeTag)) }
        if let source, !source.isThinVolume { tags.append(try LVMTag(Self.restoringTag)) }
        let tagWords = tags.flatMap { [LVMWord("--addtag"), LVMWord($0)] }
        let deviceMapper = await lvm.deviceMapper().available
        let activation = deviceMapper ? [LVMWord("-ay"), LVMWord("-y")] : [LVMWord("-an"), LVMWord("-Zn")]

        defer { cache.invalidate() }
        if let source, source.isThinVolume {
            // A thin snapshot of the snapshot or the source volume: instant and shares blocks, but
            // promises its whole size. LVM suspends a mounted source's filesystem for it.
            try checkThinBudget(of: source, state: state, adding: max(size, source.dataBytes), for: "volume \(id)")
            let sourceName = try LVMName(source.name)
            _ = try await lvm.run(
                LVMCommand(
                    [LVMWord("lvcreate"), LVMWord("-s"), LVMWord("-kn"), LVMWord("-n"), LVMWord(id)]
                        + (deviceMapper ? [LVMWord("-ay")] : [LVMWord("-an")]) + tagWords + [LVMWord(vg, sourceName)]))
            state = try await cache.fresh()
            if size > source.dataBytes {
                _ = try await lvm.run(LVMCommand([LVMWord("lvextend"), LVMWord("-L"), LVMWord(bytes: size), LVMWord(vg, id)]))
            }
        } else if let pool {
            guard
                let poolLV = state.logicalVolumes.first(where: { $0.volumeGroup == group.name && $0.name == pool.rawValue && $0.isThinPool }
                )
            else {
                throw StorageError(.notFound, "thin pool \(group.name)/\(pool) not found")
            }
            if let refusal = thinBudget(poolLV, state).refusal(adding: size, for: "volume \(id)") { throw refusal }
            if let source { try requireDeviceMapper(deviceMapper, toRestore: id, from: source) }
            _ = try await lvm.run(
                LVMCommand(
                    [LVMWord("lvcreate"), LVMWord("-V"), LVMWord(bytes: size), LVMWord("--thin"), LVMWord("-n"), LVMWord(id)]
                        + (deviceMapper ? [LVMWord("-ay")] : [LVMWord("-an")]) + tagWords + [LVMWord(vg, pool)]))
            if let source {
                // A thick snapshot or volume into a thin volume: copied like a thick restore, zero
                // blocks skipped (a thin volume reads zeros where nothing was written).
                try await restoreOrRemove(vg: vg, id: id, from: source, sparse: true)
            }
        } else {
            if size > group.freeBytes {
                throw StorageError(
                    .insufficientCapacity,
                    "volume group \(group.name) has \(group.freeBytes) bytes free; \(size) bytes requested for volume \(id)")
            }
            if let source { try requireDeviceMapper(deviceMapper, toRestore: id, from: source) }
            _ = try await lvm.run(
                LVMCommand(
                    [LVMWord("lvcreate"), LVMWord("-L"), LVMWord(bytes: size), LVMWord("-n"), LVMWord(id)] + activation + tagWords
                        + [vg].map(LVMWord.init)))
            if let source { try await restoreOrRemove(vg: vg, id: id, from: source, sparse: false) }
        }
        if let source, source.isThinVolume {
            state = try await cache.fresh()
            guard let created = state.logicalVolumes.first(where: { $0.name == id.rawValue && $0.volumeGroup == group.name }) else {
                throw StorageError(.failed, "logical volume \(group.name)/\(id) was created but is not reported by lvs")
            }
            return volume(created, state)
        }
        // lvcreate succeeded with a size that is already a whole number of extents: no need to
        // ask LVM again (the cache is dropped; the next read sees the new LV).
        return BackendVolume(
            id: id.rawValue, name: request.name, capacityBytes: size, fsType: request.fsType,
            sourceSnapshotID: request.sourceSnapshotID, sourceVolumeID: request.sourceVolumeID, location: group.name + "/" + id.rawValue,
            condition: .healthy, encryption: encryption, ioLimits: request.ioLimits)
    }

    public func deleteVolume(id: String) async throws(StorageError) {
        let state = try await cache.fresh()
        guard let lv = owned(state, id: id, kind: "volume") else { return }
        // A thin clone is a thin snapshot of its source but a volume of its own: LVM lets the
        // source go and the clone keeps its blocks. Snapshots (ours or not) keep it.
        let dependents = state.logicalVolumes.filter {
            $0.origin == lv.name && $0.volumeGroup == lv.volumeGroup && !($0.isThinVolume && isOwned($0, kind: "volume"))
        }
        if !dependents.isEmpty {
            throw StorageError(.busy, "volume \(lv.path) has snapshots: " + dependents.map(\.name).joined(separator: ", "))
        }
        try await remove(lv)
    }

    public func expandVolume(id: String, toBytes bytes: UInt64, limitBytes: UInt64?) async throws(StorageError) -> BackendVolume {
        let state = try await cache.fresh()
        guard let lv = owned(state, id: id, kind: "volume"), let group = state.group(lv.volumeGroup) else {
            throw StorageError(.notFound, "volume \(id) not found in any volume group")
        }
        let size = roundUp(bytes, to: group.extentBytes)
        if size <= lv.sizeBytes { return volume(lv, state) }
        if let limit = limitBytes, limit > 0, size > limit {
            throw StorageError(
                .outOfRange,
                "volume \(lv.path): \(bytes) bytes rounded up to the extent size \(group.extentBytes) is \(size) bytes, above the limit of \(limit) bytes"
            )
        }
        if lv.isThinVolume {
            try checkThinBudget(of: lv, state: state, adding: size - lv.sizeBytes, for: "growing \(lv.path) from \(lv.sizeBytes) to \(size) bytes")
        } else if size - lv.sizeBytes > group.freeBytes {
            throw StorageError(
                .insufficientCapacity,
                "volume group \(group.name) has \(group.freeBytes) bytes free; growing \(lv.path) from \(lv.sizeBytes) to \(size) bytes needs \(size - lv.sizeBytes)"
            )
        }
        defer { cache.invalidate() }
        _ = try await lvm.run(
            LVMCommand([
                LVMWord("lvextend"), LVMWord("-L"), LVMWord(bytes: size),
                LVMWord(try LVMName(lv.volumeGroup, kind: .volumeGroup), try LVMName(lv.name)),
            ]))
        var grown = lv
        grown.sizeBytes = size
        return volume(grown, state)
    }

    /// True: IO limits are kept in the LV's tags.
    public var recordsIOLimits: Bool { true }

    /// Replaces the IO-limit tags of volume `id` in one `lvchange` (one metadata commit: the old
    /// tags and the new are never both or neither there).
    public func setIOLimits(_ limits: IOLimits, ofVolume id: String) async throws(StorageError) -> BackendVolume {
        let state = try await cache.fresh()
        guard let lv = owned(state, id: id, kind: "volume") else {
            throw StorageError(.notFound, "volume \(id) not found in any volume group")
        }
        let current = ioLimits(of: lv)
        if current == limits { return volume(lv, state) }
        let old = current.tags(prefix: Self.tagPrefix)
        let new = limits.tags(prefix: Self.tagPrefix)
        var words = [LVMWord("lvchange")]
        for tag in old where !new.contains(tag) { words += [LVMWord("--deltag"), LVMWord(try LVMTag(tag))] }
        for tag in new where !old.contains(tag) { words += [LVMWord("--addtag"), LVMWord(try LVMTag(tag))] }
        words.append(LVMWord(try LVMName(lv.volumeGroup, kind: .volumeGroup), try LVMName(lv.name)))
        defer { cache.invalidate() }
        _ = try await lvm.run(LVMCommand(words))
        var changed = lv
        changed.tags = changed.tags.filter { !old.contains($0) } + new
        return volume(changed, state)
    }

    public func createSnapshot(name: String, sourceVolumeID: String) async throws(StorageError) -> BackendSnapshot {
        let id = try LVMName(Self.volumeID(forName: name))
        let state = try await cache.fresh()
        guard let origin = owned(state, id: sourceVolumeID, kind: "volume") else {
            if let existing = state.logicalVolumes.first(where: { $0.name == id.rawValue }), isOwned(existing, kind: "snapshot"),
                tagValue(existing, "source") == sourceVolumeID
            {
                return snapshot(existing)
            }
            throw StorageError(.notFound, "source volume \(sourceVolumeID) not found in any volume group")
        }
        if isRestoring(origin) { throw stillRestoring(origin) }
        let vg = try LVMName(origin.volumeGroup, kind: .volumeGroup)
        let originName = try LVMName(origin.name)
        if let existing = state.logicalVolumes.first(where: { $0.name == id.rawValue }) {
            guard isOwned(existing, kind: "snapshot"), tagValue(existing, "name") == name else {
                throw StorageError(.alreadyExists, "logical volume \(existing.path) exists and is not snapshot \(name)")
            }
            guard tagValue(existing, "source") == origin.name else {
                throw StorageError(
                    .alreadyExists, "snapshot \(name) exists for volume \(tagValue(existing, "source") ?? "?"), not \(origin.name)")
            }
            if existing.origin.isEmpty && !existing.isThinVolume {
                // An interrupted two-step creation: finish the conversion.
                defer { cache.invalidate() }
                _ = try await lvm.run(
                    LVMCommand([
                        LVMWord("lvconvert"), LVMWord("-y"), LVMWord("-Zn"), LVMWord("-s"), LVMWord(vg, originName), LVMWord(vg, id),
                    ]))
                return try await reloadSnapshot(id: id.rawValue)
            }
            return snapshot(existing)
        }
        let created = String(Int64(time(nil)))
        var tags = [
            ownerTag, try LVMTag(Self.tagPrefix + "kind=snapshot"), try nameTag(name),
            try LVMTag(Self.tagPrefix + "source=" + LVMTag.encode(origin.name)),
            try LVMTag(Self.tagPrefix + "created=" + created),
        ]
        // The snapshot holds the origin's ciphertext: a restore of it must be opened the same way.
        if let encryption = encryption(of: origin) { tags.append(try Self.encryptionTag(encryption)) }
        let deviceMapper = await lvm.deviceMapper().available
        if origin.isThinVolume {
            try checkThinBudget(of: origin, state: state, adding: origin.sizeBytes, for: "snapshot \(id) of \(origin.path)")
        } else {
            // A classic snapshot whose exception store holds a rewrite of the whole origin, so it never overflows.
            guard let group = state.group(origin.volumeGroup) else {
                throw StorageError(.notFound, "volume group \(origin.volumeGroup) not found")
            }
            let store = LogicalVolume.exceptionStoreBytes(forOrigin: origin.sizeBytes)
            if store > group.freeBytes {
                throw StorageError(
                    .insufficientCapacity,
                    "volume group \(group.name) has \(group.freeBytes) bytes free; a snapshot of \(origin.path) needs \(store)")
            }
        }
        try await cut(id, of: origin, tags: tags, deviceMapper: deviceMapper)
        return try await reloadSnapshot(id: id.rawValue)
    }

    /// Creates snapshot LV `id` of `origin` with `tags`: a thin snapshot of a thin origin, else a
    /// classic snapshot as large as the origin. Room is checked by the caller.
    func cut(_ id: LVMName, of origin: LogicalVolume, tags: [LVMTag], deviceMapper: Bool) async throws(StorageError) {
        let vg = try LVMName(origin.volumeGroup, kind: .volumeGroup)
        let originName = try LVMName(origin.name)
        let tagWords = tags.flatMap { [LVMWord("--addtag"), LVMWord($0)] }
        defer { cache.invalidate() }
        if origin.isThinVolume {
            _ = try await lvm.run(
                LVMCommand(
                    [LVMWord("lvcreate"), LVMWord("-s"), LVMWord("-kn"), LVMWord("-n"), LVMWord(id)]
                        + (deviceMapper ? [] : [LVMWord("-an")]) + tagWords + [LVMWord(vg, originName)]))
            return
        }
        if deviceMapper {
            _ = try await lvm.run(
                LVMCommand(
                    [LVMWord("lvcreate"), LVMWord("-s"), LVMWord("-L"), LVMWord(bytes: LogicalVolume.exceptionStoreBytes(forOrigin: origin.sizeBytes)), LVMWord("-n"), LVMWord(id)]
                        + tagWords + [LVMWord(vg, originName)]))
        } else {
            // Without device-mapper `lvcreate -s` refuses; the same metadata results from creating
            // the exception store and converting it, which needs no activation.
            _ = try await lvm.run(
                LVMCommand(
                    [
                        LVMWord("lvcreate"), LVMWord("-an"), LVMWord("-Zn"), LVMWord("-L"), LVMWord(bytes: LogicalVolume.exceptionStoreBytes(forOrigin: origin.sizeBytes)), LVMWord("-n"),
                        LVMWord(id),
                    ] + tagWords + [LVMWord(vg)]))
            _ = try await lvm.run(
                LVMCommand([LVMWord("lvconvert"), LVMWord("-y"), LVMWord("-Zn"), LVMWord("-s"), LVMWord(vg, originName), LVMWord(vg, id)]))
        }
    }

    public func deleteSnapshot(id: String) async throws(StorageError) {
        let state = try await cache.fresh()
        guard let lv = owned(state, id: id, kind: "snapshot") else { return }
        if let group = tagValue(lv, "group") {
            throw StorageError(
                .invalidArgument,
                "snapshot \(id) is part of group snapshot \(group) and cannot be deleted on its own; delete the group snapshot")
        }
        try await remove(lv)
    }

    // MARK: Helpers

    func remove(_ lv: LogicalVolume) async throws(StorageError) {
        defer { cache.invalidate() }
        do {
            _ = try await lvm.run(
                LVMCommand([
                    LVMWord("lvremove"), LVMWord("-f"), LVMWord(try LVMName(lv.volumeGroup, kind: .volumeGroup), try LVMName(lv.name)),
                ]))
        } catch  where error.code == .notFound {
            return
        }
    }

    func reloadSnapshot(id: String) async throws(StorageError) -> BackendSnapshot {
        let state = try await cache.fresh()
        guard let lv = owned(state, id: id, kind: "snapshot") else {
            throw StorageError(.failed, "snapshot \(id) was created but is not reported by lvs")
        }
        return snapshot(lv)
    }

    private func existingVolume(_ existing: LogicalVolume, request: VolumeRequest, state: LVMState) async throws(StorageError) -> BackendVolume {
        guard isOwned(existing, kind: "volume") else {
            throw StorageError(
                .alreadyExists, "logical volume \(existing.path) exists and is not a volume of driver \(configuration.driverName)")
        }
        guard tagValue(existing, "name") == request.name else {
            throw StorageError(
                .alreadyExists,
                "logical volume \(existing.path) belongs to request \(tagValue(existing, "name").map(LVMName.quoted) ?? "?"), not \(LVMName.quoted(request.name))"
            )
        }
        // Compatible means inside the requested range (CSI CreateVolume idempotency).
        let fits = existing.sizeBytes >= request.requiredBytes && request.effectiveLimit.map { existing.sizeBytes <= $0 } ?? true
        if !fits {
            throw StorageError(
                .alreadyExists,
                "volume \(existing.path) exists with \(existing.sizeBytes) bytes; the request asks for \(request.requiredBytes)\(request.effectiveLimit.map { "–\($0)" } ?? "") bytes"
            )
        }
        if request.encryption != nil && encryption(of: existing) != request.encryption {
            throw StorageError(
                .alreadyExists,
                "volume \(existing.path) exists \(encryption(of: existing).map { "encrypted with \($0.rawValue)" } ?? "unencrypted"); the request asks for \(request.encryption!.rawValue)"
            )
        }
        if ioLimits(of: existing) != request.ioLimits {
            throw StorageError(
                .alreadyExists,
                "volume \(existing.path) exists with IO limits \(ioLimits(of: existing)); the request asks for \(request.ioLimits)")
        }
        let recordedIsVolume = existing.tags.contains(Self.sourceIsVolumeTag)
        let recorded = tagValue(existing, "source")
        let wanted = request.sourceVolumeID ?? request.sourceSnapshotID
        let wantedIsVolume = request.sourceVolumeID != nil
        if recorded != wanted || (wanted != nil && recordedIsVolume != wantedIsVolume) {
            throw StorageError(
                .alreadyExists,
                "volume \(existing.path) exists with source \(recorded.map { (recordedIsVolume ? "volume " : "snapshot ") + $0 } ?? "none"); the request asks for \(wanted.map { (wantedIsVolume ? "volume " : "snapshot ") + $0 } ?? "none")"
            )
        }
        guard let sourceID = wanted else { return volume(existing, state) }
        let kind = wantedIsVolume ? "volume" : "snapshot"
        // A cached state may have missed the source; LVM itself is asked before anything is removed.
        let current = owned(state, id: sourceID, kind: kind) != nil ? state : try await cache.fresh()
        guard let source = owned(current, id: sourceID, kind: kind) else {
            if isRestoring(existing) { try await remove(existing) }
            throw StorageError(
                .notFound,
                "source \(kind) \(sourceID) of volume \(existing.path) not found\(isRestoring(existing) ? "; the incomplete \(wantedIsVolume ? "clone" : "restore") \(existing.path) was removed" : "")"
            )
        }
        if isRestoring(existing) {
            // A restore or clone cut short (the driver died mid-copy): copy it all again.
            if isRestoring(source) { throw stillRestoring(source) }
            guard await lvm.deviceMapper().available else {
                throw StorageError(
                    .unsupported,
                    "volume \(existing.path) is still being \(wantedIsVolume ? "cloned" : "restored") from \(describe(source)), which needs device nodes; device-mapper is not available on this machine"
                )
            }
            defer { cache.invalidate() }
            try await restore(volumeGroup: existing.volumeGroup, name: existing.name, from: source, sparse: existing.isThinVolume)
            var restored = existing
            restored.tags.removeAll { $0 == Self.restoringTag }
            return volume(restored, current)
        }
        return volume(existing, current)
    }

    /// `.unsupported` when a restore from thick snapshot `source` (or a clone of thick volume
    /// `source`) cannot copy: no device nodes.
    private func requireDeviceMapper(_ available: Bool, toRestore id: LVMName, from source: LogicalVolume) throws(StorageError) {
        guard !available else { return }
        let kind = isOwned(source, kind: "volume") ? "volume" : "snapshot"
        throw StorageError(
            .unsupported,
            "volume \(id) from \(kind) \(source.path) needs the \(kind)'s data copied, which needs device nodes; device-mapper is not available on this machine"
        )
    }

    /// "snapshot vg/lv" or "volume vg/lv", for messages.
    func describe(_ source: LogicalVolume) -> String {
        (isOwned(source, kind: "volume") ? "volume " : "snapshot ") + source.path
    }

    /// ``restore(volumeGroup:name:from:sparse:)`` into the LV just created, which is removed again
    /// when the copy fails.
    private func restoreOrRemove(vg: LVMName, id: LVMName, from source: LogicalVolume, sparse: Bool) async throws(StorageError) {
        do throws(StorageError) {
            try await restore(volumeGroup: vg.rawValue, name: id.rawValue, from: source, sparse: sparse)
        } catch {
            _ = try? await lvm.run(LVMCommand([LVMWord("lvremove"), LVMWord("-f"), LVMWord(vg, id)]))
            throw error
        }
    }

    /// Copies snapshot or volume `source` into the new LV `vg/name` and, once the copy is on disk (fsync),
    /// removes the LV's ``restoringTag``. `sparse` skips zero blocks (for a thin destination).
    private func restore(volumeGroup: String, name: String, from source: LogicalVolume, sparse: Bool) async throws(StorageError) {
        let from = try await activeNode(volumeGroup: source.volumeGroup, name: source.name)
        let to = try await activeNode(volumeGroup: volumeGroup, name: name)
        try await offload { () throws(StorageError) in try copyData(from: from, to: to, bytes: source.dataBytes, sparse: sparse) }
        _ = try await lvm.run(
            LVMCommand([
                LVMWord("lvchange"), LVMWord("--deltag"), LVMWord(try LVMTag(Self.restoringTag)),
                LVMWord(try LVMName(volumeGroup, kind: .volumeGroup), try LVMName(name)),
            ]))
    }

    func isRestoring(_ lv: LogicalVolume) -> Bool { lv.tags.contains(Self.restoringTag) }

    /// `.busy`: volume `lv` holds part of its source's data until a repeated CreateVolume copies it.
    func stillRestoring(_ lv: LogicalVolume) -> StorageError {
        let clone = lv.tags.contains(Self.sourceIsVolumeTag)
        return StorageError(
            .busy,
            "volume \(lv.name) (\(lv.path)) is still being \(clone ? "cloned from volume" : "restored from snapshot") \(tagValue(lv, "source") ?? "?"): its data is incomplete until a repeated CreateVolume finishes the copy"
        )
    }

    func thinBudget(_ pool: LogicalVolume, _ state: LVMState) -> ThinPoolBudget {
        ThinPoolBudget(pool: pool, logicalVolumes: state.logicalVolumes, ratio: configuration.overprovisionRatio)
    }

    /// `.insufficientCapacity` unless the thin pool of thin LV `lv` can promise `bytes` more.
    func checkThinBudget(of lv: LogicalVolume, state: LVMState, adding bytes: UInt64, for what: String) throws(StorageError) {
        guard let pool = thinPool(of: lv, state) else { return }
        if let refusal = thinBudget(pool, state).refusal(adding: bytes, for: what) { throw refusal }
    }

    func nameTag(_ name: String) throws(StorageError) -> LVMTag {
        try LVMTag(Self.tagPrefix + "name=" + LVMTag.encode(name))
    }

    func isOwned(_ lv: LogicalVolume, kind: String) -> Bool {
        lv.tags.contains(ownerTag.rawValue) && lv.tags.contains(Self.tagPrefix + "kind=" + kind)
    }

    func owned(_ state: LVMState, id: String, kind: String) -> LogicalVolume? {
        state.logicalVolumes.first { $0.name == id && isOwned($0, kind: kind) }
    }

    /// The encryption an LV records (`csi.swift-csi.io/encryption=luks2`), or nil.
    func encryption(of lv: LogicalVolume) -> VolumeEncryption? {
        tagValue(lv, "encryption").flatMap(VolumeEncryption.init(rawValue:))
    }

    /// The IO limits an LV records.
    func ioLimits(of lv: LogicalVolume) -> IOLimits {
        IOLimits(tags: lv.tags, prefix: Self.tagPrefix)
    }

    static func encryptionTag(_ encryption: VolumeEncryption) throws(StorageError) -> LVMTag {
        try LVMTag(tagPrefix + "encryption=" + encryption.rawValue)
    }

    /// A new volume's encryption: its source snapshot's when it has one (the data is ciphertext
    /// either way), else the request's. An encrypted request cannot restore a plain snapshot.
    private func encryption(of request: VolumeRequest, source: LogicalVolume?) throws(StorageError) -> VolumeEncryption? {
        guard let source else { return request.encryption }
        let inherited = encryption(of: source)
        if let asked = request.encryption, inherited != asked {
            throw StorageError(
                .invalidArgument,
                "volume \(request.name) is to be encrypted with \(asked.rawValue), but its source \(source.path) holds \(inherited.map { "\($0.rawValue) ciphertext" } ?? "plain data"), which cannot be encrypted in place"
            )
        }
        return inherited
    }

    func tagValue(_ lv: LogicalVolume, _ key: String) -> String? {
        let prefix = Self.tagPrefix + key + "="
        guard let tag = lv.tags.first(where: { $0.hasPrefix(prefix) }) else { return nil }
        return LVMTag.decode(String(tag.dropFirst(prefix.count)))
    }

    private func volume(_ lv: LogicalVolume, _ state: LVMState) -> BackendVolume {
        BackendVolume(
            id: lv.name, name: tagValue(lv, "name"), capacityBytes: lv.sizeBytes, fsType: tagValue(lv, "fs"),
            sourceSnapshotID: lv.tags.contains(Self.sourceIsVolumeTag) ? nil : tagValue(lv, "source"),
            sourceVolumeID: lv.tags.contains(Self.sourceIsVolumeTag) ? tagValue(lv, "source") : nil, location: lv.path,
            condition: isRestoring(lv)
                ? VolumeHealth(abnormal: true, message: stillRestoring(lv).message)
                : lv.condition(in: state.group(lv.volumeGroup), pool: thinPool(of: lv, state)),
            encryption: encryption(of: lv), ioLimits: ioLimits(of: lv))
    }

    /// The thin pool of thin LV `lv`, nil for other LVs.
    func thinPool(of lv: LogicalVolume, _ state: LVMState) -> LogicalVolume? {
        guard lv.isThinVolume, !lv.pool.isEmpty else { return nil }
        return state.logicalVolumes.first { $0.volumeGroup == lv.volumeGroup && $0.name == lv.pool && $0.isThinPool }
    }

    func snapshot(_ lv: LogicalVolume) -> BackendSnapshot {
        BackendSnapshot(
            id: lv.name, name: tagValue(lv, "name"), sourceVolumeID: tagValue(lv, "source") ?? lv.origin,
            sizeBytes: lv.dataBytes, creationTime: Int64(tagValue(lv, "created") ?? "") ?? 0,
            readyToUse: !lv.origin.isEmpty || lv.isThinVolume, location: lv.path, encryption: encryption(of: lv),
            groupSnapshotID: tagValue(lv, "group"))
    }

    private func thinPoolName(_ parameters: [String: String]) throws(StorageError) -> LVMName? {
        if let pool = parameters[Parameter.thinPool] ?? configuration.thinPool { return try LVMName(pool) }
        return nil
    }

    private func eligibleGroups(_ state: LVMState, parameters: [String: String]) throws(StorageError) -> [VolumeGroup] {
        for key in parameters.keys
        where ![Parameter.volumeGroup, Parameter.volumeGroupPattern, Parameter.thinPool].contains(key)
            && !key.hasPrefix("csi.storage.k8s.io/")
        {
            throw StorageError(
                .invalidArgument,
                "unknown parameter \(LVMName.quoted(key)); the LVM backend understands \(Parameter.volumeGroup), \(Parameter.volumeGroupPattern), \(Parameter.thinPool)"
            )
        }
        if let name = parameters[Parameter.volumeGroup] {
            _ = try LVMName(name, kind: .volumeGroup)
            return state.volumeGroups.filter { $0.name == name }
        }
        if let pattern = parameters[Parameter.volumeGroupPattern] {
            let regex = try Self.compile(pattern)
            return state.volumeGroups.filter { (try? regex.wholeMatch(in: $0.name)) != nil }
        }
        if let name = configuration.volumeGroup { return state.volumeGroups.filter { $0.name == name } }
        if let pattern = configuration.volumeGroupPattern {
            let regex = try Self.compile(pattern)
            return state.volumeGroups.filter { (try? regex.wholeMatch(in: $0.name)) != nil }
        }
        return []
    }

    private func selectionDescription(_ parameters: [String: String]) -> String {
        if let name = parameters[Parameter.volumeGroup] ?? configuration.volumeGroup { return "volume group name \(LVMName.quoted(name))" }
        return "volume group pattern \(LVMName.quoted(parameters[Parameter.volumeGroupPattern] ?? configuration.volumeGroupPattern ?? ""))"
    }

    static func compile(_ pattern: String) throws(StorageError) -> Regex<AnyRegexOutput> {
        do { return try Regex(pattern) } catch {
            throw StorageError(
                .invalidArgument, "volume group pattern \(LVMName.quoted(pattern)) is not a valid regular expression: \(error)")
        }
    }
}

/// `value` rounded up to a multiple of `unit`; `UInt64.max` when that multiple does not fit, so
/// it fails every capacity check instead of trapping.
func roundUp(_ value: UInt64, to unit: UInt64) -> UInt64 {
    guard unit > 1 else { return value }
    let (q, r) = value.quotientAndRemainder(dividingBy: unit)
    let (size, overflow) = (r == 0 ? q : q + 1).multipliedReportingOverflow(by: unit)
    return overflow ? .max : size
}

/// 128 bits of two FNV-1a 64 hashes with different offsets, in hex; stable across runs and
/// platforms (unlike `Hasher`).
func stableHash(_ text: String) -> String {
    var a: UInt64 = 0xcbf2_9ce4_8422_2325
    var b: UInt64 = 0x6c62_272e_07bb_0142
    for byte in text.utf8 {
        a = (a ^ UInt64(byte)) &* 0x100_0000_01b3
        b = (b ^ UInt64(byte)) &* 0x100_0000_01b3
        b = b ^ (b >> 29)
    }
    func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
    return hex(a) + hex(b)
}

func getenvString(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

extension String {
    /// Doubles every `-`, as device-mapper names do for VG and LV names.
    func replacingDashes() -> String {
        var out = ""
        for c in self {
            out.append(c)
            if c == "-" { out.append("-") }
        }
        return out
    }
}
