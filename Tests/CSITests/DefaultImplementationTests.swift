import CSI
import ProtoWire
import RPCCore
import Testing

/// A controller that serves nothing.
private struct NoController: ControllerService {}

/// A node-only plugin: it serves NodeGetInfo and writes nothing for the other Node methods.
private struct NodeOnly: NodeService {
    func nodeGetInfo(_ request: NodeGetInfoRequest, context: ServerContext) async throws -> NodeGetInfoResponse {
        var response = NodeGetInfoResponse()
        response.nodeID = "node0"
        return response
    }
}

/// Generated service protocols answer every method a service leaves out with UNIMPLEMENTED.
@Suite struct DefaultImplementationTests {
    @Test func methodsLeftOutAreUnimplemented() async throws {
        let service = NodeOnly()
        let error = await #expect(throws: RPCError.self) {
            _ = try await NoController().createVolume(CreateVolumeRequest(), context: ServerContext(method: ControllerMethods.createVolume))
        }
        #expect(error?.code == .unimplemented)
        #expect(error?.message == "/csi.v1.Controller/CreateVolume is not implemented")
        let stage = await #expect(throws: RPCError.self) {
            _ = try await service.nodeStageVolume(NodeStageVolumeRequest(), context: ServerContext(method: NodeMethods.nodeStageVolume))
        }
        #expect(stage?.message == "/csi.v1.Node/NodeStageVolume is not implemented")
        #expect(try await service.nodeGetInfo(NodeGetInfoRequest(), context: ServerContext(method: NodeMethods.nodeGetInfo)).nodeID == "node0")
    }

    @Test func streamingMethodsLeftOutAreUnimplemented() async throws {
        struct Empty: SnapshotMetadataService {}
        let writer = ResponseStreamWriter<GetMetadataAllocatedResponse> { _ in }
        let error = await #expect(throws: RPCError.self) {
            try await Empty().getMetadataAllocated(
                GetMetadataAllocatedRequest(), responses: writer, context: ServerContext(method: SnapshotMetadataMethods.getMetadataAllocated))
        }
        #expect(error?.code == .unimplemented)
        #expect(error?.message == "/csi.v1.SnapshotMetadata/GetMetadataAllocated is not implemented")
    }

    @Test func registeredDefaultsAnswerThroughTheRouter() async throws {
        var router = GRPCRouter()
        router.register(NoController())
        guard case .unary(let handler)? = router.handlers["/csi.v1.Controller/DeleteVolume"]?.1 else {
            Issue.record("DeleteVolume is not registered as unary")
            return
        }
        let error = await #expect(throws: RPCError.self) {
            _ = try await handler([], ServerContext(method: ControllerMethods.deleteVolume))
        }
        #expect(error?.code == .unimplemented)
    }
}
