import RPCCore
import CSI
import H2
import Storage
import Synchronization
import Testing

@testable import CSIDriverKit

/// The controller as a driver of its own configures it: options instead of csi-lvm-driver's flags,
/// over a fake backend.
@Suite struct ControllerServerTests {
    static let context = ServerContext(method: GRPCMethodDescriptor(service: "csi.v1.Controller", method: "x", kind: .unary))

    static func options(snapshots: Bool = true, clones: Bool = false) -> DriverOptions {
        var options = DriverOptions(name: "fake.csi.example.com", version: "1.0.0", nodeID: "node-7")
        options.topology = ["example.com/zone": "z1", "example.com/node": "node-7"]
        options.volumeParameters = ["tier"]
        options.snapshots = snapshots
        options.clones = clones
        return options
    }

    static func create(_ name: String, parameters: [String: String] = [:]) -> CreateVolumeRequest {
        var request = CreateVolumeRequest()
        request.name = name
        request.volumeCapabilities = [RequestValidationTests.capability(.singleNodeWriter)]
        request.parameters = parameters
        return request
    }

    static func capabilities(_ controller: ControllerServer) async throws -> [ControllerServiceCapability.RPC.TypeEnum] {
        try await controller.controllerGetCapabilities(ControllerGetCapabilitiesRequest(), context: context).capabilities.compactMap {
            if case .rpc(let rpc)? = $0.type { return rpc.type }
            return nil
        }
    }

