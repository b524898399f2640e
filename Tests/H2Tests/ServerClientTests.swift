import Testing
import H2
import RPCCore
import Platform
import ProtoWire
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A message whose wire form is its payload.
struct Raw: ProtoMessage {
    static let protoMessageName = "test.Raw"
    var bytes: [UInt8] = []
    init() {}
    init(_ text: String) { bytes = Array(text.utf8) }
    init(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoWireError) { self.bytes = Array(bytes) }
    func serializedBytes() -> [UInt8] { bytes }
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

let echo = GRPCMethodDescriptor(service: "test.Svc", method: "Echo", kind: .unary)
let thread = GRPCMethodDescriptor(service: "test.Svc", method: "Thread", kind: .unary)
let fail = GRPCMethodDescriptor(service: "test.Svc", method: "Fail", kind: .unary)
let count = GRPCMethodDescriptor(service: "test.Svc", method: "Count", kind: .serverStreaming)
let sum = GRPCMethodDescriptor(service: "test.Svc", method: "Sum", kind: .clientStreaming)
let chat = GRPCMethodDescriptor(service: "test.Svc", method: "Chat", kind: .bidirectionalStreaming)

func router() -> GRPCRouter {
    var r = GRPCRouter()
    r.registerUnary(echo) { (req: Raw, ctx: ServerContext) in
        Raw(req.text + (ctx.metadata["x-suffix"] ?? ""))
    }
    // Reports whether the handler ran on the same thread before and after a suspension.
    r.registerUnary(thread) { (_: Raw, _: ServerContext) in
        let before = pthread_self()
        let name = callingThreadName()
        await Task.yield()
        // Blocking work hops to a worker and comes back to the loop.
        let worker = await offload { callingThreadName() }
        guard callingThreadName() == name, worker != name else { return Raw("offload did not return to \(name)") }
        return Raw((pthread_equal(before, pthread_self()) != 0 ? "same " : "different ") + name)
    }
    r.registerUnary(fail) { (req: Raw, _: ServerContext) -> Raw in
        throw RPCError(code: .notFound, message: "no volume \(req.text)")
    }
    r.registerServerStreaming(count) { (req: Raw, w: ResponseStreamWriter<Raw>, _: ServerContext) in
        for i in 0..<(Int(req.text) ?? 0) { try await w.write(Raw("\(i)")) }
    }
    r.registerClientStreaming(sum) { (reqs: RequestStream<Raw>, _: ServerContext) in
        var total = 0
        for try await m in reqs { total += Int(m.text) ?? 0 }
        return Raw("\(total)")
    }
    r.registerBidirectionalStreaming(chat) { (reqs: RequestStream<Raw>, w: ResponseStreamWriter<Raw>, _: ServerContext) in
        for try await m in reqs { try await w.write(Raw(m.text.uppercased())) }
    }
    return r
}

/// A fresh socket path in a directory of its own (the server makes it) under ``socketRoot``.
func socketPath() -> String { "\(socketRoot)/\(UInt32.random(in: 0...UInt32.max))/s.sock" }

/// `$TMPDIR/h2-tests-<pid>` (`/tmp` without TMPDIR): every socket directory of this process, removed
/// with everything in it when the process exits.
let socketRoot: String = {
    let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    let root = "\(base)/h2-tests-\(getpid())"
    // Made here: some tests make their socket's directory themselves, one level only.
    mkdir(root, 0o700)
    setenv("H2_TESTS_SOCKET_ROOT", root, 1)
    atexit {
        // No capture in a C callback: the root comes back through the environment.
        guard let root = getenv("H2_TESTS_SOCKET_ROOT") else { return }
        _ = system("rm -rf '\(String(cString: root))'")
    }
    return root
}()

@Suite struct ServerClientTests {
    @Test func allFourCallKinds() async throws {
        let path = socketPath()
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: "unix://\(path)")) { _ in
            let channel = GRPCChannel(target: "unix://\(path)")
            defer { channel.close() }
            var options = CallOptions()
            options.metadata.add("x-suffix", "!")
            let r: Raw = try await channel.unary(echo, request: Raw("hi"), options: options)
            #expect(r.text == "hi!")

            var got: [String] = []
            for try await m in channel.serverStreaming(count, request: Raw("5")) as AsyncThrowingStream<Raw, any Error> {
                got.append(m.text)
            }
            #expect(got == ["0", "1", "2", "3", "4"])

            let (reqs, c) = AsyncStream<Raw>.makeStream()
            for i in 1...10 { c.yield(Raw("\(i)")) }
            c.finish()
            let total: Raw = try await channel.clientStreaming(sum, requests: reqs)
            #expect(total.text == "55")

            let (chatReqs, cc) = AsyncStream<Raw>.makeStream()
            cc.yield(Raw("a")); cc.yield(Raw("b")); cc.finish()
            var replies: [String] = []
            for try await m in channel.bidirectionalStreaming(chat, requests: chatReqs) as AsyncThrowingStream<Raw, any Error> {
                replies.append(m.text)
            }
            #expect(replies == ["A", "B"])
        }
        #expect(access(path, F_OK) != 0, "the socket file is removed on shutdown")
    }

    @Test func missingSocketDirectoriesGetTheConfiguredMode() async throws {
        let path = socketPath()
        let top = String(path[..<path.lastIndex(of: "/")!])
        let socket = top + "/a/b/s.sock"
        defer {
            rmdir(top + "/a/b")
            rmdir(top + "/a")
            rmdir(top)
        }
        var configuration = GRPCServerConfiguration(address: socket)
        configuration.socketDirectoryMode = 0o710
        let mask = umask(0o022)
        defer { umask(mask) }
        try await withGRPCServer(router: router(), configuration: configuration) { _ in
            for directory in [top, top + "/a", top + "/a/b"] {
                var info = stat()
                #expect(stat(directory, &info) == 0)
                #expect(info.st_mode & 0o777 == 0o710, "\(directory)")
            }
        }
    }

    @Test func loopbackTCP() async throws {
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: "127.0.0.1:0")) { server in
            let address = try #require(server.listeningAddress)
            #expect(address.hasPrefix("127.0.0.1:") && !address.hasSuffix(":0"))
            let channel = GRPCChannel(target: address)
            defer { channel.close() }
            let r: Raw = try await channel.unary(echo, request: Raw("tcp"))
            #expect(r.text == "tcp")
        }
    }

    @Test func handlerErrorsReachTheClient() async throws {
        let path = socketPath()
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: path)) { _ in
            let channel = GRPCChannel(target: path)
            defer { channel.close() }
            await #expect(throws: RPCError(code: .notFound, message: "no volume vol-1")) {
                let _: Raw = try await channel.unary(fail, request: Raw("vol-1"))
            }
            let missing = GRPCMethodDescriptor(service: "test.Svc", method: "Missing", kind: .unary)
            do {
                let _: Raw = try await channel.unary(missing, request: Raw())
                Issue.record("expected UNIMPLEMENTED")
            } catch let e as RPCError {
                #expect(e.code == .unimplemented)
            }
        }
    }

    @Test func nonBlockingHandlerStaysOnTheLoopThread() async throws {
        let path = socketPath()
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: path)) { _ in
            let channel = GRPCChannel(target: path)
            defer { channel.close() }
            let r: Raw = try await channel.unary(thread, request: Raw())
            // The handler ran on the server's event-loop thread and stayed there across a suspension.
            #expect(r.text == "same h2-server-0")
        }
    }

    @Test func aServerOnTheSharedLoopServesThereAndLeavesItRunning() async throws {
        for _ in 0..<2 {
            let path = socketPath()
            var configuration = GRPCServerConfiguration(address: path)
            configuration.usesSharedEventLoop = true
            try await withGRPCServer(router: router(), configuration: configuration) { _ in
                let channel = GRPCChannel(target: path)
                defer { channel.close() }
                let r: Raw = try await channel.unary(thread, request: Raw())
                #expect(r.text == "same h2-shared")
            }
        }
        // The second server was served, so the first one's shutdown did not stop the shared loop;
        // clients, which run on it, still work.
        let path = socketPath()
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: path)) { _ in
            let channel = GRPCChannel(target: path)
            defer { channel.close() }
            let r: Raw = try await channel.unary(echo, request: Raw("still"))
            #expect(r.text == "still")
        }
    }

    @Test func unreachableTargetIsUnavailableNamingThePath() async throws {
        let path = socketPath()
        let channel = GRPCChannel(target: "unix://\(path)")
        defer { channel.close() }
        do {
            let _: Raw = try await channel.unary(echo, request: Raw())
            Issue.record("expected UNAVAILABLE")
        } catch let e as RPCError {
            #expect(e.code == .unavailable)
            #expect(e.message == "cannot connect to unix://\(path): No such file or directory")
        }
        await #expect(throws: RPCError.self) { try await channel.waitUntilReady(timeout: .milliseconds(50)) }
    }

    @Test func secondServerOnALiveSocketIsRefused() async throws {
        let path = socketPath()
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: path)) { _ in
            let second = GRPCServer(router: router(), configuration: GRPCServerConfiguration(address: path))
            do {
                try second.start()
                Issue.record("expected a refusal")
            } catch let e as GRPCServerError {
                #expect(e.message.contains(path))
            }
        }
    }
}

