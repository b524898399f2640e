import RPCCore
import CSI
import H2
import Platform
import Storage
import Synchronization
import Testing

@testable import CSIDriverKit

/// A backend that records IO limits, over ``FakeBackend``.
final class LimitRecordingBackend: VolumeBackend {
    let fake = FakeBackend()
    let sets = Mutex(0)

    var recordsIOLimits: Bool { true }

    func setIOLimits(_ limits: IOLimits, ofVolume id: String) async throws(StorageError) -> BackendVolume {
        sets.withLock { $0 += 1 }
        let changed = fake.state.withLock { s -> BackendVolume? in
            s.volumes[id]?.ioLimits = limits
            return s.volumes[id]
        }
        guard let changed else { throw StorageError(.notFound, "volume \(id) does not exist") }
        return changed
    }

    func createVolume(_ request: VolumeRequest) async throws(StorageError) -> BackendVolume {
        var volume = try await fake.createVolume(request)
        volume.ioLimits = request.ioLimits
        let stored = volume
        fake.state.withLock { $0.volumes[stored.id] = stored }
        return volume
    }
    func deleteVolume(id: String) async throws(StorageError) { try await fake.deleteVolume(id: id) }
    func expandVolume(id: String, toBytes bytes: UInt64, limitBytes: UInt64?) async throws(StorageError) -> BackendVolume {
        try await fake.expandVolume(id: id, toBytes: bytes, limitBytes: limitBytes)
    }
    func volume(id: String) async throws(StorageError) -> BackendVolume? { try await fake.volume(id: id) }
    func listVolumes() async throws(StorageError) -> [BackendVolume] { try await fake.listVolumes() }
    func createSnapshot(name: String, sourceVolumeID: String) async throws(StorageError) -> BackendSnapshot {
        try await fake.createSnapshot(name: name, sourceVolumeID: sourceVolumeID)
    }
    func deleteSnapshot(id: String) async throws(StorageError) {}
    func snapshot(id: String) async throws(StorageError) -> BackendSnapshot? { nil }
    func listSnapshots() async throws(StorageError) -> [BackendSnapshot] { [] }
    func capacity(parameters: [String: String]) async throws(StorageError) -> UInt64 { 1 << 40 }
    func device(forVolume id: String) async throws(StorageError) -> VolumeDevice { try await fake.device(forVolume: id) }
    func probe() async throws(StorageError) {}
}

/// A node side that records what it was asked to apply.
final class RecordingNode: IOLimitsNode {
    let reason: String?
    let applied = Mutex<[BackendVolume]>([])
    init(reason: String? = nil) { self.reason = reason }
    func ioLimitsUnavailableReason() async -> String? { reason }
    func reapplyIOLimits(of volume: BackendVolume) async throws { applied.withLock { $0.append(volume) } }
}

/// ControllerModifyVolume and the mutable parameters of CreateVolume, with the codes the spec gives.
@Suite struct ModifyVolumeTests {
    static let context = ControllerServerTests.context

    func controller(_ backend: any VolumeBackend, node: (any IOLimitsNode)?) -> ControllerServer {
        ControllerServer(
            options: ControllerServerTests.options(), backend: backend, locks: VolumeLocks(), log: RequestLog(logger: .disabled),
            ioLimitsNode: node)
    }

    func modify(_ controller: ControllerServer, _ id: String, _ parameters: [String: String]) async throws {
        var request = ControllerModifyVolumeRequest()
        request.volumeID = id
        request.mutableParameters = parameters
        _ = try await controller.controllerModifyVolume(request, context: Self.context)
    }

    func code(_ body: () async throws -> Void) async -> RPCError.Code? {
        do { try await body() } catch let error as RPCError { return error.code } catch { return nil }
        return nil
    }

    @Test func advertisedOnlyWithARecordingBackendANodeAndCgroupIO() async throws {
        #expect(try await ControllerServerTests.capabilities(controller(LimitRecordingBackend(), node: RecordingNode())).contains(.modifyVolume))
        #expect(try await !ControllerServerTests.capabilities(controller(LimitRecordingBackend(), node: nil)).contains(.modifyVolume))
        #expect(try await !ControllerServerTests.capabilities(controller(FakeBackend(), node: RecordingNode())).contains(.modifyVolume))
        let noIO = controller(LimitRecordingBackend(), node: RecordingNode(reason: "no io controller"))
        #expect(try await !ControllerServerTests.capabilities(noIO).contains(.modifyVolume))
        // Without it: mutable parameters in CreateVolume are INVALID_ARGUMENT, a modify is
        // UNIMPLEMENTED (nothing can modify) or FAILED_PRECONDITION (this node cannot now).
        var create = ControllerServerTests.create("pvc-1")
        create.mutableParameters = ["readIOPS": "10"]
        #expect(await code { _ = try await noIO.createVolume(create, context: Self.context) } == .invalidArgument)
        #expect(await code { try await modify(controller(FakeBackend(), node: RecordingNode()), "pvc-1", ["readIOPS": "10"]) } == .unimplemented)
        #expect(await code { try await modify(noIO, "pvc-1", ["readIOPS": "10"]) } == .failedPrecondition)
    }

