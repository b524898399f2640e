import Testing

@testable import ProtoWireGenerator

@Suite struct NamingTests {
    @Test(arguments: [
        ("volume_id", "volumeID"), ("node_id", "nodeID"), ("id", "id"), ("url_path", "urlPath"),
        ("http_url", "httpURL"), ("max_volumes_per_node", "maxVolumesPerNode"), ("fs_type", "fsType"),
        ("snapshot_ids", "snapshotIds"), ("ipv4_address", "ipv4Address"), ("description", "description_p"),
        ("unknown_fields", "unknownFields_p"),
    ])
    func fieldNames(_ proto: String, _ swift: String) {
        #expect(Naming.fieldName(proto) == swift)
    }

    @Test(arguments: [("default", "`default`"), ("self", "`self`"), ("type", "type"), ("volume", "volume")])
    func keywordsAreEscaped(_ name: String, _ escaped: String) {
        #expect(Naming.escape(name) == escaped)
    }

    @Test(arguments: [
        ("SINGLE_NODE_WRITER", "Mode", "singleNodeWriter"), ("UNKNOWN", "Type", "unknown"),
        ("COLOR_RED", "Color", "red"), ("LIST_VOLUMES_PUBLISHED_NODES", "Type", "listVolumesPublishedNodes"),
        ("COLOR_1", "Color", "color1"),
    ])
    func enumCases(_ value: String, _ enumName: String, _ swift: String) {
        #expect(Naming.enumCaseName(value, enumName: enumName) == swift)
    }

    @Test(arguments: [("NodeGetInfo", "nodeGetInfo"), ("GetInfo", "getInfo"), ("RPCCall", "rpcCall"), ("Probe", "probe")])
    func methodNames(_ proto: String, _ swift: String) {
        #expect(Naming.methodName(proto) == swift)
    }

    @Test(arguments: [("Type", true, "TypeEnum"), ("Type", false, "TypeMessage"), ("Volume", false, "Volume")])
    func typeNames(_ proto: String, _ isEnum: Bool, _ swift: String) {
        #expect(Naming.typeName(proto, isEnum: isEnum) == swift)
    }
}
