import Glibc
import Synchronization
import Testing

@testable import Storage

/// Every LVMBackend operation on a real volume group on a loop device.
@Suite(.serialized, .enabled(if: isRoot, rootReason))
struct LVMBackendTests {
    /// This test's own suffix (Swift Testing makes a new suite value per test). The backend reads
    /// the LVs of every volume group on the machine and a volume's ID is its LV name, so another
    /// copy of this suite running at the same time (another checkout, another build) would see
    /// its volumes here under a shared owner, and refuse LV names it already uses in its own VG.
    let suffix = uniqueSuffix()
    /// The owner of this test's volumes.
    var driver: String { "lvm-\(suffix).csi.swift-csi.io" }

    /// `base` made this test's own: the name of a volume or snapshot, and of its LV.
    func lv(_ base: String) -> String { "\(base)-\(suffix)" }

    /// The tags the backend puts on a volume of this test's owner, for LVs made with the lvm tool.
    var volumeTags: [String] { ["--addtag", "csi.swift-csi.io/owner=\(driver)", "--addtag", "csi.swift-csi.io/kind=volume"] }

    func backend(_ vg: String, driver: String? = nil) throws -> LVMBackend {
        try LVMBackend(configuration: .init(driverName: driver ?? self.driver, volumeGroup: vg))
    }

