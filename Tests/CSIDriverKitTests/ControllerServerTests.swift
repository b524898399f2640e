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

    static func options(snapshots: Bool = true) -> DriverOptions {
        var options = DriverOptions(name: "fake.csi.example.com", version: "1.0.0", nodeID: "node-7")
        options.topology = ["example.com/zone": "z1", "example.com/node": "node-7"]
        options.volumeParameters = ["tier"]
        options.snapshots = snapshots
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
