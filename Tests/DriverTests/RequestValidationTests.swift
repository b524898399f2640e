import CSI
import H2
import Synchronization
import Testing

@testable import Driver

/// Collects log records in memory.
final class MemoryLogSink: DriverLogSink {
    let records = Mutex<[String]>([])
    func write(level: DriverLogLevel, message: String, fields: [(String, String)]) {
        let line = ([message] + fields.map { "\($0)=\($1)" }).joined(separator: " ")
        records.withLock { $0.append(line) }
    }
    var text: String { records.withLock { $0.joined(separator: "\n") } }
}

/// A store with nothing in it: every lookup finds nothing, so validation and NOT_FOUND paths
/// can be checked without storage. Mutations fail loudly, so a test reaching one is a defect.
struct EmptyStore: VolumeStore {
    struct Reached: Error {}
    func probe() async throws {}
    func volume(id: String) async throws -> StoredVolume? { nil }
    func volumes() async throws -> [StoredVolume] { [] }
    func createVolume(_ spec: VolumeSpec) async throws -> StoredVolume { throw Reached() }
    func deleteVolume(id: String) async throws {}
    func expandVolume(id: String, to bytes: Int64, limit: Int64) async throws -> StoredVolume { throw Reached() }
    func availableCapacity(parameters: [String: String]) async throws -> Int64 { 1 << 30 }
    func snapshot(id: String) async throws -> StoredSnapshot? { nil }
    func snapshots() async throws -> [StoredSnapshot] { [] }
    func createSnapshot(name: String, sourceVolumeID: String) async throws -> StoredSnapshot { throw Reached() }
    func deleteSnapshot(id: String) async throws {}
    func devicePath(volumeID: String) async throws -> String { throw Reached() }
}

@Suite struct RequestValidationTests {
    static let configuration: DriverConfiguration = {
        var raw = DriverConfiguration.Raw()
        raw.hostName = "node0"
        raw.volumeGroup = "vg0"
        raw.kubeletDir = "/var/lib/kubelet"
        return try! DriverConfiguration(raw: raw)
    }()

    static func controller(_ sink: MemoryLogSink = MemoryLogSink()) -> ControllerServer {
        ControllerServer(
            configuration: configuration, store: EmptyStore(), locks: VolumeLocks(),
            log: RequestLog(logger: DriverLogger(sink: sink, level: .debug)))
    }

    static func context(_ method: String) -> ServerContext {
        ServerContext(method: GRPCMethodDescriptor(service: "csi.v1.Controller", method: method, kind: .unary))
    }

    static func capability(_ mode: VolumeCapability.AccessMode.Mode, fsType: String = "", block: Bool = false) -> VolumeCapability {
        var capability = VolumeCapability()
        var access = VolumeCapability.AccessMode()
        access.mode = mode
        capability.accessMode = access
        if block {
            capability.accessType = .block(VolumeCapability.BlockVolume())
        } else {
            var mount = VolumeCapability.MountVolume()
            mount.fsType = fsType
            capability.accessType = .mount(mount)
        }
        return capability
    }

    @Test(arguments: [
        (VolumeCapability.AccessMode.Mode.singleNodeWriter, "", false, true),
        (.singleNodeReaderOnly, "xfs", false, true),
        (.singleNodeMultiWriter, "ext4", false, true),
        (.singleNodeSingleWriter, "", true, true),
        (.multiNodeMultiWriter, "", false, false),
        (.multiNodeReaderOnly, "", true, false),
        (.unknown, "", false, false),
        (.singleNodeWriter, "ntfs", false, false),
    ])
    func capabilities(mode: VolumeCapability.AccessMode.Mode, fsType: String, block: Bool, supported: Bool) {
        let reason = CapabilityRules.unsupportedReason(Self.capability(mode, fsType: fsType, block: block))
        #expect((reason == nil) == supported, "\(reason ?? "supported")")
    }

    @Test func capabilityWithoutAccessTypeIsUnsupported() {
        var capability = Self.capability(.singleNodeWriter)
        capability.accessType = nil
        #expect(CapabilityRules.unsupportedReason(capability)?.contains("neither block nor mount") == true)
    }

