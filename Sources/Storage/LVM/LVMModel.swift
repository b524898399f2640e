import Platform

/// A volume group as reported by `vgs`.
public struct VolumeGroup: Sendable, Hashable {
    /// Its name.
    public var name: String
    /// Total size in bytes.
    public var sizeBytes: UInt64
    /// Unallocated bytes.
    public var freeBytes: UInt64
    /// The allocation unit in bytes; logical volume sizes are multiples of it.
    public var extentBytes: UInt64
    /// Metadata sequence number; it grows with every metadata change.
    public var sequenceNumber: UInt64
    /// Physical volumes that are missing.
    public var missingPhysicalVolumes: Int
}

/// A thin pool in a volume group the backend may use: its size and usage, and what it can still
/// promise under the overprovision ratio (what GetCapacity reports for it).
public struct ThinPoolStatus: Sendable, Hashable {
    /// Its volume group.
    public var volumeGroup: String
    /// Its name.
    public var name: String
    /// Its data size in bytes.
    public var sizeBytes: UInt64
    /// Data and metadata usage in percent (0 for an inactive pool).
    public var dataPercent: Double
    public var metadataPercent: Double
    /// The virtual sizes of the thin volumes and snapshots in it, summed.
    public var promisedBytes: UInt64
    /// What it can still promise: size × overprovision ratio − promised, 0 once 95 % full.
    public var availableBytes: UInt64
}

/// A logical volume as reported by `lvs`.
struct LogicalVolume: Sendable, Hashable {
    var name: String
    var volumeGroup: String
    var uuid: String
    var sizeBytes: UInt64
    /// The ten `lv_attr` characters.
    var attributes: String
    var tags: [String]
    /// The origin of a snapshot, empty otherwise.
    var origin: String
    /// The thin pool of a thin volume, empty otherwise.
    var pool: String
    /// Data usage of a thin pool or snapshot, percent.
    var dataPercent: Double?
    var healthStatus: String
    var segmentType: String
    /// Metadata usage of a thin pool, percent.
    var metadataPercent: Double? = nil
    /// The device-mapper device of an active LV (`lv_kernel_major`, `lv_kernel_minor`), nil while inactive.
    var kernelDevice: DeviceNumber? = nil
    /// The size of a snapshot's origin (`origin_size`), nil for other LVs.
    var originSizeBytes: UInt64? = nil

    var path: String { volumeGroup + "/" + name }

    /// What the LV's device holds: a classic snapshot shows its origin's size (its own `lv_size`
    /// is its exception store's), any other LV its size.
    var dataBytes: UInt64 { !isThinVolume && !origin.isEmpty ? (originSizeBytes ?? sizeBytes) : sizeBytes }

    /// The exception store of a classic snapshot of an origin of `bytes`: the origin's size, its
    /// metadata (16 bytes for each 4 KiB chunk, 1/256) and header, so that a complete rewrite of the
    /// origin still fits; LVM trims a store larger than the origin can ever need.
    static func exceptionStoreBytes(forOrigin bytes: UInt64) -> UInt64 { bytes + bytes / 128 + (1 << 20) }

    /// Volume type: first `lv_attr` character.
    var isThinPool: Bool { attributes.first == "t" }
    var isThinVolume: Bool { attributes.first == "V" }
    var isSnapshot: Bool { attributes.first == "s" || attributes.first == "S" || !origin.isEmpty }
    /// Whether some other LV is a classic snapshot of this one (`o` = origin).
    var isOrigin: Bool { attributes.first == "o" }

    /// Health from `lv_attr` and `lv_health_status`, and for a thin volume from its thin pool's
    /// (``thinPoolProblems``): a pool that cannot take writes makes every volume in it abnormal.
    func condition(in group: VolumeGroup?, pool: LogicalVolume? = nil) -> VolumeHealth {
        let attr = Array(attributes)
        var problems: [String] = []
        if !healthStatus.isEmpty { problems.append("health status \"\(healthStatus)\"") }
        if attr.count > 8 {
            switch attr[8] {
            case "p": problems.append("partial: one or more of its physical volumes are missing")
            case "r": problems.append("needs refresh")
            case "m": problems.append("mismatches exist")
            default: break
            }
        }
        if attr.count > 4 {
            switch attr[4] {
            case "I": problems.append("snapshot invalid (its exception store overflowed)")
            case "S": problems.append("snapshot merge failed")
            case "m": problems.append("mapped device present but table missing")
            case "i": problems.append("mapped device present with inactive table")
            default: break
            }
        }
        if let group, group.missingPhysicalVolumes > 0, problems.isEmpty || attr.count <= 8 {
            problems.append("volume group \(group.name) is missing \(group.missingPhysicalVolumes) physical volume(s)")
        }
        if let pool, let poolProblems = pool.thinPoolProblems {
            problems.append("its thin pool \(pool.path) (lv_attr \(pool.attributes)) \(poolProblems)")
        }
        if problems.isEmpty { return .healthy }
        return VolumeHealth(
            abnormal: true, message: "logical volume \(path) (lv_attr \(attributes)): " + problems.joined(separator: "; "))
    }

