import CSI
@testable import H2
import RPCCore
import ProtoWire
import Testing

/// The reflection service's answers, request by request, as one stream sees them.
@Suite struct ReflectionServiceTests {
    let registry: ProtoDescriptorRegistry
    let services = ["csi.v1.Controller", "csi.v1.Identity"]

    init() throws {
        registry = try ProtoDescriptorRegistry([CsiProtoFile.descriptor] + HealthService.protoFiles)
    }

    func ask(_ question: GRPCReflection.ServerReflectionRequest.MessageRequest, sent: inout Set<String>) throws
        -> GRPCReflection.ServerReflectionResponse
    {
        var request = GRPCReflection.ServerReflectionRequest()
        request.host = "localhost"
        request.messageRequest = question
        let response = try ReflectionService.answer(request, services: services, registry: registry, sent: &sent)
        #expect(response.validHost == "localhost")
        #expect(response.originalRequest == request)
        return response
    }

    func names(_ response: GRPCReflection.ServerReflectionResponse) throws -> [String] {
        let files = try #require(response.fileDescriptorResponse).fileDescriptorProto
        return files.map { bytes in registry.files.first { $0.serializedBytes == bytes }?.name ?? "?" }
    }

    @Test func sendsEachDependencyOncePerStream() throws {
        var sent: Set<String> = []
        let first = try ask(.fileContainingSymbol("csi.v1.Controller"), sent: &sent)
        #expect(
            try names(first) == [
                "csi.proto", "google/protobuf/descriptor.proto", "google/protobuf/timestamp.proto",
                "google/protobuf/wrappers.proto",
            ])
        // The requested file always comes back; its imports only once.
        let again = try ask(.fileByFilename("csi.proto"), sent: &sent)
        #expect(try names(again) == ["csi.proto"])
        let wrappers = try ask(.fileContainingSymbol("google.protobuf.BoolValue"), sent: &sent)
        #expect(try names(wrappers) == ["google/protobuf/wrappers.proto"])
        // A new stream starts afresh.
        var fresh: Set<String> = []
        #expect(try names(try ask(.fileByFilename("csi.proto"), sent: &fresh)).count == 4)
        #expect(try names(try ask(.fileContainingSymbol("grpc.health.v1.Health.Watch"), sent: &fresh)) == ["health.proto"])
    }

    @Test func extensions() throws {
        var sent: Set<String> = []
        let numbers = try ask(.allExtensionNumbersOfType(".google.protobuf.FieldOptions"), sent: &sent)
        #expect(numbers.allExtensionNumbersResponse?.baseTypeName == "google.protobuf.FieldOptions")
        #expect(numbers.allExtensionNumbersResponse?.extensionNumber == [1059, 1060])
        let file = try ask(
            .fileContainingExtension(GRPCReflection.ExtensionRequest(containingType: "google.protobuf.FieldOptions", extensionNumber: 1059)),
            sent: &sent)
        #expect(try names(file).first == "csi.proto")
    }

    @Test(arguments: [
        GRPCReflection.ServerReflectionRequest.MessageRequest.fileByFilename("nope.proto"),
        .fileContainingSymbol("csi.v1.Nope"),
        .fileContainingExtension(GRPCReflection.ExtensionRequest(containingType: "google.protobuf.FieldOptions", extensionNumber: 7)),
        .allExtensionNumbersOfType("csi.v1.Nope"),
    ])
    func unknownIsNotFound(_ question: GRPCReflection.ServerReflectionRequest.MessageRequest) throws {
        var sent: Set<String> = []
        let response = try ask(question, sent: &sent)
        let error = try #require(response.errorResponse)
        #expect(error.errorCode == 5)
        #expect(error.errorMessage.contains("nope") || error.errorMessage.contains("Nope") || error.errorMessage.contains("7"))
        #expect(sent.isEmpty)
    }

    @Test func listsServicesAndRejectsEmptyRequests() throws {
        var sent: Set<String> = []
        let list = try ask(.listServices(""), sent: &sent)
        #expect(list.listServicesResponse?.service.map(\.name) == services)
        let error = #expect(throws: RPCError.self) {
            try ReflectionService.answer(GRPCReflection.ServerReflectionRequest(), services: services, registry: registry, sent: &sent)
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test func serverRefusesToStartWithFilesThatMissAnImport() throws {
        var configuration = GRPCServerConfiguration(address: "unix://" + socketPath())  // never bound
        configuration.reflectionFiles = [
            ProtoFileDescriptor(name: "a.proto", dependencies: ["b.proto"], serializedBytes: [0x0a, 7] + Array("a.proto".utf8) + [0x1a, 7] + Array("b.proto".utf8))
        ]
        let server = GRPCServer(router: GRPCRouter(), configuration: configuration)
        let error = #expect(throws: GRPCServerError.self) { try server.start() }
        #expect(error?.message.contains("a.proto imports b.proto") == true)
    }
}
