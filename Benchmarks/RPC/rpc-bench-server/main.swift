// rpc-bench-server: `/csi.v1.Node/NodeGetInfo` through H2 and the generated CSI service, on the
// Unix socket named by `--socket PATH`. It decodes the request and answers
// `{node_id: "node-1", max_volumes_per_node: 100}`; the other Node methods are UNIMPLEMENTED.
//
//   rpc-bench-server --socket PATH [--event-loops N] [--no-heap-trim]
import CSI
import H2
import RPCCore
import ProtoWire

#if canImport(Glibc)
import Glibc
#endif

/// The Node service of the benchmark: a fixed NodeGetInfo answer.
struct BenchNode: NodeService {
    func nodeGetInfo(_ request: NodeGetInfoRequest, context: ServerContext) async throws -> NodeGetInfoResponse {
        var response = NodeGetInfoResponse()
        response.nodeID = "node-1"
        response.maxVolumesPerNode = 100
        return response
    }

    private func unimplemented(_ method: String) -> RPCError {
        RPCError(code: .unimplemented, message: "rpc-bench-server serves only NodeGetInfo, not \(method)")
    }
    func nodeStageVolume(_ request: NodeStageVolumeRequest, context: ServerContext) async throws -> NodeStageVolumeResponse {
        throw unimplemented("NodeStageVolume")
    }
    func nodeUnstageVolume(_ request: NodeUnstageVolumeRequest, context: ServerContext) async throws -> NodeUnstageVolumeResponse {
        throw unimplemented("NodeUnstageVolume")
    }
    func nodePublishVolume(_ request: NodePublishVolumeRequest, context: ServerContext) async throws -> NodePublishVolumeResponse {
        throw unimplemented("NodePublishVolume")
    }
    func nodeUnpublishVolume(_ request: NodeUnpublishVolumeRequest, context: ServerContext) async throws -> NodeUnpublishVolumeResponse {
        throw unimplemented("NodeUnpublishVolume")
    }
    func nodeGetVolumeStats(_ request: NodeGetVolumeStatsRequest, context: ServerContext) async throws -> NodeGetVolumeStatsResponse {
        throw unimplemented("NodeGetVolumeStats")
    }
    func nodeExpandVolume(_ request: NodeExpandVolumeRequest, context: ServerContext) async throws -> NodeExpandVolumeResponse {
        throw unimplemented("NodeExpandVolume")
    }
    func nodeGetCapabilities(_ request: NodeGetCapabilitiesRequest, context: ServerContext) async throws -> NodeGetCapabilitiesResponse {
        throw unimplemented("NodeGetCapabilities")
    }
}

/// Writes a line to standard error.
func printError(_ message: String) {
    let line = message + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

func usage() -> Never {
    printError("usage: rpc-bench-server --socket PATH [--event-loops N] [--no-heap-trim]")
    exit(2)
}

var socketPath: String?
var eventLoops = 1
var heapTrim = true
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--socket": socketPath = arguments.popFirst()
    case "--event-loops": eventLoops = arguments.popFirst().flatMap { Int($0) } ?? 0
    case "--no-heap-trim": heapTrim = false  // to measure what GRPCServerConfiguration.heapTrimDelay does
    default: usage()
    }
}
guard let socketPath, eventLoops >= 1 else { usage() }

var router = GRPCRouter()
router.register(BenchNode())
var configuration = GRPCServerConfiguration(address: socketPath)
configuration.eventLoopCount = eventLoops
if !heapTrim { configuration.heapTrimDelay = nil }
let server = GRPCServer(router: router, configuration: configuration)
do {
    try server.start()
} catch {
    printError("rpc-bench-server: \(error)")
    exit(1)
}
// The server runs on its own event-loop thread; the main thread only waits for a signal to end
// the process. No `await` here: an async main would park this thread in Dispatch and start
// Dispatch's worker threads, which serve nothing (docs/PERFORMANCE.md, "Memory").
while true { pause() }
