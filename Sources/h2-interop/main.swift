// A gRPC peer for the Python interoperability tests in Tests/Interop: it serves a test service
// (`serve ADDRESS`) or calls one (`call TARGET SCENARIO`). Messages are raw bytes.
import H2
import RPCCore
import Platform
import ProtoWire

#if canImport(Glibc)
import Glibc
#endif

/// A message whose wire form is its payload, so any peer can use identity serializers.
struct RawMessage: ProtoMessage {
    static let protoMessageName = "interop.Raw"
    var bytes: [UInt8] = []
    init() {}
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(_ text: String) { self.bytes = Array(text.utf8) }
    init(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoWireError) { self.bytes = Array(bytes) }
    func serializedBytes() -> [UInt8] { bytes }
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

func method(_ name: String, _ kind: GRPCMethodKind) -> GRPCMethodDescriptor {
    GRPCMethodDescriptor(service: "interop.Test", method: name, kind: kind)
}

func makeRouter() -> GRPCRouter {
    var router = GRPCRouter()
    router.registerUnary(method("Echo", .unary)) { (req: RawMessage, _) in req }
    // "CODE message" → that status.
    router.registerUnary(method("Fail", .unary)) { (req: RawMessage, ctx) -> RawMessage in
        let parts = req.text.split(separator: " ", maxSplits: 1)
        let code = Int(parts.first ?? "2") ?? 2
        var md = Metadata()
        md.add("x-fail-detail", "detail for \(code)")
        md.add("x-fail-bin", bytes: [0, 1, 2, 255])
        throw RPCError(code: .init(rawValue: code), message: parts.count > 1 ? String(parts[1]) : "", metadata: md)
    }
    // The request metadata, one "key=value" per line; binary values as hex.
    router.registerUnary(method("Metadata", .unary)) { (_: RawMessage, ctx) -> RawMessage in
        var lines: [String] = []
        for entry in ctx.metadata {
            switch entry.value {
            case .string(let s): lines.append("\(entry.key)=\(s)")
            case .binary(let b): lines.append("\(entry.key)=hex:" + b.map { String($0, radix: 16) }.joined(separator: ","))
            }
        }
        if let d = ctx.deadline { lines.append("deadline-ms=\((d - ContinuousClock.now).components.seconds * 1000 + (d - ContinuousClock.now).components.attoseconds / 1_000_000_000_000_000)") }
        return RawMessage(lines.joined(separator: "\n"))
    }
    // Sleeps for the number of milliseconds in the request (cancellable).
    router.registerUnary(method("Sleep", .unary)) { (req: RawMessage, _) -> RawMessage in
        let ms = Int(req.text) ?? 0
        do { try await Task.sleep(for: .milliseconds(ms)) } catch {
            Counters.cancelled.increment()
            throw error
        }
        return RawMessage("slept \(ms)")
    }
    router.registerUnary(method("Cancelled", .unary)) { (_: RawMessage, _) -> RawMessage in
        RawMessage("\(Counters.cancelled.value)")
    }
    // Blocks a worker thread for the number of milliseconds in the request.
    router.registerUnary(method("Offload", .unary)) { (req: RawMessage, _) -> RawMessage in
        let ms = Int(req.text) ?? 0
        return await offload { usleep(UInt32(ms) * 1000); return RawMessage("blocked \(ms)") }
    }
    router.registerUnary(method("Peer", .unary)) { (_: RawMessage, ctx) -> RawMessage in
        guard let p = ctx.peer else { return RawMessage("none") }
        return RawMessage("\(p.pid) \(p.uid) \(p.gid)")
    }
    // "COUNT SIZE" → COUNT messages of SIZE bytes.
    router.registerServerStreaming(method("ServerStream", .serverStreaming)) { (req: RawMessage, writer: ResponseStreamWriter<RawMessage>, _) in
        let parts = req.text.split(separator: " ").compactMap { Int($0) }
        let count = parts.first ?? 0, size = parts.count > 1 ? parts[1] : 1
        for i in 0..<count { try await writer.write(RawMessage([UInt8](repeating: UInt8(i & 0xFF), count: size))) }
    }
    // → "COUNT TOTAL_BYTES".
    router.registerClientStreaming(method("ClientStream", .clientStreaming)) { (requests: RequestStream<RawMessage>, _) -> RawMessage in
        var count = 0, total = 0
        for try await r in requests { count += 1; total += r.bytes.count }
        return RawMessage("\(count) \(total)")
    }
    router.registerBidirectionalStreaming(method("Bidi", .bidirectionalStreaming)) { (requests: RequestStream<RawMessage>, writer: ResponseStreamWriter<RawMessage>, _) in
        for try await r in requests { try await writer.write(r) }
    }
    return router
}

import Synchronization

/// Counts across calls.
final class Counter: Sendable {
    private let storage = Atomic<Int>(0)
    func increment() { storage.add(1, ordering: .relaxed) }
    var value: Int { storage.load(ordering: .relaxed) }
}
enum Counters { static let cancelled = Counter() }

func serve(_ args: [String]) async throws {
    guard let address = args.first else { fatalError("usage: h2-interop serve ADDRESS [--max-receive N] [--allow-uid U] [--loops N]") }
    var config = GRPCServerConfiguration(address: address)
    var i = 1
    while i < args.count {
        switch args[i] {
        case "--max-receive": config.maxReceiveMessageSize = Int(args[i + 1])!; i += 1
        case "--allow-uid": config.allowedUIDs = [UInt32(args[i + 1])!]; i += 1
        case "--loops": config.eventLoopCount = Int(args[i + 1])!; i += 1
        case "--mode": config.socketMode = UInt32(args[i + 1], radix: 8)!; i += 1
        case "--max-connections": config.maxConnections = Int(args[i + 1])!; i += 1
        case "--max-buffered": config.maxBufferedRequestBytesPerConnection = Int(args[i + 1])!; i += 1
        case "--idle-timeout-ms": config.idleTimeout = .milliseconds(Int(args[i + 1])!); i += 1
        case "--compress": config.responseCompression = compression(named: args[i + 1]); i += 1
        default: fatalError("unknown option \(args[i])")
        }
        i += 1
    }
    let server = GRPCServer(router: makeRouter(), configuration: config)
    do { try server.start() } catch {
        print("ERROR \(error)")
        exit(2)
    }
    print("LISTENING \(server.listeningAddress ?? address)")
    fflush(nil)
    let stop = Task.detached {
        // SIGTERM/SIGINT → graceful shutdown. The handler writes to a pipe a worker blocks on.
        _ = await offload { () -> Int in
            var b: UInt8 = 0
            return read(signalPipe.read, &b, 1)
        }
        await server.shutdown(grace: .seconds(2))
    }
    try await server.run()
    _ = stop
    print("STOPPED")
    fflush(nil)
}

/// `gzip` or `deflate`, optionally with a level (`gzip:1`).
func compression(named spec: String) -> GRPCCompression {
    let parts = spec.split(separator: ":")
    let base: GRPCCompression
    switch parts.first {
    case "gzip": base = .gzip
    case "deflate": base = .deflate
    default: fatalError("unknown compression \(spec); expected gzip or deflate")
    }
    return parts.count > 1 ? base.level(Int(parts[1])!) : base
}

nonisolated(unsafe) var signalPipe: (read: Int32, write: Int32) = (-1, -1)

func installSignalHandlers() {
    var fds: [Int32] = [0, 0]
    pipe(&fds)
    signalPipe = (fds[0], fds[1])
    let handler: @convention(c) (Int32) -> Void = { _ in
        var b: UInt8 = 1
        _ = write(signalPipe.write, &b, 1)
    }
    signal(SIGTERM, handler)
    signal(SIGINT, handler)
}

installSignalHandlers()
let args = Array(CommandLine.arguments.dropFirst())
switch args.first {
case "serve": try await serve(Array(args.dropFirst()))
case "call": try await runClient(Array(args.dropFirst()))
default:
    print("usage: h2-interop serve ADDRESS | call TARGET SCENARIO")
    exit(64)
}
