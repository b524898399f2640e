import RPCCore
import CSI
import Glibc
import H2
import Storage
import Testing

@testable import CSIDriverKit

/// The node service over a fake backend and a fake mounter: no root, no mounts, no devices. The
/// only real path is an empty kubelet directory the path policy resolves against.
@Suite struct NodeServerTests {
    /// The service, its fakes and the paths a kubelet would use.
    struct Fixture {
        let node: NodeServer
        let backend = FakeBackend()
        let mounter = FakeMounter()
        let encryptor = FakeEncryptor()
        let kubelet: String
        var staging: String { kubelet + "/plugins/kubernetes.io/csi/staging/pv1/globalmount" }
        var target: String { kubelet + "/pods/uid-1/volumes/kubernetes.io~csi/pv1/mount" }
        var blockTarget: String { kubelet + "/plugins/kubernetes.io/csi/volumeDevices/publish/pv1/uid-1" }

        init(kubelet: String, throttle: (any IOThrottle)? = nil) throws {
            let paths = try KubeletPathPolicy(kubeletDirectory: kubelet)
            self.kubelet = paths.realDirectory
            var options = DriverOptions(name: "fake.csi.example.com", version: "1.2.3", nodeID: "node-7")
            options.topology = ["topology.fake.csi.example.com/node": "node-7"]
            options.maxVolumesPerNode = 12
            node = NodeServer(options: options, backend: backend, mounter: mounter, encryptor: encryptor, paths: paths, throttle: throttle)
            // Volume "vol-1" is block device 253:4; "dir-1" is a directory.
            backend.add("vol-1", device: .node("/dev/fake0"))
            mounter.addDevice("/dev/fake0", DeviceNumber(major: 253, minor: 4))
            backend.add("dir-1", device: .directory("/srv/volumes/dir-1"), bytes: 5 << 20)
            mounter.addDirectory("/srv/volumes/dir-1")
            backend.add("gone-1", device: .unavailable(reason: "device-mapper is not available"))
            // "enc-1" is encrypted: device 253:5, opened as /dev/mapper/luks-enc-1 (253:9).
            backend.add("enc-1", device: .node("/dev/fake1"), encryption: .luks2)
            mounter.addDevice("/dev/fake1", DeviceNumber(major: 253, minor: 5))
            mounter.addDevice("/dev/mapper/luks-enc-1", DeviceNumber(major: 253, minor: 9))
        }
    }

    static func withFixture(throttle: (any IOThrottle)? = nil, _ body: (Fixture) async throws -> Void) async throws {
        let dir = DriverProcessTests.temporaryDirectory()
        defer { removeTree(dir) }
        try await body(try Fixture(kubelet: dir, throttle: throttle))
    }

    static let context = ServerContext(method: GRPCMethodDescriptor(service: "csi.v1.Node", method: "x", kind: .unary))

    static func mountCapability(fsType: String = "", mode: VolumeCapability.AccessMode.Mode = .singleNodeWriter) -> VolumeCapability {
        RequestValidationTests.capability(mode, fsType: fsType)
    }

    static func stage(
        _ f: Fixture, _ id: String, _ capability: VolumeCapability = mountCapability(), path: String? = nil,
        secrets: [String: String] = [:]
    ) async throws {
        var request = NodeStageVolumeRequest()
        request.volumeID = id
        request.secrets = secrets
        request.stagingTargetPath = path ?? f.staging
        request.volumeCapability = capability
        _ = try await f.node.nodeStageVolume(request, context: context)
    }

    static func unstage(_ f: Fixture, _ id: String) async throws {
        var request = NodeUnstageVolumeRequest()
        request.volumeID = id
        request.stagingTargetPath = f.staging
        _ = try await f.node.nodeUnstageVolume(request, context: context)
    }

    static func publish(
        _ f: Fixture, _ id: String, _ capability: VolumeCapability = mountCapability(), target: String? = nil, readOnly: Bool = false
    ) async throws {
        var request = NodePublishVolumeRequest()
        request.volumeID = id
        request.stagingTargetPath = f.staging
        request.targetPath = target ?? f.target
        request.volumeCapability = capability
        request.readonly = readOnly
        _ = try await f.node.nodePublishVolume(request, context: context)
    }

    static func unpublish(_ f: Fixture, _ id: String, target: String? = nil) async throws {
        var request = NodeUnpublishVolumeRequest()
        request.volumeID = id
        request.targetPath = target ?? f.target
        _ = try await f.node.nodeUnpublishVolume(request, context: context)
    }

    /// The code of the RPCError `body` throws (nil when it succeeds or throws something else).
    static func code(_ body: () async throws -> Void) async -> RPCError.Code? {
        do { try await body() } catch let error as RPCError { return error.code } catch { return nil }
        return nil
    }

