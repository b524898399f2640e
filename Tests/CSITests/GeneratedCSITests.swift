import CSI
import RPCCore
import ProtoWire
import Testing

/// The generated CSI and registration code as other drivers see it: method paths, wire round trips,
/// and redaction of `csi_secret` fields.
@Suite struct GeneratedCSITests {
    @Test func methodPathsFollowTheProtoPackages() {
        #expect(NodeMethods.nodeGetInfo.path == "/csi.v1.Node/NodeGetInfo")
        #expect(IdentityMethods.getPluginInfo.path == "/csi.v1.Identity/GetPluginInfo")
        #expect(ControllerMethods.createVolume.path == "/csi.v1.Controller/CreateVolume")
        #expect(PluginRegistration.RegistrationMethods.getInfo.path == "/pluginregistration.Registration/GetInfo")
        #expect(
            PluginRegistration.RegistrationMethods.notifyRegistrationStatus.path
                == "/pluginregistration.Registration/NotifyRegistrationStatus")
        #expect(NodeGetInfoResponse.protoMessageName == "csi.v1.NodeGetInfoResponse")
    }

    @Test func nodeGetInfoResponseHasTheKubeletsBytes() throws {
        var response = NodeGetInfoResponse()
        response.nodeID = "node0"
        response.maxVolumesPerNode = 100
        var topology = Topology()
        topology.segments = ["openebs.io/nodename": "node0"]
        response.accessibleTopology = topology
        let bytes = response.serializedBytes()
        // node_id = 1 (string), max_volumes_per_node = 2 (varint), accessible_topology = 3 (message
        // holding map entries at field 1: key = 1, value = 2).
        let expected: [UInt8] =
            [0x0A, 5] + Array("node0".utf8) + [0x10, 100]
            + [0x1A, 30, 0x0A, 28, 0x0A, 19] + Array("openebs.io/nodename".utf8) + [0x12, 5] + Array("node0".utf8)
        #expect(bytes == expected)
        #expect(try NodeGetInfoResponse(serializedBytes: bytes) == response)
    }

    @Test func secretsNeverReachTheDescription() throws {
        var request = NodeStageVolumeRequest()
        request.volumeID = "pvc-1"
        request.stagingTargetPath = "/var/lib/kubelet/plugins/kubernetes.io/csi/x/globalmount"
        request.secrets = ["password": "hunter2-secret-value"]
        for text in [request.description, String(reflecting: request), "\(request)"] {
            #expect(!text.contains("hunter2-secret-value"), "secret leaked into: \(text)")
            #expect(text.contains("pvc-1"))
        }
        let decoded = try NodeStageVolumeRequest(serializedBytes: request.serializedBytes())
        #expect(decoded.secrets == ["password": "hunter2-secret-value"])
    }
}