    /// A driver of one's own reaches MODIFY_VOLUME through the public initialisers: a node service
    /// with a throttle, handed to the controller.
    @Test func publicInitialisersWireTheNodeIntoTheController() async throws {
        let backend = LimitRecordingBackend()
        let kubelet = DriverProcessTests.temporaryDirectory()
        defer { removeTree(kubelet) }
        let paths = try KubeletPathPolicy(kubeletDirectory: kubelet)
        let options = ControllerServerTests.options()
        let locks = VolumeLocks()
        let withThrottle = NodeServer(options: options, backend: backend, paths: paths, locks: locks, throttle: FakeThrottle(pods: []))
        let withoutThrottle = NodeServer(options: options, backend: backend, paths: paths, locks: locks)
        let caps = { (node: NodeServer?) in
            try await ControllerServerTests.capabilities(ControllerServer(options: options, backend: backend, locks: locks, node: node))
        }
        #expect(try await caps(withThrottle).contains(.modifyVolume))
        #expect(try await !caps(withoutThrottle).contains(.modifyVolume))
        #expect(try await !caps(nil).contains(.modifyVolume))
    }

    @Test func createRecordsLimitsAndModifyMergesValidatesFirstAndReapplies() async throws {
        let backend = LimitRecordingBackend()
        let node = RecordingNode()
        let server = controller(backend, node: node)
        var create = ControllerServerTests.create("pvc-1")
        create.mutableParameters = ["readIOPS": "500", "writeBytesPerSecondPerGiB": "1048576"]
        _ = try await server.createVolume(create, context: Self.context)
        #expect(try await backend.volume(id: "pvc-1")?.ioLimits == IOLimits([.readIOPS: .absolute(500), .writeBytesPerSecond: .perGiB(1 << 20)]))

        try await modify(server, "pvc-1", ["writeIOPS": "100", "readIOPS": "max"])
        let expected = IOLimits([.writeBytesPerSecond: .perGiB(1 << 20), .writeIOPS: .absolute(100)])
        #expect(try await backend.volume(id: "pvc-1")?.ioLimits == expected)
        #expect(node.applied.withLock { $0.last?.ioLimits } == expected)
        // A repeat records nothing new and applies again.
        try await modify(server, "pvc-1", ["writeIOPS": "100"])
        #expect(backend.sets.withLock { $0 } == 1)
        #expect(node.applied.withLock { $0.count } == 2)

        #expect(await code { try await modify(server, "pvc-1", ["writeIOPZ": "100"]) } == .invalidArgument)
        #expect(await code { try await modify(server, "pvc-1", ["writeIOPS": "1"]) } == .invalidArgument)
        #expect(await code { try await modify(server, "pvc-1", [:]) } == .invalidArgument)
        #expect(await code { try await modify(server, "pvc-2", ["writeIOPS": "100"]) } == .notFound)
        #expect(await code { try await modify(server, "bad/id", ["writeIOPS": "100"]) } == .notFound)
        #expect(await code { try await modify(server, "", ["writeIOPS": "100"]) } == .invalidArgument)
        #expect(backend.sets.withLock { $0 } == 1)
        #expect(try await backend.volume(id: "pvc-1")?.ioLimits == expected)
    }

    @Test func growthReappliesLimitsPerGiB() async throws {
        let backend = LimitRecordingBackend()
        let node = RecordingNode()
        let server = controller(backend, node: node)
        var create = ControllerServerTests.create("pvc-1")
        create.mutableParameters = ["writeIOPSPerGiB": "100"]
        create.capacityRange = CapacityRange()
        create.capacityRange?.requiredBytes = 1 << 30
        _ = try await server.createVolume(create, context: Self.context)
        var expand = ControllerExpandVolumeRequest()
        expand.volumeID = "pvc-1"
        expand.capacityRange = CapacityRange()
        expand.capacityRange?.requiredBytes = 2 << 30
        _ = try await server.controllerExpandVolume(expand, context: Self.context)
        #expect(node.applied.withLock { $0.map(\.capacityBytes) } == [2 << 30])
    }
}