    @Test func createIsIdempotentAndRoundsToExtents() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let request = VolumeRequest(name: lv("pvc-create-1"), requiredBytes: 10 << 20, fsType: "ext4")
            let volume = try await lvm.createVolume(request)
            #expect(volume.id == lv("pvc-create-1"))
            #expect(volume.capacityBytes == 12 << 20)  // 3 extents of 4 MiB
            #expect(volume.fsType == "ext4")
            #expect(volume.name == lv("pvc-create-1"))
            #expect(volume.location == "\(vg)/\(lv("pvc-create-1"))")
            #expect(volume.condition.abnormal == false)
            let again = try await lvm.createVolume(request)
            #expect(again == volume)
            // A bigger size under the same name is a conflict.
            await #expect { try await lvm.createVolume(VolumeRequest(name: lv("pvc-create-1"), requiredBytes: 64 << 20)) } throws: {
                ($0 as? StorageError)?.code == .alreadyExists
            }
            // Tags record ownership and the request; the lvm tool sees them.
            let tags = try await lvmTool(["lvs", "--noheadings", "-o", "lv_tags", "\(vg)/\(lv("pvc-create-1"))"]).output
            #expect(tags.contains("csi.swift-csi.io/owner=\(driver)"))
            #expect(tags.contains("csi.swift-csi.io/name=\(lv("pvc-create-1"))"))
            #expect(tags.contains("csi.swift-csi.io/fs=ext4"))
        }
    }

    /// Sizes round up to whole extents (4 MiB here); a rounded size past the limit is `.outOfRange`
    /// and nothing is created or grown, while a limit below the required size is a bad argument.
    @Test func extentRoundingPastTheLimitIsOutOfRange() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let mib: UInt64 = 1 << 20
            await #expect {
                try await lvm.createVolume(VolumeRequest(name: lv("pvc-odd"), requiredBytes: 5 * mib, limitBytes: 6 * mib))
            } throws: { error in
                guard let error = error as? StorageError else { return false }
                return error.code == .outOfRange && error.message.contains("\(8 * mib)") && error.message.contains("\(6 * mib)")
            }
            #expect(try await lvm.volume(id: lv("pvc-odd")) == nil)
            await #expect {
                try await lvm.createVolume(VolumeRequest(name: lv("pvc-odd"), requiredBytes: 8 * mib, limitBytes: 6 * mib))
            } throws: { ($0 as? StorageError)?.code == .invalidArgument }
            let volume = try await lvm.createVolume(VolumeRequest(name: lv("pvc-odd"), requiredBytes: 5 * mib, limitBytes: 8 * mib))
            #expect(volume.capacityBytes == 8 * mib)
            await #expect { try await lvm.expandVolume(id: volume.id, toBytes: 9 * mib, limitBytes: 10 * mib) } throws: {
                ($0 as? StorageError)?.code == .outOfRange
            }
            #expect(try await lvm.volume(id: volume.id)?.capacityBytes == 8 * mib)
            #expect(try await lvm.expandVolume(id: volume.id, toBytes: 9 * mib, limitBytes: 12 * mib).capacityBytes == 12 * mib)
            try await lvm.deleteVolume(id: volume.id)
        }
    }

    /// The size of `vg/lv` in bytes as the lvm tool reports it.
    func lvSize(_ vg: String, _ lv: String) async throws -> UInt64? {
        let output = try await lvmTool(["lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_size", "\(vg)/\(lv)"]).output
        return UInt64(output.trimmed())
    }

    /// Without a required size, a limit rounds down to whole extents (4 MiB here) and the volume is
    /// made exactly that large; a limit below one extent is `.outOfRange` naming both figures, and
    /// with neither the default size is rounded up.
    @Test func limitAloneCapsTheDefaultAtWholeExtents() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let mib: UInt64 = 1 << 20
            let request = VolumeRequest(name: lv("pvc-limit"), requiredBytes: 0, limitBytes: 10 * mib + 4096)
            let limited = try await lvm.createVolume(request)
            #expect(limited.capacityBytes == 8 * mib)
            #expect(try await lvSize(vg, limited.id) == 8 * mib)
            #expect(try await lvm.createVolume(request) == limited)
            // A limit of whole extents is the size itself; a limit of 0 means none.
            let exact = try await lvm.createVolume(VolumeRequest(name: lv("pvc-exact"), requiredBytes: 0, limitBytes: 12 * mib))
            #expect(try await lvSize(vg, exact.id) == 12 * mib)
            await #expect {
                try await lvm.createVolume(VolumeRequest(name: lv("pvc-tiny"), requiredBytes: 0, limitBytes: 4 * mib - 1))
            } throws: { error in
                guard let error = error as? StorageError else { return false }
                return error.code == .outOfRange && error.message.contains("\(4 * mib - 1)") && error.message.contains("\(4 * mib)")
            }
            #expect(try await lvm.volume(id: lv("pvc-tiny")) == nil)
            let unsized = try await lvm.createVolume(
                VolumeRequest(name: lv("pvc-default"), requiredBytes: 0, limitBytes: 0, defaultBytes: 13 * mib))
            #expect(unsized.capacityBytes == 16 * mib)
            #expect(try await lvSize(vg, unsized.id) == 16 * mib)
            // A limit above the default size caps it and does not replace it.
            let capped = try await lvm.createVolume(
                VolumeRequest(name: lv("pvc-capped"), requiredBytes: 0, limitBytes: 40 * mib, defaultBytes: 13 * mib))
            #expect(capped.capacityBytes == 16 * mib)
            #expect(try await lvSize(vg, capped.id) == 16 * mib)
            for volume in [limited, exact, unsized, capped] { try await lvm.deleteVolume(id: volume.id) }
        }
    }

    @Test func requestNamesThatAreNotLVMNamesGetHashedIDs() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let name = "snapshot restore #\(suffix) ü"
            let volume = try await lvm.createVolume(VolumeRequest(name: name, requiredBytes: 1))
            #expect(volume.id.hasPrefix("csi-"))
            #expect(volume.name == name)
            #expect(volume.capacityBytes == 4 << 20)
            #expect(try await lvm.volume(id: volume.id)?.name == name)
        }
    }

    @Test func insufficientCapacityIsTyped() async throws {
        try await withVolumeGroup(megabytes: 64) { vg, _ in
            let lvm = try backend(vg)
            await #expect { try await lvm.createVolume(VolumeRequest(name: lv("too-big"), requiredBytes: 1 << 30)) } throws: { error in
                guard let error = error as? StorageError else { return false }
                return error.code == .insufficientCapacity && error.message.contains(vg)
            }
            #expect(try await lvm.volume(id: lv("too-big")) == nil)
            let small = try await lvm.createVolume(VolumeRequest(name: lv("small"), requiredBytes: 8 << 20))
            await #expect { try await lvm.expandVolume(id: small.id, toBytes: 1 << 30, limitBytes: nil) } throws: {
                ($0 as? StorageError)?.code == .insufficientCapacity
            }
        }
    }

    @Test func deleteIsIdempotentAndExpandGrows() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let volume = try await lvm.createVolume(VolumeRequest(name: lv("pvc-grow"), requiredBytes: 8 << 20))
            let grown = try await lvm.expandVolume(id: volume.id, toBytes: 30 << 20, limitBytes: nil)
            #expect(grown.capacityBytes == 32 << 20)
            let same = try await lvm.expandVolume(id: volume.id, toBytes: 16 << 20, limitBytes: nil)
            #expect(same.capacityBytes == 32 << 20)
            await #expect { try await lvm.expandVolume(id: "nope", toBytes: 1, limitBytes: nil) } throws: { ($0 as? StorageError)?.code == .notFound }
            try await lvm.deleteVolume(id: volume.id)
            try await lvm.deleteVolume(id: volume.id)
            try await lvm.deleteVolume(id: "never-existed")
            #expect(try await lvm.volume(id: volume.id) == nil)
            #expect(try await lvmTool(["lvs", "--noheadings", "-o", "lv_name", vg]).output.trimmed() == "")
        }
    }

    @Test func listingFiltersByOwner() async throws {
        try await withVolumeGroup { vg, _ in
            let mine = try backend(vg)
            let theirs = try backend(vg, driver: "other-\(uniqueSuffix()).driver")
            _ = try await mine.createVolume(VolumeRequest(name: lv("mine-b"), requiredBytes: 1))
            _ = try await mine.createVolume(VolumeRequest(name: lv("mine-a"), requiredBytes: 1))
            _ = try await theirs.createVolume(VolumeRequest(name: lv("theirs"), requiredBytes: 1))
            try await lvmTool(["lvcreate", "-an", "-Zn", "-L", "4m", "-n", lv("untagged"), vg])
            #expect(try await mine.listVolumes().map(\.id) == [lv("mine-a"), lv("mine-b")])
            #expect(try await theirs.listVolumes().map(\.id) == [lv("theirs")])
            #expect(try await mine.volume(id: lv("theirs")) == nil)
            // Another driver's LV of the same name is a conflict, never adopted.
            await #expect { try await mine.createVolume(VolumeRequest(name: lv("theirs"), requiredBytes: 1)) } throws: {
                ($0 as? StorageError)?.code == .alreadyExists
            }
            try await mine.deleteVolume(id: lv("theirs"))
            #expect(try await theirs.volume(id: lv("theirs")) != nil)
        }
    }

    @Test func capacityAndVolumeGroupSelection() async throws {
        try await withVolumeGroup(megabytes: 64) { small, _ in
            try await withVolumeGroup(megabytes: 128) { big, _ in
                let prefix = String(small.prefix(4))
                let lvm = try LVMBackend(configuration: .init(driverName: driver, volumeGroupPattern: "\(prefix)[a-z0-9]+"))
                let groups = try await lvm.volumeGroups().map(\.name)
                #expect(groups.contains(small) && groups.contains(big))
                let capacity = try await lvm.capacity(parameters: [LVMBackend.Parameter.volumeGroup: big])
                #expect(capacity == 124 << 20)
                #expect(try await lvm.capacity(parameters: [LVMBackend.Parameter.volumeGroup: small]) == 60 << 20)
                // The pattern picks the matching VG with the most free space.
                let volume = try await lvm.createVolume(
                    VolumeRequest(
                        name: lv("placed"), requiredBytes: 1, parameters: [LVMBackend.Parameter.volumeGroupPattern: "(\(small)|\(big))"]))
                #expect(volume.location == "\(big)/\(lv("placed"))")
                await #expect { try await lvm.capacity(parameters: ["bogus": "1"]) } throws: {
                    ($0 as? StorageError)?.code == .invalidArgument
                }
                await #expect { try await lvm.capacity(parameters: [LVMBackend.Parameter.volumeGroupPattern: "("]) } throws: {
                    ($0 as? StorageError)?.code == .invalidArgument
                }
                await #expect { try await lvm.capacity(parameters: [LVMBackend.Parameter.volumeGroup: "-x"]) } throws: {
                    ($0 as? StorageError)?.code == .invalidName
                }
                _ = try await lvm.deleteVolume(id: lv("placed"))
            }
        }
    }

    @Test func snapshotsAreCreatedListedAndDeleted() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let volume = try await lvm.createVolume(VolumeRequest(name: lv("pvc-origin"), requiredBytes: 8 << 20))
            let snap = try await lvm.createSnapshot(name: lv("snapshot-1"), sourceVolumeID: volume.id)
            #expect(snap.sourceVolumeID == volume.id)
            #expect(snap.name == lv("snapshot-1"))
            #expect(snap.readyToUse)
            #expect(snap.sizeBytes == 8 << 20)
            #expect(snap.creationTime > 1_700_000_000)
            #expect(try await lvm.createSnapshot(name: lv("snapshot-1"), sourceVolumeID: volume.id) == snap)
            #expect(try await lvm.listSnapshots() == [snap])
            #expect(try await lvmTool(["lvs", "--noheadings", "-o", "origin", "\(vg)/\(snap.id)"]).output.trimmed() == volume.id)
            let other = try await lvm.createVolume(VolumeRequest(name: lv("pvc-other"), requiredBytes: 4 << 20))
            await #expect { try await lvm.createSnapshot(name: lv("snapshot-1"), sourceVolumeID: other.id) } throws: {
                ($0 as? StorageError)?.code == .alreadyExists
            }
            await #expect { try await lvm.createSnapshot(name: lv("snapshot-2"), sourceVolumeID: "missing") } throws: {
                ($0 as? StorageError)?.code == .notFound
            }
            // The origin cannot go while a snapshot depends on it.
            await #expect { try await lvm.deleteVolume(id: volume.id) } throws: { ($0 as? StorageError)?.code == .busy }
            if !(await lvm.activationAvailable) {
                await #expect {
                    try await lvm.createVolume(VolumeRequest(name: lv("restored"), requiredBytes: 8 << 20, sourceSnapshotID: snap.id))
                } throws: {
                    ($0 as? StorageError)?.code == .unsupported
                }
            }
            try await lvm.deleteSnapshot(id: snap.id)
            try await lvm.deleteSnapshot(id: snap.id)
            #expect(try await lvm.listSnapshots().isEmpty)
            try await lvm.deleteVolume(id: volume.id)
        }
    }

    /// A group snapshot: one tagged member per source, read back from the tags; idempotent on the
    /// name; members go with the group only; a group cut short is hidden and taken again.
    @Test func groupSnapshotsAreMembersTaggedWithTheGroup() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let a = try await lvm.createVolume(VolumeRequest(name: lv("pvc-ga"), requiredBytes: 4 << 20))
            let b = try await lvm.createVolume(VolumeRequest(name: lv("pvc-gb"), requiredBytes: 8 << 20))
            let name = lv("group-1")
            let group = try await lvm.createGroupSnapshot(name: name, sourceVolumeIDs: [b.id, a.id])
            #expect(group.id == name)
            #expect(group.name == name)
            #expect(group.snapshots.map(\.sourceVolumeID).sorted() == [a.id, b.id].sorted())
            #expect(group.snapshots.allSatisfy { $0.groupSnapshotID == name && $0.readyToUse && $0.creationTime == group.creationTime })
            #expect(group.readyToUse)
            #expect(try await lvm.createGroupSnapshot(name: name, sourceVolumeIDs: [a.id, b.id]) == group)
            #expect(try await lvm.groupSnapshot(id: name) == group)
            #expect(try await lvm.listSnapshots().filter { $0.groupSnapshotID == name }.count == 2)
            let member = group.snapshots[0]
            #expect(try await lvm.snapshot(id: member.id) == member)
            let tags = try await lvmTool(["lvs", "--noheadings", "-o", "lv_tags", "\(vg)/\(member.id)"]).output
            #expect(tags.contains("csi.swift-csi.io/group=\(name)") && tags.contains("csi.swift-csi.io/group-size=2"), "\(tags)")

            await #expect { try await lvm.createGroupSnapshot(name: name, sourceVolumeIDs: [a.id]) } throws: {
                ($0 as? StorageError)?.code == .alreadyExists
            }
            await #expect { try await lvm.createGroupSnapshot(name: lv("group-2"), sourceVolumeIDs: [a.id, "missing"]) } throws: {
                ($0 as? StorageError)?.code == .notFound
            }
            await #expect { try await lvm.createGroupSnapshot(name: lv("group-2"), sourceVolumeIDs: [a.id, a.id]) } throws: {
                ($0 as? StorageError)?.code == .invalidArgument
            }
            await #expect { try await lvm.deleteSnapshot(id: member.id) } throws: { ($0 as? StorageError)?.code == .invalidArgument }
            await #expect { try await lvm.deleteVolume(id: a.id) } throws: { ($0 as? StorageError)?.code == .busy }

            // Cut short: one member gone, as if the driver died before taking it.
            try await lvmTool(["lvremove", "-f", "\(vg)/\(group.snapshots[1].id)"])
            #expect(try await lvm.groupSnapshot(id: name) == nil)
            #expect(try await lvm.snapshot(id: member.id) == nil)
            #expect(try await lvm.listSnapshots().allSatisfy { $0.groupSnapshotID != name })
            let again = try await lvm.createGroupSnapshot(name: name, sourceVolumeIDs: [a.id, b.id])
            #expect(again.snapshots.map(\.id) == group.snapshots.map(\.id))
            #expect(try await lvm.groupSnapshot(id: name) == again)

            try await lvm.deleteGroupSnapshot(id: name)
            try await lvm.deleteGroupSnapshot(id: name)
            #expect(try await lvm.listSnapshots().isEmpty)
            #expect(try await lvm.groupSnapshot(id: name) == nil)
            try await lvm.deleteVolume(id: a.id)
            try await lvm.deleteVolume(id: b.id)
        }
    }

    @Test func interruptedSnapshotIsCompletedOnRetry() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let volume = try await lvm.createVolume(VolumeRequest(name: "pvc-int", requiredBytes: 4 << 20))
            // The first half of the two-step creation, as if the driver died after it.
            try await lvmTool([
                "lvcreate", "-an", "-Zn", "-L", "4m", "-n", lv("snap-int"),
                "--addtag", "csi.swift-csi.io/owner=\(driver)", "--addtag", "csi.swift-csi.io/kind=snapshot",
                "--addtag", "csi.swift-csi.io/name=\(lv("snap-int"))", "--addtag", "csi.swift-csi.io/source=\(volume.id)", vg,
            ])
            let snap = try await lvm.createSnapshot(name: lv("snap-int"), sourceVolumeID: volume.id)
            #expect(snap.readyToUse)
            #expect(try await lvmTool(["lvs", "--noheadings", "-o", "origin", "\(vg)/\(lv("snap-int"))"]).output.trimmed() == volume.id)
        }
    }

    /// What a driver killed while copying a snapshot into a thick volume leaves: the LV with every
    /// tag of the restore and the restoring mark. It is reported abnormal, never handed out, and
    /// removed when its snapshot is gone.
    @Test func anIncompleteRestoreIsNeverHandedOut() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let origin = try await lvm.createVolume(VolumeRequest(name: lv("pvc-origin"), requiredBytes: 8 << 20))
            let snap = try await lvm.createSnapshot(name: lv("snap-origin"), sourceVolumeID: origin.id)
            let name = lv("pvc-partial")
            try await lvmTool(
                ["lvcreate", "-an", "-Zn", "-L", "8m", "-n", name] + volumeTags + [
                    "--addtag", "csi.swift-csi.io/name=\(name)", "--addtag", "csi.swift-csi.io/source=\(snap.id)",
                    "--addtag", "csi.swift-csi.io/restoring", vg,
                ])
            let partial = try #require(try await lvm.volume(id: name))
            #expect(partial.condition.abnormal)
            #expect(partial.condition.message.contains("still being restored from snapshot \(snap.id)"), "\(partial.condition.message)")
            #expect(try await lvm.listVolumes().first { $0.id == name }?.condition == partial.condition)
            // No device for the node, and no snapshot of half the data.
            await #expect { try await lvm.device(forVolume: name) } throws: { ($0 as? StorageError)?.code == .busy }
            await #expect { try await lvm.createSnapshot(name: lv("snap-partial"), sourceVolumeID: name) } throws: {
                ($0 as? StorageError)?.code == .busy
            }
            let request = VolumeRequest(name: name, requiredBytes: 8 << 20, sourceSnapshotID: snap.id)
            let tags = { try await lvmTool(["lvs", "--noheadings", "-o", "lv_tags", "\(vg)/\(name)"]).output }
            if await lvm.activationAvailable {
                // The repeat copies the snapshot again and hands the volume out only then.
                let restored = try await lvm.createVolume(request)
                #expect(!restored.condition.abnormal)
                #expect(try await !tags().contains("restoring"))
                try await lvmTool(["lvchange", "--addtag", "csi.swift-csi.io/restoring", "\(vg)/\(name)"])
            } else {
                // Copying needs device nodes: refused, and the mark stays.
                await #expect { try await lvm.createVolume(request) } throws: { ($0 as? StorageError)?.code == .unsupported }
                #expect(try await tags().contains("csi.swift-csi.io/restoring"))
            }
            // Its snapshot gone, the repeat removes the partial volume and answers not found.
            try await lvm.deleteSnapshot(id: snap.id)
            await #expect { try await lvm.createVolume(request) } throws: { error in
                guard let error = error as? StorageError else { return false }
                return error.code == .notFound && error.message.contains(snap.id)
            }
            #expect(try await lvm.volume(id: name) == nil)
            #expect(try await lvmTool(["lvs", "--noheadings", "-o", "lv_name", vg]).output.trimmed() == origin.id)
        }
    }

    /// A clone of a thick volume: copied where device nodes exist, refused with nothing left where
    /// not; recorded as a clone; only in its source's volume group; the CSI conflicts and ranges.
    @Test func clonesOfThickVolumes() async throws {
        try await withVolumeGroup { vg, _ in
            try await withVolumeGroup(megabytes: 64) { otherVG, _ in
                let lvm = try LVMBackend(configuration: .init(driverName: driver, volumeGroupPattern: "\(vg)|\(otherVG)"))
                let source = try await lvm.createVolume(
                    VolumeRequest(name: lv("pvc-src"), requiredBytes: 8 << 20, parameters: [LVMBackend.Parameter.volumeGroup: vg]))
                let name = lv("pvc-copy")
                let request = VolumeRequest(name: name, requiredBytes: 4 << 20, sourceVolumeID: source.id)
                await #expect {
                    try await lvm.createVolume(
                        VolumeRequest(
                            name: name, requiredBytes: 4 << 20, sourceVolumeID: source.id,
                            parameters: [LVMBackend.Parameter.volumeGroup: otherVG]))
                } throws: { error in
                    guard let error = error as? StorageError else { return false }
                    return error.code == .invalidArgument && error.message.contains("volume \(vg)/\(source.id)")
                }
                await #expect {
                    try await lvm.createVolume(VolumeRequest(name: name, requiredBytes: 0, limitBytes: 4 << 20, sourceVolumeID: source.id))
                } throws: { ($0 as? StorageError)?.code == .outOfRange }
                await #expect {
                    try await lvm.createVolume(VolumeRequest(name: name, requiredBytes: 4 << 20, sourceVolumeID: lv("pvc-none")))
                } throws: { ($0 as? StorageError)?.code == .notFound }
                #expect(try await lvm.volume(id: name) == nil)
                if await lvm.activationAvailable {
                    let clone = try await lvm.createVolume(request)
                    #expect(clone.sourceVolumeID == source.id && clone.sourceSnapshotID == nil && clone.capacityBytes == 8 << 20)
                    #expect(try await lvm.createVolume(request) == clone)
                    #expect(try await lvm.volume(id: name)?.sourceVolumeID == source.id)
                    let tags = try await lvmTool(["lvs", "--noheadings", "-o", "lv_tags", "\(vg)/\(name)"]).output
                    #expect(tags.contains("csi.swift-csi.io/source=\(source.id)") && tags.contains("csi.swift-csi.io/source-kind=volume"))
                    #expect(!tags.contains("restoring"))
                    let other = try await lvm.createVolume(VolumeRequest(name: lv("pvc-src2"), requiredBytes: 4 << 20))
                    for conflicting in [
                        VolumeRequest(name: name, requiredBytes: 4 << 20, sourceVolumeID: other.id),
                        VolumeRequest(name: name, requiredBytes: 4 << 20),
                    ] {
                        await #expect { try await lvm.createVolume(conflicting) } throws: { ($0 as? StorageError)?.code == .alreadyExists }
                    }
                } else {
                    await #expect { try await lvm.createVolume(request) } throws: { error in
                        guard let error = error as? StorageError else { return false }
                        return error.code == .unsupported && error.message.contains("volume \(vg)/\(source.id)")
                    }
                    #expect(try await lvm.volume(id: name) == nil)
                }
            }
        }
    }

    /// What a driver killed while copying a thick volume into its clone leaves: reported abnormal,
    /// never handed out or cloned again, and removed when its source is gone.
    @Test func anIncompleteCloneIsNeverHandedOut() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let origin = try await lvm.createVolume(VolumeRequest(name: lv("pvc-orig"), requiredBytes: 8 << 20))
            let name = lv("pvc-halfclone")
            try await lvmTool(
                ["lvcreate", "-an", "-Zn", "-L", "8m", "-n", name] + volumeTags + [
                    "--addtag", "csi.swift-csi.io/name=\(name)", "--addtag", "csi.swift-csi.io/source=\(origin.id)",
                    "--addtag", "csi.swift-csi.io/source-kind=volume", "--addtag", "csi.swift-csi.io/restoring", vg,
                ])
            let partial = try #require(try await lvm.volume(id: name))
            #expect(partial.sourceVolumeID == origin.id && partial.sourceSnapshotID == nil)
            #expect(partial.condition.abnormal)
            #expect(partial.condition.message.contains("still being cloned from volume \(origin.id)"), "\(partial.condition.message)")
            await #expect { try await lvm.device(forVolume: name) } throws: { ($0 as? StorageError)?.code == .busy }
            await #expect {
                try await lvm.createVolume(VolumeRequest(name: lv("pvc-of-half"), requiredBytes: 8 << 20, sourceVolumeID: name))
            } throws: { ($0 as? StorageError)?.code == .busy }
            let request = VolumeRequest(name: name, requiredBytes: 8 << 20, sourceVolumeID: origin.id)
            let tags = { try await lvmTool(["lvs", "--noheadings", "-o", "lv_tags", "\(vg)/\(name)"]).output }
            if await lvm.activationAvailable {
                let finished = try await lvm.createVolume(request)
                #expect(!finished.condition.abnormal)
                #expect(try await !tags().contains("restoring"))
                try await lvmTool(["lvchange", "--addtag", "csi.swift-csi.io/restoring", "\(vg)/\(name)"])
            } else {
                await #expect { try await lvm.createVolume(request) } throws: { ($0 as? StorageError)?.code == .unsupported }
                #expect(try await tags().contains("csi.swift-csi.io/restoring"))
            }
            // The same name asked as a restore from a snapshot is another volume.
            await #expect {
                try await lvm.createVolume(VolumeRequest(name: name, requiredBytes: 8 << 20, sourceSnapshotID: origin.id))
            } throws: { ($0 as? StorageError)?.code == .alreadyExists }
            try await lvm.deleteVolume(id: origin.id)
            await #expect { try await lvm.createVolume(request) } throws: { error in
                guard let error = error as? StorageError else { return false }
                return error.code == .notFound && error.message.contains(origin.id)
            }
            #expect(try await lvm.volume(id: name) == nil)
        }
    }

    @Test func thinPoolsAndDeviceNodes() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            let volume = try await lvm.createVolume(VolumeRequest(name: lv("pvc-dev"), requiredBytes: 1))
            let device = try await lvm.device(forVolume: volume.id)
            if await lvm.activationAvailable {
                // /dev/<vg>/<lv> where udev runs, /dev/mapper/<vg>-<lv> otherwise.
                #expect(device == .node("/dev/\(vg)/\(lv("pvc-dev"))") || device == .node("/dev/mapper/\(vg)-\(lv("pvc-dev").split(separator: "-").joined(separator: "--"))"))
            } else {
                guard case .unavailable(let reason) = device else {
                    Issue.record("expected no device node, got \(device)")
                    return
                }
                #expect(reason.contains("\(vg)/\(lv("pvc-dev"))") && reason.contains("device-mapper"))
                // Thin pools need device-mapper too; the failure says so.
                #expect(try await lvm.capacity(parameters: [LVMBackend.Parameter.thinPool: "pool0"]) == 0)
                await #expect {
                    try await lvm.createVolume(
                        VolumeRequest(name: "thin1", requiredBytes: 1, parameters: [LVMBackend.Parameter.thinPool: "pool0"]))
                } throws: {
                    ($0 as? StorageError)?.code == .notFound
                }
            }
            await #expect { try await lvm.device(forVolume: "missing") } throws: { ($0 as? StorageError)?.code == .notFound }
            try await lvm.probe()
            let nothing = try LVMBackend(configuration: .init(driverName: driver, volumeGroup: "no-such-vg-\(uniqueSuffix())"))
            await #expect { try await nothing.probe() } throws: { ($0 as? StorageError)?.code == .notFound }
        }
    }

    @Test func healthComesFromLvAttr() {
        let base = LogicalVolume(
            name: "lv", volumeGroup: "vg", uuid: "", sizeBytes: 0, attributes: "-wi-a-----", tags: [], origin: "", pool: "",
            dataPercent: nil, healthStatus: "", segmentType: "linear")
        #expect(base.condition(in: nil) == .healthy)
        var partial = base
        partial.attributes = "-wi-a---p-"
        partial.healthStatus = "partial"
        #expect(partial.condition(in: nil).abnormal)
        #expect(partial.condition(in: nil).message.contains("missing"))
        var invalid = base
        invalid.attributes = "swi-I-s---"
        #expect(invalid.condition(in: nil).message.contains("invalid"))
        let group = VolumeGroup(name: "vg", sizeBytes: 0, freeBytes: 0, extentBytes: 4, sequenceNumber: 1, missingPhysicalVolumes: 1)
        #expect(base.condition(in: group).abnormal)
    }

    /// A change made with the lvm tools is visible through the cache within one second, while
    /// repeated reads are answered from memory.
    @Test func outOfBandChangesShowWithinOneSecond() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            _ = try await lvm.listVolumes()
            try await lvmTool(["lvcreate", "-an", "-Zn", "-L", "4m", "-n", lv("oob")] + volumeTags + [vg])
            let created = ContinuousClock.now
            while try await lvm.volume(id: lv("oob")) == nil {
                #expect(ContinuousClock.now - created < .seconds(1), "lvcreate not visible after 1 s")
                if ContinuousClock.now - created > .seconds(2) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(ContinuousClock.now - created < .seconds(1))
            let freeBefore = try await lvm.capacity(parameters: [:])
            try await lvmTool(["lvremove", "-f", "\(vg)/\(lv("oob"))"])
            let removed = ContinuousClock.now
            while try await lvm.volume(id: lv("oob")) != nil {
                if ContinuousClock.now - removed > .seconds(2) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(ContinuousClock.now - removed < .seconds(1))
            #expect(try await lvm.capacity(parameters: [:]) == freeBefore + (4 << 20))
        }
    }

    /// A create planned from a stale cache (an LV made behind its back, with no backup written)
    /// is checked against LVM before it answers.
    @Test func createFromAStaleCacheIsVerified() async throws {
        try await withVolumeGroup { vg, _ in
            // Notices from a directory nobody writes: LVM activity elsewhere on the machine (other tests'
            // volume groups) writes /etc/lvm/backup and would refresh the cache this test needs stale.
            let lvm = try LVMBackend(
                configuration: .init(driverName: driver, volumeGroup: vg, cacheMaximumAge: .seconds(60)),
                metadataDirectory: "/nonexistent-\(uniqueSuffix())")
            #expect(try await lvm.listVolumes().isEmpty)
            let tags = volumeTags + ["--addtag", "csi.swift-csi.io/name=\(lv("pvc-stale"))"]
            // No backup and no archive: no inotify notice reaches the cache.
            try await lvmTool(
                ["lvcreate", "--config", "backup { backup = 0 archive = 0 }", "-an", "-Zn", "-L", "8m", "-n", lv("pvc-stale")] + tags + [vg])
            #expect(try await lvm.volume(id: lv("pvc-stale")) == nil)  // stale, as intended
            let volume = try await lvm.createVolume(VolumeRequest(name: lv("pvc-stale"), requiredBytes: 8 << 20))
            #expect(volume.capacityBytes == 8 << 20 && volume.location == "\(vg)/\(lv("pvc-stale"))")
            await #expect { try await lvm.createVolume(VolumeRequest(name: lv("pvc-stale"), requiredBytes: 16 << 20)) } throws: {
                ($0 as? StorageError)?.code == .alreadyExists
            }
        }
    }

    /// With the metadata backups switched off (no inotify notice), the age limit alone bounds staleness.
    @Test func ageLimitBoundsStalenessWithoutNotices() async throws {
        try await withVolumeGroup { vg, _ in
            let lvm = try backend(vg)
            _ = try await lvm.listVolumes()
            try await lvmTool(
                ["lvcreate", "--config", "backup { backup = 0 archive = 0 }", "-an", "-Zn", "-L", "4m", "-n", lv("quiet")] + volumeTags + [vg])
            let created = ContinuousClock.now
            while try await lvm.volume(id: lv("quiet")) == nil {
                if ContinuousClock.now - created > .seconds(2) { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(ContinuousClock.now - created < .seconds(1))
        }
    }
}

/// liblvm2cmd changes process-wide state (umask 0077, setlocale); the client puts it back.
@Suite(.serialized, .enabled(if: isRoot, rootReason))
struct LVMProcessStateTests {
    @Test func umaskAndLocaleSurviveLVMCommands() async throws {
        let lvm = LVM.shared
        _ = try await lvm.run(LVMCommand([LVMWord("vgs")]))
        // Read on the LVM thread, so no other suite's command is half-way through.
        let (mask, locale) = await lvm.betweenCommands { () -> (mode_t, String?) in
            let mask = umask(0o022)
            umask(mask)
            return (mask, setlocale(LC_ALL, nil).map { String(cString: $0) })
        }
        #expect(mask == lvm.processState.umask)
        #expect(mask != 0o077 || lvm.processState.umask == 0o077)
        #expect(locale == lvm.processState.locale)
    }

    /// The handle closed while idle (lvm2_exit, library unloaded) opens again for the next command,
    /// which sees a volume group made meanwhile by another process; process-wide state survives.
    @Test func releasedHandleReopensForTheNextCommand() async throws {
        let lvm = LVM.shared
        func names() async throws -> Set<String> {
            let rows = try await lvm.report(
                LVMCommand([LVMWord("vgs"), LVMWord("-o"), LVMWord(VGRow.fields)]), key: "vg", as: VGRow.self)
            return Set(rows.map(\.vg_name))
        }
        _ = try await names()
        let before = await lvm.handleState
        await lvm.releaseHandle()
        try await withVolumeGroup(megabytes: 64) { vg, _ in
            let listed = try await names()
            #expect(listed.contains(vg))
            // Other suites' commands may reopen it first; either way it was opened again.
            let reopened = await lvm.handleState
            #expect(reopened.open)
            #expect(reopened.opened > before.opened)
            // Released again mid-way, the next command still finds the group.
            await lvm.releaseHandle()
            let again = try await names()
            #expect(again.contains(vg))
        }
        let (mask, locale) = await lvm.betweenCommands { () -> (mode_t, String?) in
            let mask = umask(0o022)
            umask(mask)
            return (mask, setlocale(LC_ALL, nil).map { String(cString: $0) })
        }
        #expect(mask == lvm.processState.umask)
        #expect(locale == lvm.processState.locale)
    }
}

@Suite(.serialized, .enabled(if: isRoot, rootReason))
struct LVMStateCacheTests {
    /// Many readers arriving while the state is stale share one LVM scan.
    @Test func concurrentReadersShareOneLoad() async throws {
        let cache = LVMStateCache(lvm: LVM.shared, lvmDirectory: "/nonexistent-\(uniqueSuffix())", maximumAge: .seconds(30))
        _ = try await cache.state()
        #expect(cache.loads.load(ordering: .relaxed) == 1)
        cache.invalidate()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { _ = try await cache.state() } }
            try await group.waitForAll()
        }
        #expect(cache.loads.load(ordering: .relaxed) == 2)
        // A cached answer costs no load; fresh() always asks LVM.
        _ = try await cache.state()
        _ = try await cache.fresh()
        #expect(cache.loads.load(ordering: .relaxed) == 3)
    }
}
