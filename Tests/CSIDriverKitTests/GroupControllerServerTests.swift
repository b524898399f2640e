import CSI
import H2
import Platform
import ProtoWire
import RPCCore
import Storage
import Synchronization
import Testing

@testable import CSIDriverKit

/// Volumes, snapshots and group snapshots in memory: what the GroupController's rules need.
final class FakeGroupBackend: VolumeBackend {
    struct State {
        var volumes: Set<String> = []
        var snapshots: [String: BackendSnapshot] = [:]
        var groups: [String: BackendGroupSnapshot] = [:]
        var createCalls = 0
    }
    let state = Mutex(State())
    let groups: Bool

    init(volumes: [String], groups: Bool = true) {
        self.groups = groups
        state.withLock { $0.volumes = Set(volumes) }
    }

    var supportsGroupSnapshots: Bool { groups }

    func createVolume(_ request: VolumeRequest) async throws(StorageError) -> BackendVolume {
        if let id = request.sourceSnapshotID, state.withLock({ $0.snapshots[id] }) == nil {
            throw StorageError(.notFound, "source snapshot \(id) does not exist")
        }
        state.withLock { _ = $0.volumes.insert(request.name) }
        return BackendVolume(
            id: request.name, name: request.name, capacityBytes: 1 << 30, sourceSnapshotID: request.sourceSnapshotID, location: "fake")
    }
    func deleteVolume(id: String) async throws(StorageError) { state.withLock { _ = $0.volumes.remove(id) } }
    func expandVolume(id: String, toBytes bytes: UInt64, limitBytes: UInt64?) async throws(StorageError) -> BackendVolume {
        throw StorageError(.unsupported, "no")
    }
    func volume(id: String) async throws(StorageError) -> BackendVolume? {
        state.withLock { $0.volumes.contains(id) } ? BackendVolume(id: id, name: id, capacityBytes: 1 << 30, location: "fake") : nil
    }
    func listVolumes() async throws(StorageError) -> [BackendVolume] { [] }
    func createSnapshot(name: String, sourceVolumeID: String) async throws(StorageError) -> BackendSnapshot {
        let snapshot = BackendSnapshot(id: name, name: name, sourceVolumeID: sourceVolumeID, sizeBytes: 1 << 30, creationTime: 5, location: "fake")
        state.withLock { $0.snapshots[name] = snapshot }
        return snapshot
    }
    func deleteSnapshot(id: String) async throws(StorageError) { state.withLock { _ = $0.snapshots.removeValue(forKey: id) } }
    func snapshot(id: String) async throws(StorageError) -> BackendSnapshot? { state.withLock { $0.snapshots[id] } }
    func listSnapshots() async throws(StorageError) -> [BackendSnapshot] { state.withLock { $0.snapshots.values.sorted { $0.id < $1.id } } }
    func capacity(parameters: [String: String]) async throws(StorageError) -> UInt64 { 0 }
    func device(forVolume id: String) async throws(StorageError) -> VolumeDevice { .unavailable(reason: "fake") }
    func probe() async throws(StorageError) {}

    func createGroupSnapshot(name: String, sourceVolumeIDs: [String]) async throws(StorageError) -> BackendGroupSnapshot {
        try state.withLock { s throws(StorageError) in
            s.createCalls += 1
            let id = "group-" + name
            if let existing = s.groups[id] {
                guard existing.snapshots.map(\.sourceVolumeID).sorted() == sourceVolumeIDs.sorted() else {
                    throw StorageError(.alreadyExists, "group \(name) exists of other volumes")
                }
                return existing
            }
            for source in sourceVolumeIDs where !s.volumes.contains(source) { throw StorageError(.notFound, "no \(source)") }
            let members = sourceVolumeIDs.sorted().map {
                BackendSnapshot(
                    id: "\(name)-\($0)", sourceVolumeID: $0, sizeBytes: 1 << 30, creationTime: 1_700_000_000, location: "fake",
                    groupSnapshotID: id)
            }
            for member in members { s.snapshots[member.id] = member }
            let group = BackendGroupSnapshot(id: id, name: name, snapshots: members, creationTime: 1_700_000_000)
            s.groups[id] = group
            return group
        }
    }
    func deleteGroupSnapshot(id: String) async throws(StorageError) {
        state.withLock { s in
            for member in s.groups.removeValue(forKey: id)?.snapshots ?? [] { s.snapshots[member.id] = nil }
        }
    }
    func groupSnapshot(id: String) async throws(StorageError) -> BackendGroupSnapshot? { state.withLock { $0.groups[id] } }
}

