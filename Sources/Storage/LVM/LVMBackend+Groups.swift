import Glibc
import Platform

/// Group snapshots: one snapshot LV per source volume, each tagged with the group
/// (`csi.swift-csi.io/group=<id>`, `group-name=<request name>`, `group-size=<members>`) beside the
/// usual snapshot tags, all with the same `created` time. There is no other record of a group: it
/// is read back from its members' tags, so Get and List survive restarts. A group with fewer
/// members than its size says was cut short (the driver died while making it): its members are
/// hidden from every read, and the repeated request removes them and takes the whole group again
/// (members taken at two moments would not be consistent with each other).
///
/// Consistency: no source volume may change between the moment the first member is cut and the
/// moment its own member is cut. LVM cuts one LV per `lvcreate` and suspends that origin itself
/// while it does, so the others are held still meanwhile (``GroupHolds``):
/// - a volume nothing has open cannot change: nothing to do;
/// - a thick volume in use is suspended with its filesystem locked (device-mapper suspend, as
///   `dmsetup suspend`): `lvcreate` snapshots an origin that is suspended already;
/// - an encrypted volume in use: its encryption mapping is suspended the same way; LVM then
///   suspends the LV beneath as it likes;
/// - a thin volume in use cannot be suspended beforehand (`lvcreate` then skips its own suspend
///   and with it the thin pool's message, and the snapshot fails); a mounted filesystem on it is
///   frozen (FIFREEZE) instead where the kernel lets LVM's suspend nest inside a freeze (Linux
///   6.8 and later; on 6.1 the suspend fails with EBUSY). One volume that cannot be held is
///   allowed: it is cut first, while all the others are held, so the group is the state of the
///   moment LVM suspended it. Two or more are refused (`.unsupported`).
/// Everything held is released when the last member is cut, or at the first error (and then the
/// members made so far are removed).
extension LVMBackend {
    /// The prefix of hold records in the state directory.
    static let holdRecordPrefix = "group-snapshot-holds-"

    /// Where the hold record of group `id` lives, if there is a state directory: one file per
    /// group, so that groups of other volumes taken at the same time keep theirs.
    func holdRecordPath(group id: String) -> String? {
        configuration.stateDirectory.map { $0 + "/" + Self.holdRecordPrefix + id + ".json" }
    }

    public var supportsGroupSnapshots: Bool { true }

    /// Releases what a process killed while holding group snapshots' volumes left held (their
    /// records in the state directory), and returns what was released. Call it once at start-up,
    /// before any group snapshot; each group snapshot releases its own record's too.
    /// - Throws: `.failed` when something recorded could not be released.
    @discardableResult
    public func releaseLeftoverHolds() throws(StorageError) -> [String] {
        guard let directory = configuration.stateDirectory, let names = directoryEntries(directory) else { return [] }
        let records = names.filter { $0.hasPrefix(Self.holdRecordPrefix) && $0.hasSuffix(".json") }.map { directory + "/" + $0 }
        var released: [String] = []
        var failures: [String] = []
        for record in records.sorted() {
            do throws(StorageError) { released += try GroupHolds.recover(recordPath: record) } catch { failures.append(error.message) }
        }
        if !failures.isEmpty { throw StorageError(.failed, failures.joined(separator: "; ")) }
        return released
    }

    /// The id of the member of group `group` that snapshots volume `source`.
    static func groupMemberID(group: String, source: String) -> String {
        "csi-" + stableHash("group:" + group + "/" + source)
    }

    /// The members of group `id` in `state`, sorted by name.
    func groupMembers(_ state: LVMState, id: String) -> [LogicalVolume] {
        state.logicalVolumes.filter { isOwned($0, kind: "snapshot") && tagValue($0, "group") == id }.sorted { $0.name < $1.name }
    }

    /// Whether `members` (of one group) are all of it: as many as its size says, one per source,
    /// each a finished snapshot (not the exception store of a cut without device-mapper that has
    /// not been converted yet).
    func isComplete(_ members: [LogicalVolume]) -> Bool {
        guard let first = members.first, let sizeText = tagValue(first, "group-size"), let size = Int(sizeText) else { return false }
        let sources = Set(members.map { tagValue($0, "source") ?? "" })
        return members.count == size && sources.count == size
            && members.allSatisfy { tagValue($0, "group-size") == sizeText && ($0.isThinVolume || !$0.origin.isEmpty) }
    }

    private func group(_ members: [LogicalVolume]) -> BackendGroupSnapshot {
        let snapshots = members.map(snapshot).sorted { $0.id < $1.id }
        return BackendGroupSnapshot(
            id: tagValue(members[0], "group") ?? "", name: tagValue(members[0], "group-name") ?? "", snapshots: snapshots,
            creationTime: snapshots.map(\.creationTime).min() ?? 0)
    }

    public func groupSnapshot(id: String) async throws(StorageError) -> BackendGroupSnapshot? {
        let state = try await cache.state()
        let members = groupMembers(state, id: id)
        return isComplete(members) ? group(members) : nil
    }

