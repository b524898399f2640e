// grpc-swift-bench-server: `/csi.v1.Node/NodeGetInfo` on grpc-swift-2 with its NIO HTTP/2 transport
// and swift-protobuf messages, on the Unix socket named by `--socket PATH`. The handler is
// registered the way protoc-gen-grpc-swift's generated code registers a unary method.
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import PeerMessages

#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to standard error.
func printError(_ message: String) {
    let line = message + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

/// The Node service: answers NodeGetInfo with a fixed node.
struct NodeService: RegistrableRPCService {
    static let nodeGetInfo = MethodDescriptor(fullyQualifiedService: "csi.v1.Node", method: "NodeGetInfo")

    func nodeGetInfo(
        request: ServerRequest<Csi_V1_NodeGetInfoRequest>, context: ServerContext
    ) async throws -> ServerResponse<Csi_V1_NodeGetInfoResponse> {
        var response = Csi_V1_NodeGetInfoResponse()
        response.nodeID = "node-1"
        response.maxVolumesPerNode = 100
        return ServerResponse(message: response)
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.nodeGetInfo,
            deserializer: ProtobufDeserializer<Csi_V1_NodeGetInfoRequest>(),
            serializer: ProtobufSerializer<Csi_V1_NodeGetInfoResponse>()
        ) { request, context in
            let response = try await self.nodeGetInfo(request: ServerRequest(stream: request), context: context)
            return StreamingServerResponse(single: response)
        }
    }
}

func socketPath() -> String {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: "--socket"), i + 1 < args.count else {
        printError("usage: grpc-swift-bench-server --socket PATH")
        exit(2)
    }
    return args[i + 1]
}

let path = socketPath()
unlink(path)
let server = GRPCServer(
    transport: .http2NIOPosix(address: .unixDomainSocket(path: path), transportSecurity: .plaintext),
    services: [NodeService()]
)
try await server.serve()
