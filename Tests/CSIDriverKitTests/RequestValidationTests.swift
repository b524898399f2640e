import Platform
import CSI
import Glibc
import H2
import RPCCore
import Storage
import Synchronization
import Testing

@testable import CSIDriverKit

/// Collects log records in memory.
final class MemoryLogSink: LogSink {
    let records = Mutex<[String]>([])
    func write(level: LogLevel, message: String, fields: [(String, String)]) {
        let line = ([message] + fields.map { "\($0)=\($1)" }).joined(separator: " ")
        records.withLock { $0.append(line) }
    }
    var text: String { records.withLock { $0.joined(separator: "\n") } }
}

/// A loop-file backend, as the driver makes it, over a fresh directory that is removed afterwards
/// with whatever the test created in it. Volumes are sparse files: no root needed until a device
/// is attached.
func withLoopFileBackend<T>(_ body: (LoopFileBackend, _ directory: String) async throws -> T) async throws -> T {
    let dir = DriverProcessTests.temporaryDirectory()
    defer { removeTree(dir) }
    let backend = try LoopFileBackend(directory: dir + "/loop", driverName: RequestValidationTests.configuration.driverName)
    return try await body(backend, dir)
}

/// Removes `path` and everything below it (not following symbolic links).
func removeTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if info.st_mode & S_IFMT == S_IFDIR, let dir = opendir(path) {
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for name in names { removeTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

@Suite struct RequestValidationTests {
    static let configuration: DriverConfiguration = {
        var raw = DriverConfiguration.Raw()
        raw.hostName = "node0"
        raw.backend = "loopfile"
        raw.kubeletDir = "/var/lib/kubelet"
        return try! DriverConfiguration(raw: raw)
    }()

    static func controller(_ backend: any VolumeBackend, _ sink: MemoryLogSink = MemoryLogSink()) -> ControllerServer {
        ControllerServer(
            configuration: configuration, backend: backend, locks: VolumeLocks(),
            log: RequestLog(logger: Logger(sink: sink, level: .debug)))
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

    @Test func createVolumeValidation() async throws {
        try await withLoopFileBackend { backend, _ in
            let controller = Self.controller(backend)
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
            // Refused before the backend was asked: nothing was created.
            let volumes = try await backend.listVolumes()
            #expect(volumes.isEmpty)
        }
    }

    @Test func createVolumeOutsideRequisiteTopologyIsExhausted() async throws {
        try await withLoopFileBackend { backend, _ in
            var request = CreateVolumeRequest()
            request.name = "pvc-1"
            request.volumeCapabilities = [Self.capability(.singleNodeWriter)]
            var topology = Topology()
            topology.segments = [Self.configuration.topologyKey: "node9"]
            var requirement = TopologyRequirement()
            requirement.requisite = [topology]
            request.accessibilityRequirements = requirement
            let error = await #expect(throws: RPCError.self) {
                try await Self.controller(backend).createVolume(request, context: Self.context("CreateVolume"))
            }
            #expect(error?.code == .resourceExhausted)
            let volumes = try await backend.listVolumes()
            #expect(volumes.isEmpty)
        }
    }

    @Test func unknownObjectsAreNotFoundAndDeletesSucceed() async throws {
        try await withLoopFileBackend { backend, _ in
            let controller = Self.controller(backend)
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
            #expect(try await backend.listSnapshots().isEmpty)
        }
    }

    @Test func secretsNeverReachTheLog() async throws {
        try await withLoopFileBackend { backend, _ in
            let sink = MemoryLogSink()
            let controller = Self.controller(backend, sink)
            var request = DeleteVolumeRequest()
            request.volumeID = "pvc-1"
            request.secrets = ["password": "hunter2-very-secret", "token": "t0ken-value"]
            _ = try await controller.deleteVolume(request, context: Self.context("DeleteVolume"))
            #expect(!sink.text.contains("hunter2-very-secret"))
            #expect(!sink.text.contains("t0ken-value"))
            #expect(sink.text.contains("secrets=2"))
            #expect(sink.text.contains("pvc-1"))
            // The sidecars' shape: the call, the request as JSON with secrets stripped, the response.
            #expect(sink.text.contains("GRPC call: /csi.v1.Controller/DeleteVolume"))
            #expect(sink.text.contains(#"GRPC request: {"volume_id":"pvc-1","secrets":"***stripped***"}"#))
            #expect(sink.text.contains("GRPC response: {}"))
        }
    }

    @Test func mountFlagsNeverReachTheLog() async throws {
        try await withLoopFileBackend { backend, _ in
            let sink = MemoryLogSink()
            var capability = Self.capability(.singleNodeWriter, fsType: "ext4")
            var mount = VolumeCapability.MountVolume()
            mount.fsType = "ext4"
            mount.mountFlags = ["noatime", "cred=hunter2-flag"]
            capability.accessType = .mount(mount)
            var request = CreateVolumeRequest()
            request.name = "pvc-flags"
            request.volumeCapabilities = [capability]
            var range = CapacityRange()
            range.requiredBytes = 1 << 20
            request.capacityRange = range
            let created = try await Self.controller(backend, sink).createVolume(request, context: Self.context("CreateVolume"))
            #expect(created.volume?.capacityBytes == 1 << 20)
            #expect(sink.text.contains("pvc-flags"))
            #expect(sink.text.contains("2 mount flags"))
            #expect(sink.text.contains(#""mount_flags":["<2 mount flags>"]"#))
            #expect(sink.text.contains(#"GRPC response: {"volume":{"capacity_bytes":"1048576""#))
            #expect(!sink.text.contains("hunter2-flag"))
        }
    }

    @Test func probeFailsWhileTheBackendDoesNotAnswer() async throws {
        try await withLoopFileBackend { backend, dir in
            let log = RequestLog(logger: .disabled)
            let identity = IdentityServer(configuration: Self.configuration, backend: backend, log: log)
            #expect(try await identity.probe(ProbeRequest(), context: Self.context("Probe")).ready == true)
            let info = try await identity.getPluginInfo(GetPluginInfoRequest(), context: Self.context("GetPluginInfo"))
            #expect(info.name == "lvm.csi.swift-csi.io")
            #expect(info.vendorVersion == DriverConfiguration.version)
            #expect(info.manifest["backend"] == "loopfile")
            // The backend's directory disappears: the driver is no longer ready, and says where.
            removeTree(dir + "/loop")
            let error = await #expect(throws: RPCError.self) { try await identity.probe(ProbeRequest(), context: Self.context("Probe")) }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.contains(dir + "/loop") == true, "\(error?.message ?? "")")
        }
    }
}