    public func deleteGroupSnapshot(id: String) async throws(StorageError) {
        let state = try await cache.fresh()
        for lv in groupMembers(state, id: id) { try await remove(lv) }
    }

    public func createGroupSnapshot(name: String, sourceVolumeIDs: [String]) async throws(StorageError) -> BackendGroupSnapshot {
        // Every name is checked before LVM is asked anything.
        guard !sourceVolumeIDs.isEmpty else { throw StorageError(.invalidArgument, "group snapshot \(name) names no source volume") }
        let sources = sourceVolumeIDs.sorted()
        if let twice = zip(sources, sources.dropFirst()).first(where: { $0.0 == $0.1 }) {
            throw StorageError(.invalidArgument, "group snapshot \(name) names volume \(twice.0) twice")
        }
        for source in sources { _ = try LVMName(source) }
        let groupID = try LVMName(Self.volumeID(forName: name)).rawValue
        let memberIDs = try sources.map { (source) throws(StorageError) in try LVMName(Self.groupMemberID(group: groupID, source: source)) }
        let groupTags = [
            try LVMTag(Self.tagPrefix + "group=" + LVMTag.encode(groupID)),
            try LVMTag(Self.tagPrefix + "group-name=" + LVMTag.encode(name)),
            try LVMTag(Self.tagPrefix + "group-size=\(sources.count)"),
        ]
        let kindTag = try LVMTag(Self.tagPrefix + "kind=snapshot")

        // What an earlier attempt that was killed left held, first.
        let recordPath = holdRecordPath(group: groupID)
        try await offload { () throws(StorageError) in _ = try GroupHolds.recover(recordPath: recordPath) }
        var state = try await cache.fresh()
        let existing = groupMembers(state, id: groupID)
        if !existing.isEmpty {
            let recorded = tagValue(existing[0], "group-name")
            guard recorded == name else {
                throw StorageError(
                    .alreadyExists, "group snapshot id \(groupID) belongs to the group snapshot \(recorded.map(LVMName.quoted) ?? "?")")
            }
            if isComplete(existing) {
                let had = existing.compactMap { tagValue($0, "source") }.sorted()
                guard had == sources else {
                    throw StorageError(
                        .alreadyExists,
                        "group snapshot \(LVMName.quoted(name)) exists of volumes \(had.joined(separator: ", ")), not \(sources.joined(separator: ", "))"
                    )
                }
                return group(existing)
            }
            // Cut short: the members there were taken at one moment, the missing ones would be
            // taken at another. Remove them and take the group again.
            for lv in existing { try await remove(lv) }
            state = try await cache.fresh()
        }
        var origins: [LogicalVolume] = []
        for (source, memberID) in zip(sources, memberIDs) {
            guard let origin = owned(state, id: source, kind: "volume") else {
                throw StorageError(.notFound, "source volume \(source) not found in any volume group")
            }
            if isRestoring(origin) { throw stillRestoring(origin) }
            if let clash = state.logicalVolumes.first(where: { $0.name == memberID.rawValue }) {
                throw StorageError(.alreadyExists, "logical volume \(clash.path) exists and is not a member of group snapshot \(name)")
            }
            origins.append(origin)
        }
        try checkRoom(forSnapshotsOf: origins, state: state, group: name)
        let deviceMapper = await lvm.deviceMapper().available

        let holds = GroupHolds(recordPath: recordPath)
        var cutFirst: String?
        do throws(StorageError) {
            let sourceLVs = origins
            let plan = deviceMapper ? try await offload { () throws(StorageError) in try Self.holdPlan(sourceLVs) } : HoldPlan()
            try await offload { () throws(StorageError) in
                try holds.record(devices: plan.recordedDevices, mounts: plan.candidates.map { .init(mountPoint: $0.mountPoint, device: $0.device) })
                for device in plan.suspend { try holds.suspend(device) }
            }
            var unheld = plan.unholdable
            if plan.candidates.count + plan.unholdable.count > 1 {
                for candidate in plan.candidates {
                    let frozen = try await offload { () throws(StorageError) in
                        try holds.freezeIfNested(mountPoint: candidate.mountPoint, device: candidate.device)
                    }
                    if !frozen { unheld.append((candidate.volume, "its filesystem mounted at \(candidate.mountPoint)")) }
                }
            } else {
                unheld += plan.candidates.map { ($0.volume, "its filesystem mounted at \($0.mountPoint)") }
            }
            if unheld.count > 1 {
                throw StorageError(
                    .unsupported,
                    "volumes \(unheld.map { "\($0.0) (\($0.1))" }.joined(separator: ", ")) are thin volumes in use, and at most one such volume can be in a group snapshot: LVM suspends a thin volume itself to snapshot it, so it cannot be held still beforehand while the other members are cut; a mounted filesystem on it can be frozen instead only on kernels that let LVM's suspend nest inside a freeze (Linux 6.8 and later). Stop the writers of all but one of them, unmount them, or make them thick volumes"
                )
            }
            cutFirst = unheld.first?.0
            let created = try LVMTag(Self.tagPrefix + "created=" + String(Int64(time(nil))))
            let order = zip(origins, memberIDs).sorted { a, b in (a.0.name == cutFirst ? 0 : 1, a.0.name) < (b.0.name == cutFirst ? 0 : 1, b.0.name) }
            for (origin, memberID) in order {
                var tags = [ownerTag, kindTag, try LVMTag(Self.tagPrefix + "source=" + LVMTag.encode(origin.name)), created] + groupTags
                if let encryption = encryption(of: origin) { tags.append(try Self.encryptionTag(encryption)) }
                try await cut(memberID, of: origin, tags: tags, deviceMapper: deviceMapper)
            }
        } catch {
            var failure = error
            do throws(StorageError) { try await offload { () throws(StorageError) in try holds.releaseAll() } } catch let release {
                failure.details.append(release.message)
            }
            // No group: no member is left behind (the spec asks that none leak).
            if let state = try? await cache.fresh() {
                for lv in groupMembers(state, id: groupID) { try? await remove(lv) }
            }
            throw failure
        }
        try await offload { () throws(StorageError) in try holds.releaseAll() }
        let members = groupMembers(try await cache.fresh(), id: groupID)
        guard isComplete(members) else {
            throw StorageError(.failed, "group snapshot \(name) was cut but lvs reports \(members.count) of its \(sources.count) members")
        }
        return group(members)
    }

