import H2
import RPCCore
import ProtoWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs client scenarios against an `interop.Test` server; prints `OK name` or `FAIL name: why`.
func runClient(_ arguments: [String]) async throws {
    var args = arguments
    var configuration = GRPCChannelConfiguration()
    if let i = args.firstIndex(of: "--compress"), i + 1 < args.count {
        configuration.compression = compression(named: args[i + 1])
        args.removeSubrange(i...(i + 1))
    }
    guard args.count >= 2 else {
        print("usage: h2-interop call TARGET [--compress gzip|deflate] all|wait|unavailable|SCENARIO...")
        exit(64)
    }
    let channel = GRPCChannel(target: args[0], configuration: configuration)
    var failures = 0
    func check(_ name: String, _ body: () async throws -> Void) async {
        do {
            try await body()
            print("OK \(name)")
        } catch {
            failures += 1
            print("FAIL \(name): \(error)")
        }
        fflush(nil)
    }
    let scenarios = args[1] == "all"
        ? ["unary", "large", "status", "metadata", "deadline", "cancel", "server-stream", "client-stream", "bidi", "concurrent"]
        : Array(args.dropFirst())
    for s in scenarios {
        switch s {
        case "unary":
            await check(s) {
                let r: RawMessage = try await channel.unary(method("Echo", .unary), request: RawMessage("hello"))
                try expect(r.text == "hello", "echo returned \(r.text)")
            }
        case "large":
            await check(s) {
                for size in [1 << 20, 4 << 20] {
                    let payload = RawMessage((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) })
                    let r: RawMessage = try await channel.unary(method("Echo", .unary), request: payload)
                    try expect(r == payload, "a \(size)-byte echo came back different")
                }
            }
        case "status":
            await check(s) {
                for code in 1...16 {
                    do {
                        let _: RawMessage = try await channel.unary(method("Fail", .unary), request: RawMessage("\(code) failed: 100% ünïcode"))
                        throw Mismatch("code \(code): the call succeeded")
                    } catch let e as RPCError {
                        try expect(e.code.rawValue == code, "expected code \(code), got \(e.code)")
                        try expect(e.message == "failed: 100% ünïcode", "code \(code): message \(e.message)")
                        try expect(e.metadata["x-fail-detail"] == "detail for \(code)", "code \(code): trailers \(e.metadata)")
                        try expect(e.metadata.values(forKey: "x-fail-bin") == [.binary([0, 1, 2, 255])], "code \(code): binary trailer \(e.metadata)")
                    }
                }
            }
        case "metadata":
            await check(s) {
                var options = CallOptions()
                options.metadata.add("x-text", "value")
                options.metadata.add("x-blob-bin", bytes: [0, 254, 255])
                let r: RawMessage = try await channel.unary(method("Metadata", .unary), request: RawMessage(), options: options)
                let lines = r.text.split(separator: "\n").map(String.init)
                try expect(lines.contains("x-text=value"), "metadata seen: \(lines)")
                try expect(lines.contains("x-blob-bin=hex:0,fe,ff"), "metadata seen: \(lines)")
            }
        case "deadline":
            await check(s) {
                let start = ContinuousClock.now
                do {
                    let _: RawMessage = try await channel.unary(method("Sleep", .unary), request: RawMessage("3000"), options: CallOptions(timeout: .milliseconds(200)))
                    throw Mismatch("the call succeeded")
                } catch let e as RPCError {
                    try expect(e.code == .deadlineExceeded, "got \(e)")
                }
                let elapsed = ContinuousClock.now - start
                try expect(elapsed < .seconds(2), "took \(elapsed)")
            }
        case "cancel":
            await check(s) {
                let before: RawMessage = try await channel.unary(method("Cancelled", .unary), request: RawMessage())
                let task = Task {
                    let _: RawMessage = try await channel.unary(method("Sleep", .unary), request: RawMessage("5000"))
                }
                try await Task.sleep(for: .milliseconds(200))
                task.cancel()
                do {
                    try await task.value
                    throw Mismatch("the call succeeded")
                } catch let e as RPCError {
                    try expect(e.code == .cancelled, "got \(e)")
                }
                var after = before
                for _ in 0..<100 where after.text == before.text {
                    try await Task.sleep(for: .milliseconds(20))
                    after = try await channel.unary(method("Cancelled", .unary), request: RawMessage())
                }
                try expect(after.text != before.text, "the server did not see the cancellation (\(before.text) → \(after.text))")
            }
        case "server-stream":
            await check(s) {
                var sizes: [Int] = []
                for try await m in channel.serverStreaming(method("ServerStream", .serverStreaming), request: RawMessage("50 1000")) as AsyncThrowingStream<RawMessage, any Error> {
                    sizes.append(m.bytes.count)
                }
                try expect(sizes == Array(repeating: 1000, count: 50), "sizes \(sizes)")
            }
        case "client-stream":
            await check(s) {
                let (requests, c) = AsyncStream<RawMessage>.makeStream()
                for i in 0..<100 { c.yield(RawMessage([UInt8](repeating: 97, count: i))) }
                c.finish()
                let r: RawMessage = try await channel.clientStreaming(method("ClientStream", .clientStreaming), requests: requests)
                try expect(r.text == "100 \((0..<100).reduce(0, +))", "got \(r.text)")
            }
        case "bidi":
            await check(s) {
                let (requests, c) = AsyncStream<RawMessage>.makeStream()
                let responses: AsyncThrowingStream<RawMessage, any Error> = channel.bidirectionalStreaming(method("Bidi", .bidirectionalStreaming), requests: requests)
                var got: [String] = []
                var iterator = responses.makeAsyncIterator()
                for i in 0..<20 {
                    c.yield(RawMessage("m\(i)"))
                    guard let r = try await iterator.next() else { throw Mismatch("the stream ended early") }
                    got.append(r.text)
                }
                c.finish()
                if try await iterator.next() != nil { throw Mismatch("extra response") }
                try expect(got == (0..<20).map { "m\($0)" }, "got \(got)")
            }
        case "concurrent":
            await check(s) {
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    for i in 0..<1000 {
                        group.addTask {
                            let r: RawMessage = try await channel.unary(method("Echo", .unary), request: RawMessage("c\(i)"))
                            return r.text == "c\(i)"
                        }
                    }
                    var ok = 0
                    for try await r in group where r { ok += 1 }
                    try expect(ok == 1000, "\(ok) of 1000 calls answered correctly")
                }
            }
        case "unavailable":
            await check(s) {
                do {
                    let _: RawMessage = try await channel.unary(method("Echo", .unary), request: RawMessage("x"))
                    throw Mismatch("the call succeeded")
                } catch let e as RPCError {
                    print("ERROR \(e)")
                    try expect(e.code == .unavailable, "got \(e)")
                }
            }
        case "wait":
            await check(s) {
                try await channel.waitUntilReady(timeout: .seconds(10))
                let r: RawMessage = try await channel.unary(method("Echo", .unary), request: RawMessage("ready"))
                try expect(r.text == "ready", "got \(r.text)")
            }
        case "wait-for-ready-call":
            await check(s) {
                var options = CallOptions(timeout: .seconds(10))
                options.waitForReady = true
                let r: RawMessage = try await channel.unary(method("Echo", .unary), request: RawMessage("ready"), options: options)
                try expect(r.text == "ready", "got \(r.text)")
            }
        case "per-call-compression":
            // The same compressible payload with deflate for this call, then uncompressed.
            await check(s) {
                let payload = RawMessage((0..<100_000).map { UInt8(truncatingIfNeeded: $0 % 61 + 32) })
                for c in [GRPCCompression.deflate, .identity] {
                    var options = CallOptions()
                    options.compression = c
                    let r: RawMessage = try await channel.unary(method("Echo", .unary), request: payload, options: options)
                    try expect(r == payload, "the \(c) echo came back different")
                }
            }
        case "reconnect":
            // The test restarts the server between the two calls (it waits for "READY1").
            await check(s) {
                let r: RawMessage = try await channel.unary(method("Echo", .unary), request: RawMessage("one"))
                try expect(r.text == "one", "got \(r.text)")
                print("READY1")
                fflush(nil)
                var line = [CChar](repeating: 0, count: 64)
                _ = read(0, &line, 64)
                var options = CallOptions(timeout: .seconds(10))
                options.waitForReady = true
                let r2: RawMessage = try await channel.unary(method("Echo", .unary), request: RawMessage("two"), options: options)
                try expect(r2.text == "two", "got \(r2.text)")
            }
        default:
            print("FAIL \(s): unknown scenario")
            failures += 1
        }
    }
    channel.close()
    exit(failures == 0 ? 0 : 1)
}

struct Mismatch: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw Mismatch(message()) }
}