    @Test func createVolumeValidation() async {
        let controller = Self.controller()
        let good = Self.capability(.singleNodeWriter)
        var cases: [(CreateVolumeRequest, String)] = []
        var r = CreateVolumeRequest()
        r.volumeCapabilities = [good]
        cases.append((r, "name is required"))
        r = CreateVolumeRequest()
        r.name = "pvc-1"
        cases.append((r, "volume_capabilities is required"))
        r.volumeCapabilities = [Self.capability(.multiNodeMultiWriter)]
        cases.append((r, "not supported"))
        r.volumeCapabilities = [good]
        r.parameters = ["color": "blue"]
        cases.append((r, "unknown key 'color'"))
        r.parameters = ["volumeGroup": "-vg"]
        cases.append((r, "not an LVM name"))
        r.parameters = ["volumeGroup": "a", "vgPattern": "b"]
        cases.append((r, "not both"))
        r.parameters = ["fsType": "btrfs"]
        cases.append((r, "'btrfs' is not supported"))
        r.parameters = [:]
        var range = CapacityRange()
        range.requiredBytes = 10
        range.limitBytes = 5
        r.capacityRange = range
        cases.append((r, "more than limit_bytes"))
        for (request, fragment) in cases {
            let error = await #expect(throws: RPCError.self) {
                try await controller.createVolume(request, context: Self.context("CreateVolume"))
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "") lacks \(fragment)")
        }
    }

    @Test func createVolumeOutsideRequisiteTopologyIsExhausted() async {
        var request = CreateVolumeRequest()
        request.name = "pvc-1"
        request.volumeCapabilities = [Self.capability(.singleNodeWriter)]
        var topology = Topology()
        topology.segments = [Self.configuration.topologyKey: "node9"]
        var requirement = TopologyRequirement()
        requirement.requisite = [topology]
        request.accessibilityRequirements = requirement
        let error = await #expect(throws: RPCError.self) {
            try await Self.controller().createVolume(request, context: Self.context("CreateVolume"))
        }
        #expect(error?.code == .resourceExhausted)
    }

    @Test func unknownObjectsAreNotFoundAndDeletesSucceed() async throws {
        let controller = Self.controller()
        var get = ControllerGetVolumeRequest()
        get.volumeID = "pvc-gone"
        let error = await #expect(throws: RPCError.self) { try await controller.controllerGetVolume(get, context: Self.context("x")) }
        #expect(error?.code == .notFound)
        var source = CreateSnapshotRequest()
        source.name = "snap"
        source.sourceVolumeID = "pvc-gone"
        let snapError = await #expect(throws: RPCError.self) { try await controller.createSnapshot(source, context: Self.context("x")) }
        #expect(snapError?.code == .notFound)
        var delete = DeleteVolumeRequest()
        delete.volumeID = "--force; rm"
        _ = try await controller.deleteVolume(delete, context: Self.context("DeleteVolume"))
    }

    @Test func secretsNeverReachTheLog() async throws {
        let sink = MemoryLogSink()
        let controller = Self.controller(sink)
        var request = DeleteVolumeRequest()
        request.volumeID = "pvc-1"
        request.secrets = ["password": "hunter2-very-secret", "token": "t0ken-value"]
        _ = try await controller.deleteVolume(request, context: Self.context("DeleteVolume"))
        #expect(!sink.text.contains("hunter2-very-secret"))
        #expect(!sink.text.contains("t0ken-value"))
        #expect(sink.text.contains("secrets=2"))
        #expect(sink.text.contains("pvc-1"))
    }

    @Test func mountFlagsNeverReachTheLog() async {
        let sink = MemoryLogSink()
        var capability = Self.capability(.singleNodeWriter, fsType: "ext4")
        var mount = VolumeCapability.MountVolume()
        mount.fsType = "ext4"
        mount.mountFlags = ["noatime", "cred=hunter2-flag"]
        capability.accessType = .mount(mount)
        var request = CreateVolumeRequest()
        request.name = "pvc-flags"
        request.volumeCapabilities = [capability]
        _ = try? await Self.controller(sink).createVolume(request, context: Self.context("CreateVolume"))
        #expect(sink.text.contains("pvc-flags"))
        #expect(sink.text.contains("2 mount flags"))
        #expect(!sink.text.contains("hunter2-flag"))
    }

    @Test func probeFailsWhileTheBackendDoesNotAnswer() async throws {
        struct DownStore: VolumeStore {
            func probe() async throws { throw StoreError(.failed, "volume group vg0 does not answer") }
            func volume(id: String) async throws -> StoredVolume? { nil }
            func volumes() async throws -> [StoredVolume] { [] }
            func createVolume(_ spec: VolumeSpec) async throws -> StoredVolume { throw StoreError(.failed, "down") }
            func deleteVolume(id: String) async throws {}
            func expandVolume(id: String, to bytes: Int64, limit: Int64) async throws -> StoredVolume { throw StoreError(.failed, "down") }
            func availableCapacity(parameters: [String: String]) async throws -> Int64 { 0 }
            func snapshot(id: String) async throws -> StoredSnapshot? { nil }
            func snapshots() async throws -> [StoredSnapshot] { [] }
            func createSnapshot(name: String, sourceVolumeID: String) async throws -> StoredSnapshot { throw StoreError(.failed, "down") }
            func deleteSnapshot(id: String) async throws {}
            func devicePath(volumeID: String) async throws -> String { throw StoreError(.failed, "down") }
        }
        let log = RequestLog(logger: .disabled)
        let down = IdentityServer(configuration: Self.configuration, store: DownStore(), log: log)
        let error = await #expect(throws: RPCError.self) { try await down.probe(ProbeRequest(), context: Self.context("Probe")) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("vg0 does not answer") == true)
        let up = IdentityServer(configuration: Self.configuration, store: EmptyStore(), log: log)
        #expect(try await up.probe(ProbeRequest(), context: Self.context("Probe")).ready == true)
        let info = try await up.getPluginInfo(GetPluginInfoRequest(), context: Self.context("GetPluginInfo"))
        #expect(info.name == "lvm.csi.swift-csi.io")
        #expect(info.vendorVersion == DriverConfiguration.version)
    }
}
