import H2
import RPCCore
import ProtoWire
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP listener that never accepts, with its accept queue filled: a further SYN to it
/// is dropped, so a client's connect stays in flight until the client gives up.
final class FullBacklogListener {
    let listener: Int32
    private(set) var fillers: [Int32] = []
    let port: UInt16
    var address: String { "127.0.0.1:\(port)" }

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        guard bound == 0, listen(listener, 0) == 0 else {
            Glibc.close(listener)
            throw RPCError(code: .internalError, message: "bind/listen: errno \(errno)")
        }
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        self.listener = listener
        self.port = UInt16(bigEndian: sin.sin_port)
        // Connect until one handshake does not complete: the queue is full from then on.
        for _ in 0..<16 {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            fillers.append(s)
            _ = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, len) } }
            var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
            if poll(&p, 1, 500) == 0 { return }
        }
        close()
        throw RPCError(code: .internalError, message: "the accept queue of 127.0.0.1:\(port) did not fill up")
    }

    func close() {
        for fd in fillers { Glibc.close(fd) }
        fillers = []
        Glibc.close(listener)
    }
}

/// A loopback port nothing listens on (bound once, then released).
func closedPort() -> String {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
    _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
    return "127.0.0.1:\(UInt16(bigEndian: sin.sin_port))"
}

/// The error a unary echo call ends with, nil when it succeeds.
func echoError(_ channel: GRPCChannel, _ options: CallOptions = CallOptions()) async -> RPCError? {
    do {
        let _: Raw = try await channel.unary(echo, request: Raw("x"), options: options)
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return RPCError(code: .unknown, message: "\(error)")
    }
}

/// TCP connects happen on the client loop without blocking it.
@Suite(.timeLimit(.minutes(1))) struct ClientConnectTests {
    @Test func callsOnTheSameLoopProgressWhileAConnectIsPending() async throws {
        let stuckServer = try FullBacklogListener()
        defer { stuckServer.close() }
        let path = socketPath()
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: "unix://\(path)")) { _ in
            let stuck = GRPCChannel(target: stuckServer.address)
            defer { stuck.close() }
            let live = GRPCChannel(target: "unix://\(path)")
            defer { live.close() }
            // The connect starts and is still in flight when waiting for it gives up.
            await #expect(throws: RPCError.self) { try await stuck.waitUntilReady(timeout: .milliseconds(200)) }
            let finished = Atomic<Bool>(false)
            let pendingCall = Task { () -> RPCError? in
                let error = await echoError(stuck, CallOptions(timeout: .seconds(50)))
                finished.store(true, ordering: .sequentiallyConsistent)
                return error
            }
            // Meanwhile the loop serves other calls, one after the other.
            for i in 0..<50 {
                let reply: Raw = try await live.unary(echo, request: Raw("\(i)"))
                #expect(reply.text == "\(i)")
            }
            let stillConnecting = !finished.load(ordering: .sequentiallyConsistent)
            #expect(stillConnecting, "the call on the unreachable address is still connecting")
            pendingCall.cancel()
            let error = await pendingCall.value
            #expect(error?.code == .cancelled)
        }
    }

    @Test func deadlineEndsACallWhileConnecting() async throws {
        let stuckServer = try FullBacklogListener()
        defer { stuckServer.close() }
        let channel = GRPCChannel(target: stuckServer.address)
        defer { channel.close() }
        let error = await echoError(channel, CallOptions(timeout: .milliseconds(200)))
        #expect(error?.code == .deadlineExceeded)
        #expect(error?.message.contains("while connecting to \(stuckServer.address)") == true, "\(String(describing: error))")
    }

    @Test func connectTimeoutFailsTheAttemptNamingTheAddress() async throws {
        let stuckServer = try FullBacklogListener()
        defer { stuckServer.close() }
        var configuration = GRPCChannelConfiguration()
        configuration.connectTimeout = .milliseconds(200)
        let channel = GRPCChannel(target: stuckServer.address, configuration: configuration)
        defer { channel.close() }
        // Three calls wait for the same attempt and share its failure.
        async let a = echoError(channel)
        async let b = echoError(channel)
        async let c = echoError(channel)
        for error in await [a, b, c] {
            #expect(error?.code == .unavailable)
            #expect(
                error?.message.hasPrefix("cannot connect to \(stuckServer.address): no answer within 0.2 seconds") == true,
                "\(String(describing: error))")
        }
    }

    @Test func refusedConnectionIsUnavailableNamingTheAddress() async throws {
        let address = closedPort()
        let channel = GRPCChannel(target: address)
        defer { channel.close() }
        let error = await echoError(channel, CallOptions(timeout: .seconds(10)))
        #expect(error?.code == .unavailable)
        #expect(error?.message == "cannot connect to \(address): Connection refused", "\(String(describing: error))")
    }

    @Test func callsStartedBeforeTheConnectFinishesAllGoThrough() async throws {
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: "127.0.0.1:0")) { server in
            let channel = GRPCChannel(target: try #require(server.listeningAddress))
            defer { channel.close() }
            let replies = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        let r: Raw = try await channel.unary(echo, request: Raw("\(i)"), options: CallOptions(timeout: .seconds(20)))
                        return r.text
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(replies == Set((0..<20).map { "\($0)" }))
        }
    }
}