    /// The option's parameter keys reach the backend; fsType and csi.storage.k8s.io/ keys are the
    /// driver's; anything else (LVM's keys included) is INVALID_ARGUMENT.
    @Test func parameterKeysComeFromTheOptions() async throws {
        let backend = FakeBackend()
        let controller = ControllerServer(options: Self.options(), backend: backend)
        let parameters = ["tier": "gold", "fsType": "xfs", "csi.storage.k8s.io/pvc/name": "claim"]
        let volume = try await controller.createVolume(Self.create("pvc-1", parameters: parameters), context: Self.context).volume
        #expect(volume?.volumeID == "pvc-1")
        let request = try #require(backend.state.withLock { $0.lastRequest })
        #expect(request.parameters == ["tier": "gold"])
        #expect(request.fsType == "xfs")
        let error = await #expect(throws: RPCError.self) {
            try await controller.createVolume(Self.create("pvc-2", parameters: ["volumeGroup": "vg0"]), context: Self.context)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == "parameters: unknown key 'volumeGroup'; expected fsType, tier")
    }

    /// Every volume is accessible from this node's segments; a requisite topology must match them.
    @Test func topologyComesFromTheOptions() async throws {
        let controller = ControllerServer(options: Self.options(), backend: FakeBackend())
        let volume = try await controller.createVolume(Self.create("pvc-1"), context: Self.context).volume
        #expect(volume?.accessibleTopology.map(\.segments) == [["example.com/zone": "z1", "example.com/node": "node-7"]])
        var request = Self.create("pvc-2")
        var elsewhere = Topology()
        elsewhere.segments = ["example.com/zone": "z2"]
        var requirement = TopologyRequirement()
        requirement.requisite = [elsewhere]
        request.accessibilityRequirements = requirement
        let error = await #expect(throws: RPCError.self) { try await controller.createVolume(request, context: Self.context) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.contains("example.com/node=node-7, example.com/zone=z1") == true, "\(error?.message ?? "")")
        var here = Topology()
        here.segments = ["example.com/zone": "z1"]
        requirement.requisite = [elsewhere, here]
        request.accessibilityRequirements = requirement
        #expect(try await controller.createVolume(request, context: Self.context).volume?.volumeID == "pvc-2")
    }

    /// Without snapshots the capabilities leave them out and the snapshot calls are UNIMPLEMENTED.
    @Test func aBackendWithoutSnapshots() async throws {
        let with = ControllerServer(options: Self.options(), backend: FakeBackend())
        #expect(try await Self.capabilities(with).contains(.createDeleteSnapshot))
        #expect(try await Self.capabilities(with).contains(.listSnapshots))
        #expect(try await with.listSnapshots(ListSnapshotsRequest(), context: Self.context).entries.isEmpty)

        let without = ControllerServer(options: Self.options(snapshots: false), backend: FakeBackend())
        let types = try await Self.capabilities(without)
        #expect(!types.contains(.createDeleteSnapshot) && !types.contains(.listSnapshots))
        #expect(types.contains(.createDeleteVolume) && types.contains(.expandVolume))
        var snapshot = CreateSnapshotRequest()
        snapshot.name = "snap-1"
        snapshot.sourceVolumeID = "pvc-1"
        let create = await #expect(throws: RPCError.self) { try await without.createSnapshot(snapshot, context: Self.context) }
        #expect(create?.code == .unimplemented)
        let list = await #expect(throws: RPCError.self) { try await without.listSnapshots(ListSnapshotsRequest(), context: Self.context) }
        #expect(list?.code == .unimplemented)
        var restore = Self.create("pvc-3")
        var source = VolumeContentSource()
        var fromSnapshot = VolumeContentSource.SnapshotSource()
        fromSnapshot.snapshotID = "snap-1"
        source.type = .snapshot(fromSnapshot)
        restore.volumeContentSource = source
        let restoring = await #expect(throws: RPCError.self) { try await without.createVolume(restore, context: Self.context) }
        #expect(restoring?.code == .invalidArgument)
    }

    static func clone(_ name: String, of source: String, limit: Int64 = 0) -> CreateVolumeRequest {
        var request = create(name)
        var content = VolumeContentSource()
        var volume = VolumeContentSource.VolumeSource()
        volume.volumeID = source
        content.type = .volume(volume)
        request.volumeContentSource = content
        if limit > 0 {
            var range = CapacityRange()
            range.limitBytes = limit
            request.capacityRange = range
        }
        return request
    }

    /// CLONE_VOLUME is advertised only with the option; a clone reaches the backend with its
    /// source, reports it as its content source, and follows the spec's codes.
    @Test func clonesFollowTheOptionAndTheSpec() async throws {
        let off = ControllerServer(options: Self.options(), backend: FakeBackend())
        #expect(try await !Self.capabilities(off).contains(.cloneVolume))
        let refused = await #expect(throws: RPCError.self) {
            try await off.createVolume(Self.clone("pvc-c", of: "pvc-s"), context: Self.context)
        }
        #expect(refused?.code == .invalidArgument)

        let backend = FakeBackend()
        backend.add("pvc-s", device: .node("/dev/fake-s"), bytes: 8 << 20)
        let on = ControllerServer(options: Self.options(clones: true), backend: backend)
        #expect(try await Self.capabilities(on).contains(.cloneVolume))
        let volume = try #require(try await on.createVolume(Self.clone("pvc-c", of: "pvc-s"), context: Self.context).volume)
        #expect(backend.state.withLock { $0.lastRequest?.sourceVolumeID } == "pvc-s")
        #expect(backend.state.withLock { $0.lastRequest?.sourceSnapshotID } == nil)
        guard case .volume(let source)? = volume.contentSource?.type else {
            Issue.record("no volume content source in \(volume)")
            return
        }
        #expect(source.volumeID == "pvc-s")
        #expect(volume.capacityBytes == 8 << 20)
        var got = ControllerGetVolumeRequest()
        got.volumeID = "pvc-c"
        let listed = try await on.controllerGetVolume(got, context: Self.context).volume
        #expect(listed?.contentSource == volume.contentSource)
        // Idempotent with the same source; ALREADY_EXISTS with another source or none.
        #expect(try await on.createVolume(Self.clone("pvc-c", of: "pvc-s"), context: Self.context).volume == volume)
        backend.add("pvc-t", device: .node("/dev/fake-t"), bytes: 8 << 20)
        for request in [Self.clone("pvc-c", of: "pvc-t"), Self.create("pvc-c")] {
            let error = await #expect(throws: RPCError.self) { try await on.createVolume(request, context: Self.context) }
            #expect(error?.code == .alreadyExists)
        }
        let expectations: [(CreateVolumeRequest, RPCError.Code, String)] = [
            (Self.clone("pvc-d", of: "pvc-missing"), .notFound, "source volume pvc-missing does not exist"),
            (Self.clone("pvc-d", of: "bad id/../x"), .notFound, "source volume bad id/../x does not exist"),
            (Self.clone("pvc-d", of: ""), .invalidArgument, "volume_content_source.volume.volume_id"),
            (Self.clone("pvc-d", of: "pvc-s", limit: 4 << 20), .outOfRange, "source volume pvc-s holds 8388608 bytes, more than limit_bytes 4194304"),
        ]
        for (request, code, text) in expectations {
            let error = await #expect(throws: RPCError.self) { try await on.createVolume(request, context: Self.context) }
            #expect(error?.code == code)
            #expect(error?.message.contains(text) == true, "\(error?.message ?? "")")
        }
        #expect(try await on.controllerGetVolume(got, context: Self.context).volume?.volumeID == "pvc-c")
        got.volumeID = "pvc-d"
        let missing = await #expect(throws: RPCError.self) { try await on.controllerGetVolume(got, context: Self.context) }
        #expect(missing?.code == .notFound)
    }

    @Test func identityReportsTheOptions() async throws {
        var options = Self.options()
        options.manifest = ["backend": "fake"]
        options.servesController = false
        let identity = IdentityServer(options: options, backend: FakeBackend())
        let info = try await identity.getPluginInfo(GetPluginInfoRequest(), context: Self.context)
        #expect(info.name == "fake.csi.example.com" && info.vendorVersion == "1.0.0" && info.manifest == ["backend": "fake"])
        let services = try await identity.getPluginCapabilities(GetPluginCapabilitiesRequest(), context: Self.context).capabilities
            .compactMap { capability -> PluginCapability.Service.TypeEnum? in
                if case .service(let service)? = capability.type { return service.type }
                return nil
            }
        #expect(services == [.volumeAccessibilityConstraints])
        options.topology = [:]
        options.servesController = true
        let untopological = IdentityServer(options: options, backend: FakeBackend())
        let plain = try await untopological.getPluginCapabilities(GetPluginCapabilitiesRequest(), context: Self.context).capabilities
            .compactMap { capability -> PluginCapability.Service.TypeEnum? in
                if case .service(let service)? = capability.type { return service.type }
                return nil
            }
        #expect(plain == [.controllerService])
    }
}
