public import ProtoWire
public import RPCCore

/// `grpc.reflection.v1.ServerReflection` (and the same protocol under `grpc.reflection.v1alpha`),
/// complete enough for `grpcurl describe` and grpcio-reflection's descriptor database.
///
/// - `list_services` names every service of the router.
/// - `file_by_filename`, `file_containing_symbol` (messages, nested types, fields, oneofs, enums,
///   enum values, services, methods, extensions) and `file_containing_extension` answer with the
///   file's serialized `FileDescriptorProto` followed by the files it imports, directly or not,
///   less those already sent on the same stream (the requested file itself is always sent).
/// - `all_extension_numbers_of_type` lists the extension numbers the registered files declare.
///
/// What is not known gets an `error_response` with NOT_FOUND; a request with no question set
/// ends the stream with INVALID_ARGUMENT.
public struct ReflectionService: GRPCServiceRegistrable {
    /// The fully qualified names of the services to list.
    public let services: [String]
    /// The files to describe.
    public let registry: ProtoDescriptorRegistry

    /// Creates the service listing `services` and describing the files of `registry`.
    public init(services: [String], registry: ProtoDescriptorRegistry = ProtoDescriptorRegistry()) {
        self.services = services
        self.registry = registry
    }

    /// `/grpc.reflection.v1.ServerReflection/ServerReflectionInfo`.
    public static let info = GRPCMethodDescriptor(
        service: "grpc.reflection.v1.ServerReflection", method: "ServerReflectionInfo", kind: .bidirectionalStreaming)

    /// The same method under the older `v1alpha` name, which some tools still call.
    public static let infoV1Alpha = GRPCMethodDescriptor(
        service: "grpc.reflection.v1alpha.ServerReflection", method: "ServerReflectionInfo", kind: .bidirectionalStreaming)

    /// The descriptors of the reflection protocol itself (v1 and v1alpha), which a server
    /// serving this service describes.
    public static let protoFiles: [ProtoFileDescriptor] = [
        GRPCReflection.ReflectionProtoFile.descriptor, ReflectionV1alphaProtoFile.descriptor,
    ]

    public func register(with router: inout GRPCRouter) {
        let names = Array(Set(services + [Self.info.service, Self.infoV1Alpha.service])).sorted()
        for method in [Self.info, Self.infoV1Alpha] { register(method, names, &router) }
    }

    private func register(_ method: GRPCMethodDescriptor, _ names: [String], _ router: inout GRPCRouter) {
        let registry = self.registry
        router.registerBidirectionalStreaming(method) {
            (requests: RequestStream<GRPCReflection.ServerReflectionRequest>,
             writer: ResponseStreamWriter<GRPCReflection.ServerReflectionResponse>, _) in
            var sent: Set<String> = []
            for try await request in requests {
                try await writer.write(try Self.answer(request, services: names, registry: registry, sent: &sent))
            }
        }
    }

    /// The response to one request of a stream; `sent` holds the names of the files the stream
    /// has already carried and gains those this response carries.
    ///
    /// - Throws: ``RPCError`` with INVALID_ARGUMENT when the request asks nothing.
    package static func answer(
        _ request: GRPCReflection.ServerReflectionRequest, services: [String], registry: ProtoDescriptorRegistry,
        sent: inout Set<String>
    ) throws(RPCError) -> GRPCReflection.ServerReflectionResponse {
        var response = GRPCReflection.ServerReflectionResponse()
        response.validHost = request.host
        response.originalRequest = request

        func files(_ file: ProtoFileDescriptor?, orNotFound message: @autoclosure () -> String) {
            guard let file else {
                response.messageResponse = .errorResponse(notFound(message()))
                return
            }
            var bytes: [[UInt8]] = []
            for (index, each) in registry.withDependencies(file).enumerated() where index == 0 || !sent.contains(each.name) {
                sent.insert(each.name)
                bytes.append(each.serializedBytes)
            }
            response.messageResponse = .fileDescriptorResponse(GRPCReflection.FileDescriptorResponse(fileDescriptorProto: bytes))
        }

        switch request.messageRequest {
        case .listServices:
            response.messageResponse = .listServicesResponse(
                GRPCReflection.ListServiceResponse(service: services.map { GRPCReflection.ServiceResponse(name: $0) }))
        case .fileByFilename(let name):
            files(registry.file(named: name), orNotFound: "no file named \(name)")
        case .fileContainingSymbol(let symbol):
            files(registry.file(containingSymbol: symbol), orNotFound: "no file defines the symbol \(symbol)")
        case .fileContainingExtension(let request):
            files(
                registry.file(containingExtension: request.extensionNumber, of: request.containingType),
                orNotFound: "no file declares extension \(request.extensionNumber) of \(request.containingType)")
        case .allExtensionNumbersOfType(let type):
            if let numbers = registry.extensionNumbers(of: type) {
                let base = type.hasPrefix(".") ? String(type.dropFirst()) : type
                response.messageResponse = .allExtensionNumbersResponse(
                    GRPCReflection.ExtensionNumberResponse(baseTypeName: base, extensionNumber: numbers))
            } else {
                response.messageResponse = .errorResponse(notFound("no message type named \(type)"))
            }
        case nil:
            throw RPCError(
                code: .invalidArgument,
                message: "ServerReflectionRequest: expected one of file_by_filename, file_containing_symbol, "
                    + "file_containing_extension, all_extension_numbers_of_type or list_services, found none")
        }
        return response
    }

    private static func notFound(_ message: String) -> GRPCReflection.ErrorResponse {
        GRPCReflection.ErrorResponse(errorCode: Int32(RPCError.Code.notFound.rawValue), errorMessage: message)
    }
}
