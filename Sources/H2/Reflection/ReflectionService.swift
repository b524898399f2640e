public import ProtoWire

/// `grpc.reflection.v1.ServerReflection`, enough for standard tools to list the services.
///
/// `list_services` names every service of the router; requests for file descriptors are
/// answered with a NOT_FOUND error response, since the server carries no descriptors.
public struct ReflectionService: GRPCServiceRegistrable {
    /// The fully qualified names of the services to list.
    public let services: [String]

    /// Creates the service listing `services`.
    public init(services: [String]) { self.services = services }

    /// `/grpc.reflection.v1.ServerReflection/ServerReflectionInfo`.
    public static let info = GRPCMethodDescriptor(
        service: "grpc.reflection.v1.ServerReflection", method: "ServerReflectionInfo", kind: .bidirectionalStreaming)

    /// The same method under the older `v1alpha` name, which some tools still call.
    public static let infoV1Alpha = GRPCMethodDescriptor(
        service: "grpc.reflection.v1alpha.ServerReflection", method: "ServerReflectionInfo", kind: .bidirectionalStreaming)

    public func register(with router: inout GRPCRouter) {
        let names = Array(Set(services + [Self.info.service, Self.infoV1Alpha.service])).sorted()
        for method in [Self.info, Self.infoV1Alpha] { register(method, names, &router) }
    }

    private func register(_ method: GRPCMethodDescriptor, _ names: [String], _ router: inout GRPCRouter) {
        router.registerBidirectionalStreaming(method) {
            (requests: RequestStream<GRPCReflection.ServerReflectionRequest>,
             writer: ResponseStreamWriter<GRPCReflection.ServerReflectionResponse>, _) in
            for try await request in requests {
                var response = GRPCReflection.ServerReflectionResponse()
                response.validHost = request.host
                response.originalRequest = request
                switch request.messageRequest {
                case .listServices:
                    response.messageResponse = .listServicesResponse(
                        GRPCReflection.ListServiceResponse(service: names.map { GRPCReflection.ServiceResponse(name: $0) }))
                case .fileByFilename(let name):
                    response.messageResponse = .errorResponse(
                        GRPCReflection.ErrorResponse(errorCode: Int32(RPCError.Code.notFound.rawValue), errorMessage: "no file descriptor for \(name)"))
                case .fileContainingSymbol(let symbol):
                    response.messageResponse = .errorResponse(
                        GRPCReflection.ErrorResponse(errorCode: Int32(RPCError.Code.notFound.rawValue), errorMessage: "no file descriptor for symbol \(symbol)"))
                default:
                    response.messageResponse = .errorResponse(
                        GRPCReflection.ErrorResponse(errorCode: Int32(RPCError.Code.unimplemented.rawValue), errorMessage: "only list_services is supported"))
                }
                try await writer.write(response)
            }
        }
    }
}