    @Test func nodeGetInfoReportsTheOptions() async throws {
        try await Self.withFixture { f in
            let info = try await f.node.nodeGetInfo(NodeGetInfoRequest(), context: Self.context)
            #expect(info.nodeID == "node-7")
            #expect(info.maxVolumesPerNode == 12)
            #expect(info.accessibleTopology?.segments == ["topology.fake.csi.example.com/node": "node-7"])
        }
    }

    /// Stage formats a blank device once and mounts it; a repeat changes nothing. Publish binds the
    /// staged filesystem once; unpublish and unstage undo it and may be repeated.
    @Test func theWholeLifeIsIdempotent() async throws {
        try await Self.withFixture { f in
            try await Self.stage(f, "vol-1")
            try await Self.stage(f, "vol-1")
            #expect(f.mounter.calls == ["mkfs /dev/fake0 ext4", "mount /dev/fake0 \(f.staging)"])
            try await Self.publish(f, "vol-1")
            try await Self.publish(f, "vol-1")
            #expect(f.mounter.calls.suffix(1) == ["bind \(f.staging) \(f.target) rw"])
            #expect(f.mounter.calls.count == 3)
            try await Self.unpublish(f, "vol-1")
            try await Self.unpublish(f, "vol-1")
            #expect(f.mounter.calls.suffix(1) == ["umount \(f.target)"])
            #expect(try await f.mounter.status(of: f.target) == nil, "the target is removed")
            try await Self.unstage(f, "vol-1")
            try await Self.unstage(f, "vol-1")
            #expect(f.mounter.calls.suffix(1) == ["umount \(f.staging)"])
            #expect(f.mounter.calls.count == 5)
            #expect(try await f.mounter.mounts().isEmpty)
            // The staging directory belongs to the CO: it stays.
            #expect(try await f.mounter.status(of: f.staging)?.kind == .directory)
        }
    }

    /// An encrypted volume is opened (formatted the first time) with the node-stage secret's
    /// passphrase; the filesystem is made and mounted on the mapping; unstage closes it.
    @Test func anEncryptedVolumeLivesOnItsMapping() async throws {
        try await Self.withFixture { f in
            #expect(await Self.code { try await Self.stage(f, "enc-1") } == .invalidArgument)
            #expect(await Self.code { try await Self.stage(f, "enc-1", secrets: ["password": "x"]) } == .invalidArgument)
            #expect(f.encryptor.calls.isEmpty && f.mounter.calls.isEmpty)
            #expect(await Self.code { try await Self.stage(f, "enc-1", secrets: ["passphrase": "wrong"]) } == .invalidArgument)
            #expect(f.mounter.calls.isEmpty, "nothing is formatted or mounted after a wrong passphrase")
            try await Self.stage(f, "enc-1", secrets: ["passphrase": "s3cret"])
            try await Self.stage(f, "enc-1", secrets: ["passphrase": "s3cret"])
            #expect(f.mounter.calls == ["mkfs /dev/mapper/luks-enc-1 ext4", "mount /dev/mapper/luks-enc-1 \(f.staging)"])
            try await Self.publish(f, "enc-1")
            #expect(f.mounter.calls.suffix(1) == ["bind \(f.staging) \(f.target) rw"])
            try await Self.unpublish(f, "enc-1")
            try await Self.unstage(f, "enc-1")
            try await Self.unstage(f, "enc-1")
            #expect(f.encryptor.calls.filter { $0.hasPrefix("close") } == ["close enc-1"])
            #expect(await Self.code { try await Self.publish(f, "enc-1") } == .failedPrecondition)
            // A plain volume is never handed to the encryptor.
            try await Self.stage(f, "vol-1", secrets: ["passphrase": "s3cret"])
            #expect(!f.encryptor.calls.contains { $0.contains("vol-1") && $0.hasPrefix("open") })
        }
    }

    @Test func anExistingFilesystemIsKeptAndNeverFormattedOver() async throws {
        try await Self.withFixture { f in
            _ = try await f.mounter.makeFilesystem(on: "/dev/fake0", fsType: "xfs")
            let code = await Self.code { try await Self.stage(f, "vol-1", Self.mountCapability(fsType: "ext4")) }
            #expect(code == .failedPrecondition)
            try await Self.stage(f, "vol-1")
            #expect(f.mounter.calls == ["mkfs /dev/fake0 xfs", "mount /dev/fake0 \(f.staging)"])
            #expect(try await f.mounter.mounts().first?.fsType == "xfs")
        }
    }

    @Test func stagingAgainWithAnotherCapabilityIsAlreadyExists() async throws {
        try await Self.withFixture { f in
            try await Self.stage(f, "vol-1")
            let code = await Self.code { try await Self.stage(f, "vol-1", Self.mountCapability(mode: .singleNodeReaderOnly)) }
            #expect(code == .alreadyExists)
            let other = await Self.code { try await Self.stage(f, "vol-1", Self.mountCapability(fsType: "xfs")) }
            #expect(other == .alreadyExists)
        }
    }