    /// `.insufficientCapacity` unless every volume group has room for the classic snapshots of its
    /// thick origins, and every thin pool can promise its thin origins' sizes once more.
    private func checkRoom(forSnapshotsOf origins: [LogicalVolume], state: LVMState, group name: String) throws(StorageError) {
        var thick: [String: UInt64] = [:]
        var thin: [String: (pool: LogicalVolume, bytes: UInt64)] = [:]
        for origin in origins {
            if origin.isThinVolume {
                guard let pool = thinPool(of: origin, state) else { continue }
                thin[pool.path, default: (pool, 0)].bytes += origin.sizeBytes
            } else {
                thick[origin.volumeGroup, default: 0] += LogicalVolume.exceptionStoreBytes(forOrigin: origin.sizeBytes)
            }
        }
        for (vg, bytes) in thick.sorted(by: { $0.key < $1.key }) {
            guard let group = state.group(vg) else { throw StorageError(.notFound, "volume group \(vg) not found") }
            if bytes > group.freeBytes {
                throw StorageError(
                    .insufficientCapacity,
                    "volume group \(vg) has \(group.freeBytes) bytes free; the snapshots of group snapshot \(name) of its thick volumes need \(bytes)"
                )
            }
        }
        for (_, entry) in thin.sorted(by: { $0.key < $1.key }) {
            if let refusal = thinBudget(entry.pool, state).refusal(adding: entry.bytes, for: "group snapshot \(name)") { throw refusal }
        }
    }

    /// How the sources of one group snapshot are held still while it is cut.
    struct HoldPlan: Sendable {
        /// Devices to suspend: thick LVs and encryption mappings in use.
        var suspend: [DeviceNumber] = []
        /// Thin volumes in use whose filesystem can be frozen where the kernel allows it.
        var candidates: [(volume: String, mountPoint: String, device: DeviceNumber)] = []
        /// Thin volumes in use that cannot be held (raw block), with how they are used.
        var unholdable: [(String, String)] = []
        /// Every source LV and mapping, for the record.
        var recordedDevices: [GroupHolds.RecordedDevice] = []
    }

    /// Finds how each active source is used: the LV's own device, or the encryption mapping on
    /// it; open or not (device-mapper's open count); mounted or not (/proc/self/mountinfo, where
    /// the node service of this same process mounts them).
    static func holdPlan(_ origins: [LogicalVolume]) throws(StorageError) -> HoldPlan {
        var plan = HoldPlan()
        let mounts = try LinuxMounter.readMountTable()
        for origin in origins {
            guard let device = origin.kernelDevice, let status = try DeviceMapperControl.status(device) else { continue }
            plan.recordedDevices.append(.init(device: device, uuid: status.uuid))
            let crypt = DeviceMapperControl.holders(of: device).first { $0.uuid.hasPrefix("CRYPT-") }
            let top = crypt?.device ?? device
            let topStatus = crypt == nil ? status : try DeviceMapperControl.status(top)
            if let crypt { plan.recordedDevices.append(.init(device: crypt.device, uuid: crypt.uuid)) }
            guard let topStatus, topStatus.openCount > 0 else { continue }
            if crypt != nil || !origin.isThinVolume {
                plan.suspend.append(top)
            } else if let mount = mounts.first(where: { $0.major == device.major && $0.minor == device.minor }) {
                plan.candidates.append((origin.name, mount.mountPoint, device))
            } else {
                plan.unholdable.append((origin.name, "open as a raw block device"))
            }
        }
        plan.suspend.sort { ($0.major, $0.minor) < ($1.major, $1.minor) }
        return plan
    }
}