@Suite struct GroupControllerServerTests {
    static let context = ServerContext(method: GRPCMethodDescriptor(service: "csi.v1.GroupController", method: "x", kind: .unary))

    static func server(_ backend: FakeGroupBackend, locks: VolumeLocks = VolumeLocks(), sink: MemoryLogSink = MemoryLogSink())
        -> (GroupControllerServer, ControllerServer)
    {
        var options = ControllerServerTests.options()
        options.groupSnapshots = backend.supportsGroupSnapshots
        let logger = Logger(sink: sink, level: .debug)
        return (
            GroupControllerServer(options: options, backend: backend, locks: locks, logger: logger),
            ControllerServer(options: options, backend: backend, locks: locks, logger: logger)
        )
    }

    static func create(_ name: String, _ sources: [String], parameters: [String: String] = [:]) -> CreateVolumeGroupSnapshotRequest {
        var request = CreateVolumeGroupSnapshotRequest()
        request.name = name
        request.sourceVolumeIds = sources
        request.parameters = parameters
        return request
    }

    static func get(_ id: String, _ members: [String]) -> GetVolumeGroupSnapshotRequest {
        var request = GetVolumeGroupSnapshotRequest()
        request.groupSnapshotID = id
        request.snapshotIds = members
        return request
    }

    static func delete(_ id: String, _ members: [String]) -> DeleteVolumeGroupSnapshotRequest {
        var request = DeleteVolumeGroupSnapshotRequest()
        request.groupSnapshotID = id
        request.snapshotIds = members
        return request
    }