    /// What keeps this thin pool from taking writes, or nil: out of data space (`lv_attr` 9th
    /// character `D`), metadata read-only (`M`), failed (`F`), or data or metadata usage at 100 %.
    var thinPoolProblems: String? {
        guard isThinPool else { return nil }
        let attr = Array(attributes)
        var problems: [String] = []
        if attr.count > 8 {
            switch attr[8] {
            case "D": problems.append("is out of data space")
            case "M": problems.append("has read-only metadata")
            case "F": problems.append("has failed")
            default: break
            }
        }
        if let dataPercent, dataPercent >= 100 { problems.append("has its data \(dataPercent) % used") }
        if let metadataPercent, metadataPercent >= 100 { problems.append("has its metadata \(metadataPercent) % used") }
        if problems.isEmpty && !healthStatus.isEmpty { problems.append("has health status \"\(healthStatus)\"") }
        return problems.isEmpty ? nil : problems.joined(separator: ", ")
    }
}

/// Rows of `lvs` with the fields ``LVMState`` asks for; LVM reports every value as a string.
struct LVRow: LVMReportRow {
    var lv_name: String
    var vg_name: String
    var lv_uuid: String
    var lv_size: String
    var lv_attr: String
    var lv_tags: String
    var origin: String
    var pool_lv: String
    var data_percent: String
    var lv_health_status: String
    var segtype: String
    var metadata_percent: String
    var lv_kernel_major: String
    var lv_kernel_minor: String
    var origin_size: String

    init(fields f: [String: String]) throws(JSONError) {
        lv_name = try f.field("lv_name")
        vg_name = try f.field("vg_name")
        lv_uuid = try f.field("lv_uuid")
        lv_size = try f.field("lv_size")
        lv_attr = try f.field("lv_attr")
        lv_tags = try f.field("lv_tags")
        origin = try f.field("origin")
        pool_lv = try f.field("pool_lv")
        data_percent = try f.field("data_percent")
        lv_health_status = try f.field("lv_health_status")
        segtype = try f.field("segtype")
        metadata_percent = try f.field("metadata_percent")
        lv_kernel_major = try f.field("lv_kernel_major")
        lv_kernel_minor = try f.field("lv_kernel_minor")
        origin_size = (try? f.field("origin_size")) ?? ""
    }

    static let fields: StaticString =
        "lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_tags,origin,pool_lv,data_percent,lv_health_status,segtype,metadata_percent,lv_kernel_major,lv_kernel_minor,origin_size"

    func model() -> LogicalVolume {
        LogicalVolume(
            name: lv_name, volumeGroup: vg_name, uuid: lv_uuid, sizeBytes: UInt64(lv_size) ?? 0,
            attributes: lv_attr, tags: lv_tags.isEmpty ? [] : lv_tags.split(separator: ",").map(String.init),
            origin: origin, pool: pool_lv, dataPercent: Double(data_percent),
            healthStatus: lv_health_status, segmentType: segtype, metadataPercent: Double(metadata_percent),
            kernelDevice: UInt32(lv_kernel_major).flatMap { major in UInt32(lv_kernel_minor).map { DeviceNumber(major: major, minor: $0) } },
            originSizeBytes: UInt64(origin_size))
    }
}

/// Rows of `vgs`.
struct VGRow: LVMReportRow {
    var vg_name: String
    var vg_size: String
    var vg_free: String
    var vg_extent_size: String
    var vg_seqno: String
    var vg_missing_pv_count: String

    init(fields f: [String: String]) throws(JSONError) {
        vg_name = try f.field("vg_name")
        vg_size = try f.field("vg_size")
        vg_free = try f.field("vg_free")
        vg_extent_size = try f.field("vg_extent_size")
        vg_seqno = try f.field("vg_seqno")
        vg_missing_pv_count = try f.field("vg_missing_pv_count")
    }

    static let fields: StaticString = "vg_name,vg_size,vg_free,vg_extent_size,vg_seqno,vg_missing_pv_count"

    func model() -> VolumeGroup {
        VolumeGroup(
            name: vg_name, sizeBytes: UInt64(vg_size) ?? 0, freeBytes: UInt64(vg_free) ?? 0,
            extentBytes: UInt64(vg_extent_size) ?? 0, sequenceNumber: UInt64(vg_seqno) ?? 0,
            missingPhysicalVolumes: Int(vg_missing_pv_count) ?? 0)
    }
}

/// Everything LVM reports at one moment.
struct LVMState: Sendable {
    var volumeGroups: [VolumeGroup]
    var logicalVolumes: [LogicalVolume]

    func group(_ name: String) -> VolumeGroup? { volumeGroups.first { $0.name == name } }

    /// Reads the state with two report commands. (One `vgs` with LV fields would do for volume
    /// groups that hold LVs, but LVM leaves out the rows of empty volume groups then.)
    static func load(_ lvm: LVM) async throws(StorageError) -> LVMState {
        // A long-lived handle keeps its device filter's verdicts: a device it once saw empty (a
        // loop device before attachment, a disk before its PV label) stays skipped. Any
        // --config makes LVM rebuild its filters after the command; this one repeats the
        // handle's own setting (~1 ms).
        let vgs = try await lvm.report(
            LVMCommand([LVMWord("vgs"), LVMWord("--config"), LVMWord("global/use_aio=0"), LVMWord("-o"), LVMWord(VGRow.fields)]),
            key: "vg", as: VGRow.self)
        let lvs = try await lvm.report(LVMCommand([LVMWord("lvs"), LVMWord("-o"), LVMWord(LVRow.fields)]), key: "lv", as: LVRow.self)
        return LVMState(volumeGroups: vgs.map { $0.model() }, logicalVolumes: lvs.map { $0.model() })
    }
}