@Suite struct BuiltinServiceTests {
    @Test func healthCheckAndWatchFollowStatusChanges() async throws {
        let path = socketPath()
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: path)) { server in
            let channel = GRPCChannel(target: path)
            defer { channel.close() }
            let whole: GRPCHealth.HealthCheckResponse = try await channel.unary(HealthService.check, request: GRPCHealth.HealthCheckRequest())
            #expect(whole.status == .serving)
            server.health.setStatus(.notServing, forService: "test.Svc")
            let svc: GRPCHealth.HealthCheckResponse = try await channel.unary(HealthService.check, request: GRPCHealth.HealthCheckRequest(service: "test.Svc"))
            #expect(svc.status == .notServing)

            let updates: AsyncThrowingStream<GRPCHealth.HealthCheckResponse, any Error> =
                channel.serverStreaming(HealthService.watch, request: GRPCHealth.HealthCheckRequest(service: "test.Svc"))
            var iterator = updates.makeAsyncIterator()
            #expect(try await iterator.next()?.status == .notServing)
            server.health.setStatus(.serving, forService: "test.Svc")
            #expect(try await iterator.next()?.status == .serving)
        }
    }
}

@Suite struct KeepaliveTests {
    @Test func keepaliveKeepsAHealthyConnection() async throws {
        let path = socketPath()
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: path)) { _ in
            var config = GRPCChannelConfiguration()
            config.keepaliveInterval = .milliseconds(20)
            config.keepaliveTimeout = .milliseconds(200)
            let channel = GRPCChannel(target: path, configuration: config)
            defer { channel.close() }
            for i in 0..<5 {
                let r: Raw = try await channel.unary(echo, request: Raw("\(i)"))
                #expect(r.text == "\(i)")
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    @Test func unansweredKeepaliveClosesTheConnection() async throws {
        // A peer that accepts and reads but never writes a single byte.
        let path = socketPath()
        let dir = String(path[..<path.lastIndex(of: "/")!])
        mkdir(dir, 0o755)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        listen(fd, 4)
        let silent = Task {
            await offload { () -> Int32 in
                let c = accept(fd, nil, nil)
                var buf = [UInt8](repeating: 0, count: 4096)
                while read(c, &buf, buf.count) > 0 {}
                return c
            }
        }
        var config = GRPCChannelConfiguration()
        config.keepaliveInterval = .milliseconds(50)
        config.keepaliveTimeout = .milliseconds(100)
        let channel = GRPCChannel(target: path, configuration: config)
        do {
            let _: Raw = try await channel.unary(echo, request: Raw("x"))
            Issue.record("expected UNAVAILABLE")
        } catch let e as RPCError {
            #expect(e.code == .unavailable)
            #expect(e.message.contains("keepalive"))
        }
        channel.close()
        close(fd)
        unlink(path)
        close(await silent.value)
    }
}

import Synchronization

@Suite struct ClientFlowControlTests {
    final class Progress: Sendable {
        let written = Atomic<Int>(0)
        let cancelled = Atomic<Bool>(false)
    }

    static let big = GRPCMethodDescriptor(service: "test.Flow", method: "Big", kind: .serverStreaming)

    func flowRouter(_ progress: Progress) -> GRPCRouter {
        var r = GRPCRouter()
        r.registerServerStreaming(Self.big) { (req: Raw, w: ResponseStreamWriter<Raw>, _: ServerContext) in
            let chunk = Raw(String(repeating: "x", count: 1 << 20))
            do {
                for _ in 0..<(Int(req.text) ?? 0) {
                    try await w.write(chunk)
                    progress.written.add(1, ordering: .relaxed)
                }
            } catch {
                progress.cancelled.store(true, ordering: .relaxed)
                throw error
            }
        }
        return r
    }

    @Test func slowConsumerHoldsBackTheServer() async throws {
        let path = socketPath()
        let progress = Progress()
        try await withGRPCServer(router: flowRouter(progress), configuration: GRPCServerConfiguration(address: path)) { _ in
            let channel = GRPCChannel(target: path)
            defer { channel.close() }
            let stream: AsyncThrowingStream<Raw, any Error> = channel.serverStreaming(Self.big, request: Raw("256"))
            var iterator = stream.makeAsyncIterator()
            _ = try await iterator.next()
            // Wait until the server stops making progress (it has filled the windows, or, without flow
            // control, written all 256), however long a loaded machine takes to get there.
            var written = progress.written.load(ordering: .relaxed)
            var unchanged = 0
            let deadline = ContinuousClock.now + .seconds(30)
            while unchanged < 3 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                let now = progress.written.load(ordering: .relaxed)
                unchanged = now == written ? unchanged + 1 : 0
                written = now
            }
            #expect(unchanged >= 3, "the server was still writing after 30 s")
            // Windows (1 MiB per stream, 16 MiB per connection) bound what may be in flight.
            #expect(written < 40)
            var count = 1
            while try await iterator.next() != nil { count += 1 }
            #expect(count == 256)
        }
    }

    @Test func droppingTheStreamCancelsTheCall() async throws {
        let path = socketPath()
        let progress = Progress()
        try await withGRPCServer(router: flowRouter(progress), configuration: GRPCServerConfiguration(address: path)) { _ in
            let channel = GRPCChannel(target: path)
            defer { channel.close() }
            do {
                let stream: AsyncThrowingStream<Raw, any Error> = channel.serverStreaming(Self.big, request: Raw("100000"))
                var iterator = stream.makeAsyncIterator()
                _ = try await iterator.next()
            }
            // A generous bound: the cancellation reaches the handler in milliseconds on an idle machine.
            let deadline = ContinuousClock.now + .seconds(30)
            while !progress.cancelled.load(ordering: .relaxed) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            let cancelled = progress.cancelled.load(ordering: .relaxed)
            #expect(cancelled)
        }
    }
}