    static func code(_ body: () async throws -> Void) async -> RPCError.Code? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error.code
        } catch {
            return .unknown
        }
    }

    @Test func capabilitiesFollowTheBackend() async throws {
        let (groups, _) = Self.server(FakeGroupBackend(volumes: []))
        let types = try await groups.groupControllerGetCapabilities(.init(), context: Self.context).capabilities.compactMap {
            if case .rpc(let rpc)? = $0.type { return rpc.type }
            return nil
        }
        #expect(types == [.createDeleteGetVolumeGroupSnapshot])

        let (none, _) = Self.server(FakeGroupBackend(volumes: ["a"], groups: false))
        #expect(try await none.groupControllerGetCapabilities(.init(), context: Self.context).capabilities.isEmpty)
        #expect(await Self.code { _ = try await none.createVolumeGroupSnapshot(Self.create("g", ["a"]), context: Self.context) } == .unimplemented)
        #expect(await Self.code { _ = try await none.getVolumeGroupSnapshot(Self.get("g", ["x"]), context: Self.context) } == .unimplemented)
        #expect(await Self.code { _ = try await none.deleteVolumeGroupSnapshot(Self.delete("g", ["x"]), context: Self.context) } == .unimplemented)
    }

    /// GROUP_CONTROLLER_SERVICE only with the option, and only where a controller is served.
    @Test func identityAdvertisesTheServiceWithTheOption() async throws {
        func services(_ options: DriverOptions) async throws -> [PluginCapability.Service.TypeEnum] {
            try await IdentityServer(options: options, backend: FakeBackend()).getPluginCapabilities(.init(), context: Self.context)
                .capabilities.compactMap {
                    if case .service(let service)? = $0.type { return service.type }
                    return nil
                }
        }
        var options = ControllerServerTests.options()
        #expect(try await !services(options).contains(.groupControllerService))
        options.groupSnapshots = true
        #expect(try await services(options).contains(.groupControllerService))
        options.servesController = false
        #expect(try await !services(options).contains(.groupControllerService))
    }

    @Test func requestsAreCheckedBeforeTheBackend() async throws {
        let backend = FakeGroupBackend(volumes: ["a", "b"])
        let (groups, _) = Self.server(backend)
        func create(_ request: CreateVolumeGroupSnapshotRequest) async -> RPCError.Code? {
            await Self.code { _ = try await groups.createVolumeGroupSnapshot(request, context: Self.context) }
        }
        #expect(await create(Self.create("", ["a"])) == .invalidArgument)
        #expect(await create(Self.create("g", [])) == .invalidArgument)
        #expect(await create(Self.create("g", ["a", "a"])) == .invalidArgument)
        #expect(await create(Self.create("g", ["a", ""])) == .invalidArgument)
        #expect(await create(Self.create("g", ["a"], parameters: ["flavour": "x"])) == .invalidArgument)
        #expect(await create(Self.create("g", ["a", "no/such"])) == .notFound)
        #expect(await create(Self.create("g", ["a", "missing"])) == .notFound)
        #expect(backend.state.withLock { $0.createCalls } == 0)
        #expect(await create(Self.create("g", ["a"], parameters: ["csi.storage.k8s.io/volumegroupsnapshot/name": "x"])) == nil)
        #expect(await Self.code { _ = try await groups.getVolumeGroupSnapshot(Self.get("", ["x"]), context: Self.context) } == .invalidArgument)
        #expect(await Self.code { _ = try await groups.getVolumeGroupSnapshot(Self.get("group-g", []), context: Self.context) } == .invalidArgument)
        #expect(await Self.code { _ = try await groups.deleteVolumeGroupSnapshot(Self.delete("", ["x"]), context: Self.context) } == .invalidArgument)
        #expect(await Self.code { _ = try await groups.deleteVolumeGroupSnapshot(Self.delete("group-g", []), context: Self.context) } == .invalidArgument)
    }

    /// Create, repeat, Get, ListSnapshots, DeleteSnapshot of a member, Delete: the spec's codes.
    @Test func aGroupsLife() async throws {
        let backend = FakeGroupBackend(volumes: ["a", "b", "c"])
        let (groups, controller) = Self.server(backend)
        let group = try #require(try await groups.createVolumeGroupSnapshot(Self.create("g1", ["b", "a"]), context: Self.context).groupSnapshot)
        #expect(group.groupSnapshotID == "group-g1")
        #expect(group.readyToUse)
        #expect(group.creationTime?.seconds == 1_700_000_000)
        #expect(group.snapshots.map(\.sourceVolumeID) == ["a", "b"])
        #expect(group.snapshots.allSatisfy { $0.groupSnapshotID == "group-g1" && $0.readyToUse })
        let members = group.snapshots.map(\.snapshotID)

        // Idempotent on the name, in any order of the sources; other sources are ALREADY_EXISTS.
        let again = try await groups.createVolumeGroupSnapshot(Self.create("g1", ["a", "b"]), context: Self.context).groupSnapshot
        #expect(again == group)
        #expect(await Self.code { _ = try await groups.createVolumeGroupSnapshot(Self.create("g1", ["a", "c"]), context: Self.context) } == .alreadyExists)

        // Get: the members must match; an unknown group is NOT_FOUND.
        #expect(try await groups.getVolumeGroupSnapshot(Self.get("group-g1", members.reversed()), context: Self.context).groupSnapshot == group)
        #expect(await Self.code { _ = try await groups.getVolumeGroupSnapshot(Self.get("group-g1", [members[0]]), context: Self.context) } == .invalidArgument)
        #expect(await Self.code { _ = try await groups.getVolumeGroupSnapshot(Self.get("group-g1", members + ["x"]), context: Self.context) } == .invalidArgument)
        #expect(await Self.code { _ = try await groups.getVolumeGroupSnapshot(Self.get("group-none", members), context: Self.context) } == .notFound)
        #expect(await Self.code { _ = try await groups.getVolumeGroupSnapshot(Self.get("bad/id", members), context: Self.context) } == .notFound)

        // Members are snapshots with their group's id; one alone cannot be deleted.
        var list = ListSnapshotsRequest()
        list.sourceVolumeID = "a"
        #expect(try await controller.listSnapshots(list, context: Self.context).entries.map { $0.snapshot?.groupSnapshotID } == ["group-g1"])
        var getSnapshot = GetSnapshotRequest()
        getSnapshot.snapshotID = members[1]
        #expect(try await controller.getSnapshot(getSnapshot, context: Self.context).snapshot?.groupSnapshotID == "group-g1")
        var deleteOne = DeleteSnapshotRequest()
        deleteOne.snapshotID = members[0]
        #expect(await Self.code { _ = try await controller.deleteSnapshot(deleteOne, context: Self.context) } == .invalidArgument)
        #expect(backend.state.withLock { $0.snapshots[members[0]] } != nil)
        // A snapshot of its own still goes alone.
        var single = CreateSnapshotRequest()
        single.name = "solo"
        single.sourceVolumeID = "c"
        _ = try await controller.createSnapshot(single, context: Self.context)
        deleteOne.snapshotID = "solo"
        _ = try await controller.deleteSnapshot(deleteOne, context: Self.context)

        // Delete: a mismatched list is INVALID_ARGUMENT and deletes nothing; then all go; again is OK.
        #expect(await Self.code { _ = try await groups.deleteVolumeGroupSnapshot(Self.delete("group-g1", [members[0]]), context: Self.context) } == .invalidArgument)
        #expect(backend.state.withLock { $0.snapshots.count } == 2)
        _ = try await groups.deleteVolumeGroupSnapshot(Self.delete("group-g1", members), context: Self.context)
        #expect(backend.state.withLock { $0.snapshots.isEmpty && $0.groups.isEmpty })
        _ = try await groups.deleteVolumeGroupSnapshot(Self.delete("group-g1", members), context: Self.context)
        _ = try await groups.deleteVolumeGroupSnapshot(Self.delete("not/a/driver/id", members), context: Self.context)
    }

    /// Deleting a group that is gone names snapshots of something else: a mismatch all the same.
    @Test func deletingAnUnknownGroupWithAnotherSnapshotIsAMismatch() async throws {
        let backend = FakeGroupBackend(volumes: ["a"])
        let (groups, controller) = Self.server(backend)
        var single = CreateSnapshotRequest()
        single.name = "solo"
        single.sourceVolumeID = "a"
        _ = try await controller.createSnapshot(single, context: Self.context)
        #expect(await Self.code { _ = try await groups.deleteVolumeGroupSnapshot(Self.delete("group-x", ["solo"]), context: Self.context) } == .invalidArgument)
        _ = try await groups.deleteVolumeGroupSnapshot(Self.delete("group-x", ["gone"]), context: Self.context)
    }

    /// Every source is locked, all or none: a source busy with another call is ABORTED at once.
    @Test func aBusySourceIsAborted() async throws {
        let locks = VolumeLocks()
        let backend = FakeGroupBackend(volumes: ["a", "b"])
        let (groups, _) = Self.server(backend, locks: locks)
        #expect(locks.tryLock("b"))
        #expect(await Self.code { _ = try await groups.createVolumeGroupSnapshot(Self.create("g", ["a", "b"]), context: Self.context) } == .aborted)
        #expect(!locks.isLocked("a") && !locks.isLocked("group-name:g"))
        locks.unlock("b")
        _ = try await groups.createVolumeGroupSnapshot(Self.create("g", ["a", "b"]), context: Self.context)
    }

    /// Secrets reach no log line, debug included.
    @Test func secretsStayOutOfTheLog() async throws {
        let sink = MemoryLogSink()
        let (groups, _) = Self.server(FakeGroupBackend(volumes: ["a"]), sink: sink)
        var request = Self.create("g", ["a"])
        request.secrets = ["password": "hunter2-group"]
        _ = try await groups.createVolumeGroupSnapshot(request, context: Self.context)
        var get = Self.get("group-g", ["g-a"])
        get.secrets = ["password": "hunter2-group"]
        _ = try await groups.getVolumeGroupSnapshot(get, context: Self.context)
        var delete = Self.delete("group-g", ["g-a"])
        delete.secrets = ["password": "hunter2-group"]
        _ = try await groups.deleteVolumeGroupSnapshot(delete, context: Self.context)
        #expect(sink.text.contains("CreateVolumeGroupSnapshot ok"))
        #expect(sink.text.contains("/csi.v1.GroupController/CreateVolumeGroupSnapshot"))
        #expect(!sink.text.contains("hunter2"))
    }
}