    @Test func somethingElseAtTheStagingPathIsAlreadyExists() async throws {
        try await Self.withFixture { f in
            f.mounter.addMount(source: "/dev/sdz", number: DeviceNumber(major: 8, minor: 16), at: f.staging)
            let code = await Self.code { try await Self.stage(f, "vol-1") }
            #expect(code == .alreadyExists)
            #expect(!f.mounter.calls.contains { $0.hasPrefix("mkfs") })
        }
    }

    @Test func publishBeforeStageIsAFailedPrecondition() async throws {
        try await Self.withFixture { f in
            let code = await Self.code { try await Self.publish(f, "vol-1") }
            #expect(code == .failedPrecondition)
            let directory = await Self.code { try await Self.publish(f, "dir-1") }
            #expect(directory == .failedPrecondition)
            #expect(f.mounter.calls.isEmpty)
        }
    }

    @Test func publishingReadOnlyOverReadWriteIsAlreadyExists() async throws {
        try await Self.withFixture { f in
            try await Self.stage(f, "vol-1")
            try await Self.publish(f, "vol-1")
            let code = await Self.code { try await Self.publish(f, "vol-1", readOnly: true) }
            #expect(code == .alreadyExists)
        }
    }

    @Test func unknownVolumesAreNotFound() async throws {
        try await Self.withFixture { f in
            #expect(await Self.code { try await Self.stage(f, "vol-9") } == .notFound)
            #expect(await Self.code { try await Self.publish(f, "vol-9") } == .notFound)
            #expect(await Self.code { try await Self.unpublish(f, "vol-9") } == .notFound)
            #expect(await Self.code { try await Self.unstage(f, "vol-9") } == .notFound)
            var stats = NodeGetVolumeStatsRequest()
            stats.volumeID = "vol-9"
            stats.volumePath = f.target
            #expect(await Self.code { _ = try await f.node.nodeGetVolumeStats(stats, context: Self.context) } == .notFound)
            #expect(f.mounter.calls.isEmpty)
        }
    }

    @Test func aVolumeWithoutDeviceIsAFailedPrecondition() async throws {
        try await Self.withFixture { f in
            #expect(await Self.code { try await Self.stage(f, "gone-1") } == .failedPrecondition)
            #expect(await Self.code { try await Self.publish(f, "gone-1") } == .failedPrecondition)
        }
    }

    /// Paths outside the kubelet directory, relative or with `..`, and missing fields are refused
    /// before anything is looked at.
    @Test func pathsAndFieldsAreChecked() async throws {
        try await Self.withFixture { f in
            for path in ["/etc/cron.d", "relative/path", f.kubelet + "/pods/../../etc", "", f.kubelet] {
                #expect(await Self.code { try await Self.stage(f, "vol-1", path: path) } == .invalidArgument, "\(path)")
                #expect(await Self.code { try await Self.publish(f, "vol-1", target: path) } == .invalidArgument, "\(path)")
                #expect(await Self.code { try await Self.unpublish(f, "vol-1", target: path) } == .invalidArgument, "\(path)")
            }
            #expect(await Self.code { try await Self.stage(f, "") } == .invalidArgument)
            var missingCapability = NodeStageVolumeRequest()
            missingCapability.volumeID = "vol-1"
            missingCapability.stagingTargetPath = f.staging
            #expect(await Self.code { _ = try await f.node.nodeStageVolume(missingCapability, context: Self.context) } == .invalidArgument)
            #expect(f.mounter.calls.isEmpty)
        }
    }

    /// A capability without an access type, or with a mode a local volume cannot have, is
    /// INVALID_ARGUMENT; so is raw block access to a directory volume.
    @Test func wrongAccessTypesAreInvalid() async throws {
        try await Self.withFixture { f in
            var noType = Self.mountCapability()
            noType.accessType = nil
            #expect(await Self.code { try await Self.stage(f, "vol-1", noType) } == .invalidArgument)
            #expect(await Self.code { try await Self.publish(f, "vol-1", noType) } == .invalidArgument)
            let shared = Self.mountCapability(mode: .multiNodeMultiWriter)
            #expect(await Self.code { try await Self.stage(f, "vol-1", shared) } == .invalidArgument)
            let block = RequestValidationTests.capability(.singleNodeWriter, block: true)
            #expect(await Self.code { try await Self.stage(f, "dir-1", block) } == .invalidArgument)
            #expect(await Self.code { try await Self.publish(f, "dir-1", block, target: f.blockTarget) } == .invalidArgument)
            #expect(f.mounter.calls.isEmpty)
        }
    }

