import H2
import RPCCore
import ProtoWire
import TestSupport
import Testing

/// The built-in services' embedded descriptors (health, reflection) are protoc's own, without
/// source info, as ProtoWireTests checks for CSI's and the well-known files.
@Suite struct EmbeddedDescriptorTests {
    @Test(.enabled(if: haveProtoc), .ownThread, arguments: ["health.proto", "reflection.proto", "reflection_v1alpha.proto"])
    func embeddedDescriptorIsProtocs(_ name: String) throws {
        let all = HealthService.protoFiles + ReflectionService.protoFiles
        let file = try #require(all.first { $0.name == name })
        try expectDescriptorIsProtocs(file, in: "Sources/H2/Protos")
    }
}