    /// Raw block: nothing to stage; the device node is bound to a file whose directory the
    /// service makes (through the mounter).
    @Test func rawBlockPublishesTheDeviceNode() async throws {
        try await Self.withFixture { f in
            let block = RequestValidationTests.capability(.singleNodeWriter, block: true)
            try await Self.stage(f, "vol-1", block)
            #expect(f.mounter.calls.isEmpty)
            try await Self.publish(f, "vol-1", block, target: f.blockTarget)
            try await Self.publish(f, "vol-1", block, target: f.blockTarget)
            let parent = String(f.blockTarget[..<f.blockTarget.lastIndex(of: "/")!])
            #expect(f.mounter.calls == ["mkdir \(parent)", "bind /dev/fake0 \(f.blockTarget) rw"])
            #expect(try await f.mounter.status(of: f.blockTarget)?.representedDevice == DeviceNumber(major: 253, minor: 4))
            try await Self.unpublish(f, "vol-1", target: f.blockTarget)
            #expect(try await f.mounter.status(of: f.blockTarget) == nil)
        }
    }

    /// A directory volume is bind-mounted at the staging path (nothing formatted), then from there
    /// at the target; its size is the backend's.
    @Test func directoryVolumesAreBoundNotFormatted() async throws {
        try await Self.withFixture { f in
            try await Self.stage(f, "dir-1")
            try await Self.stage(f, "dir-1")
            try await Self.publish(f, "dir-1")
            try await Self.publish(f, "dir-1")
            #expect(f.mounter.calls == ["bind /srv/volumes/dir-1 \(f.staging) rw", "bind \(f.staging) \(f.target) rw"])
            let readOnly = await Self.code { try await Self.stage(f, "dir-1", Self.mountCapability(mode: .singleNodeReaderOnly)) }
            #expect(readOnly == .alreadyExists)
            // Another directory at the staging path is not this volume.
            f.mounter.addDirectory("/srv/volumes/dir-2")
            f.backend.add("dir-2", device: .directory("/srv/volumes/dir-2"))
            #expect(await Self.code { try await Self.stage(f, "dir-2") } == .alreadyExists)

            var expand = NodeExpandVolumeRequest()
            expand.volumeID = "dir-1"
            expand.volumePath = f.target
            #expect(try await f.node.nodeExpandVolume(expand, context: Self.context).capacityBytes == 5 << 20)
            var stats = NodeGetVolumeStatsRequest()
            stats.volumeID = "dir-1"
            stats.volumePath = f.target
            let usage = try await f.node.nodeGetVolumeStats(stats, context: Self.context)
            #expect(usage.volumeCondition?.abnormal == false)
            #expect(usage.usage.first?.total == 1 << 30)
            // The device behind a directory volume is the host's: it is not checked.
            #expect(!f.mounter.calls.contains { $0.hasPrefix("check") })
            try await Self.unpublish(f, "dir-1")
            try await Self.unstage(f, "dir-1")
            #expect(try await f.mounter.mounts().isEmpty)
        }
    }

    /// Stats of a mounted device volume check its device; with nothing mounted the condition says so.
    @Test func statsCheckTheDeviceOfAMountedVolume() async throws {
        try await Self.withFixture { f in
            var stats = NodeGetVolumeStatsRequest()
            stats.volumeID = "vol-1"
            stats.volumePath = f.target
            f.mounter.addDirectory(f.target)
            let unmounted = try await f.node.nodeGetVolumeStats(stats, context: Self.context)
            #expect(unmounted.volumeCondition?.abnormal == true)
            #expect(unmounted.volumeCondition?.message.contains("nothing is mounted") == true)
            try await Self.stage(f, "vol-1")
            try await Self.publish(f, "vol-1")
            let usage = try await f.node.nodeGetVolumeStats(stats, context: Self.context)
            #expect(usage.volumeCondition?.abnormal == false)
            #expect(f.mounter.calls.last == "check \(f.target)")
        }
    }

    /// Expansion is online only: a volume path with nothing mounted is a failed precondition; a
    /// mounted one has its filesystem grown.
    @Test func expansionNeedsTheMount() async throws {
        try await Self.withFixture { f in
            var expand = NodeExpandVolumeRequest()
            expand.volumeID = "vol-1"
            expand.volumePath = f.staging
            #expect(await Self.code { _ = try await f.node.nodeExpandVolume(expand, context: Self.context) } == .notFound)
            f.mounter.addDirectory(f.staging)
            #expect(await Self.code { _ = try await f.node.nodeExpandVolume(expand, context: Self.context) } == .failedPrecondition)
            try await Self.stage(f, "vol-1")
            #expect(try await f.node.nodeExpandVolume(expand, context: Self.context).capacityBytes == 1 << 30)
            #expect(f.mounter.calls.last == "resize /dev/fake0")
        }
    }
}
