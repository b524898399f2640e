#if canImport(Glibc)
import Glibc
#endif
import CNGHTTP2
public import Platform
public import ProtoWire
public import RPCCore
import Synchronization

/// How a ``GRPCServer`` listens and what it allows.
public struct GRPCServerConfiguration: Sendable {
    /// Where to listen: `unix:///path`, a plain path, or `host:port` (TCP; port 0 picks one).
    public var address: String
    /// The Unix socket file's permission bits.
    public var socketMode: UInt32 = 0o660
    /// The permission bits of the directories the server creates when the socket's directory (or
    /// a parent of it) does not exist; existing ones are left as they are.
    public var socketDirectoryMode: UInt32 = 0o755
    /// When set, only peers with these uids may call (others get PERMISSION_DENIED).
    public var allowedUIDs: Set<UInt32>? = nil
    /// How many event-loop threads serve connections.
    public var eventLoopCount: Int = 1
    /// Serve on the process-wide event loop, the one clients (``GRPCChannel``), ``TerminationSignals``
    /// and ``HTTP1Server`` run on, instead of threads of the server's own (``eventLoopCount`` is then
    /// ignored): one thread fewer, for a small server in a process whose other work is on that loop
    /// anyway, such as the registrar's registration socket. Its handlers must not block.
    public var usesSharedEventLoop = false
    /// The largest request message accepted; larger ones fail with RESOURCE_EXHAUSTED. For a
    /// compressed message the limit holds before and after decompression.
    public var maxReceiveMessageSize: Int = 4 * 1024 * 1024
    /// Compress response messages with this encoding when the client's `grpc-accept-encoding`
    /// lists it; nil (the default) answers uncompressed. Compressed requests (`gzip`, `deflate`)
    /// are accepted either way.
    public var responseCompression: GRPCCompression? = nil
    /// SETTINGS_MAX_CONCURRENT_STREAMS: calls one connection may have open at once.
    public var maxConcurrentStreams: UInt32 = 1024
    /// SETTINGS_INITIAL_WINDOW_SIZE: how much a client may send on one call before we ask for more.
    public var initialStreamWindowSize: UInt32 = 1024 * 1024
    /// The connection's receive window.
    public var connectionWindowSize: UInt32 = 16 * 1024 * 1024
    /// SETTINGS_MAX_FRAME_SIZE.
    public var maxFrameSize: UInt32 = 16 * 1024
    /// SETTINGS_MAX_HEADER_LIST_SIZE; calls with larger header lists are reset.
    public var maxHeaderListSize: UInt32 = 16 * 1024
    /// Request bytes one connection may buffer across its calls (partial messages and messages
    /// not yet taken by handlers); the call that goes over fails with RESOURCE_EXHAUSTED.
    public var maxBufferedRequestBytesPerConnection: Int = 64 * 1024 * 1024
    /// Connections beyond this many are closed as soon as they are accepted.
    public var maxConnections: Int = 1024
    /// A connection without calls for this long is closed with GOAWAY; nil keeps it open.
    public var idleTimeout: Duration? = .seconds(600)
    /// Serve `grpc.health.v1.Health` (see ``GRPCServer/health``) unless the router has it.
    public var enableHealthService = true
    /// Serve `grpc.reflection.v1.ServerReflection` (and `v1alpha`) unless the router has it.
    public var enableReflection = true
    /// The `.proto` files reflection describes, usually the `<File>ProtoFile.descriptor` of each
    /// generated file whose services the router serves (for example `CsiProtoFile.descriptor`).
    /// The well-known files they import, and the built-in services' own files, are added.
    public var reflectionFiles: [ProtoFileDescriptor] = []
    /// After this long without calls or other events, an event loop returns the heap memory freed
    /// since it last did so to the system (`malloc_trim`), so a burst of calls does not leave the
    /// process larger when it goes idle; nil never trims. A trim takes microseconds and happens once
    /// per quiet spell, never while calls keep arriving.
    public var heapTrimDelay: Duration? = .seconds(1)

    /// A configuration listening on `address` with the defaults above.
    public init(address: String) { self.address = address }
}

/// Why a server could not start.
public struct GRPCServerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, naming the address.
    public var message: String
    /// The failed system call, when there was one.
    public var underlying: SystemError?
    /// Creates an error.
    public init(message: String, underlying: SystemError? = nil) {
        self.message = message
        self.underlying = underlying
    }
    public var description: String { underlying.map { "\(message): \($0.reason)" } ?? message }
}

/// nghttp2 session options shared by a server's connections. Immutable after creation.
final class SessionOptions: @unchecked Sendable {
    let option: OpaquePointer
    init(server: Bool) {
        var o: OpaquePointer? = nil
        nghttp2_option_new(&o)
        option = o!
        nghttp2_option_set_max_outbound_ack(option, 1000)
        nghttp2_option_set_max_settings(option, 32)
        nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096)
        nghttp2_option_set_max_continuations(option, 8)
        if server {
            nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33)
            // Request DATA is acknowledged as handlers take messages (see ServerConnection.data).
            nghttp2_option_set_no_auto_window_update(option, 1)
        }
    }
    deinit { nghttp2_option_del(option) }
}

/// What every connection of a server shares.
final class ServerCore: Sendable {
    let configuration: GRPCServerConfiguration
    let router: GRPCRouter
    let address: SocketAddress
    let group: EventLoopGroup
    let sessionOptions = SessionOptions(server: true)
    let addressDescription: String
    private let connections = Mutex<[ObjectIdentifier: ServerConnection]>([:])

    init(configuration: GRPCServerConfiguration, router: GRPCRouter, address: SocketAddress, group: EventLoopGroup) {
        self.configuration = configuration
        self.router = router
        self.address = address
        self.group = group
        self.addressDescription = address.description
    }

    var connectionCount: Int { connections.withLock { $0.count } }

    /// Registers an accepted connection unless the limit is reached.
    func admit(_ c: ServerConnection) -> Bool {
        connections.withLock { all in
            if all.count >= configuration.maxConnections { return false }
            all[ObjectIdentifier(c)] = c
            return true
        }
    }

    func connectionClosed(_ c: ServerConnection) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(c)) }
    }

    func allConnections() -> [ServerConnection] { connections.withLock { Array($0.values) } }
}

/// Accepts connections on the listening socket and hands them to the loops. Loop thread only.
final class Listener: LoopSelectable, @unchecked Sendable {
    let core: ServerCore
    let loop: EventLoop
    let fd: Int32
    var token: UInt64 = 0
    var closed = false
    /// Device and inode of the socket file created by bind.
    var socketFile: (dev_t, ino_t)? = nil

    init(core: ServerCore, loop: EventLoop, fd: Int32) {
        self.core = core
        self.loop = loop
        self.fd = fd
    }

    func handleEvent(_ events: UInt32) {
        while !closed {
            let result: IOResult<Int32>
            do { result = try Sys.accept(fd) } catch {
                // Out of descriptors (EMFILE, ENFILE) or memory.
                loop.pauseAccepting(fd, token: token, events: Epoll.readable) { [weak self] in self?.closed ?? true }
                return
            }
            guard case .done(let client) = result else { return }
            var peer: PeerCredentials? = nil
            if case .unix = core.address, let c = Sys.peerCredentials(client) {
                peer = PeerCredentials(pid: c.pid, uid: c.uid, gid: c.gid)
            } else if case .tcp = core.address {
                try? Sys.setOption(client, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            }
            let target = core.group.nextLoop()
            let core = self.core
            let peerCredentials = peer
            let start: @Sendable () -> Void = {
                let conn = ServerConnection(core: core, loop: target, fd: client, peer: peerCredentials)
                guard core.admit(conn) else {
                    conn.close(reason: "connection limit reached")
                    return
                }
                do { try conn.start() } catch { conn.close(reason: "\(error)") }
            }
            if target === loop { start() } else { target.execute(start) }
        }
    }

    func close() {
        if closed { return }
        closed = true
        loop.deregister(fd, token: token)
        Sys.close(fd)
    }
}

/// A gRPC server on Unix sockets (or loopback TCP), on its own event-loop threads.
///
/// Prefer ``withGRPCServer(router:configuration:_:)`` for a scoped lifetime; executables call
/// ``start()`` then ``run()``, and ``shutdown(grace:)`` from a signal handler.
public final class GRPCServer: Sendable {
    private enum State {
        case idle
        case running(ServerCore, Listener)
        case stopped
    }
    /// The configuration the server was created with.
    public let configuration: GRPCServerConfiguration
    private let router: GRPCRouter
    private let state = Mutex<State>(.idle)
    private let waiters = Mutex<(done: Bool, list: [CheckedContinuation<Void, Never>])>((false, []))
    private let bound = Mutex<String?>(nil)
    /// Why ``GRPCServerConfiguration/reflectionFiles`` could not be registered; ``start()`` throws it.
    private let setupError: GRPCServerError?

    /// Creates a server for `router`'s methods; it listens once started.
    public init(router: GRPCRouter, configuration: GRPCServerConfiguration) {
        var router = router
        var setupError: GRPCServerError? = nil
        let withHealth = configuration.enableHealthService && router.handlers[HealthService.check.path] == nil
        if withHealth {
            router.register(HealthService(status: health))
        }
        if configuration.enableReflection && router.handlers[ReflectionService.info.path] == nil {
            var registry = ProtoDescriptorRegistry()
            do {
                try registry.register(configuration.reflectionFiles)
                try registry.register(ReflectionService.protoFiles + (withHealth ? HealthService.protoFiles : []))
            } catch {
                setupError = GRPCServerError(message: "cannot describe the reflection files for \(configuration.address): \(error)")
            }
            router.register(ReflectionService(services: router.methods.map(\.service), registry: registry))
        }
        self.router = router
        self.configuration = configuration
        self.setupError = setupError
    }

    /// The statuses the built-in health service reports; the server as a whole starts SERVING
    /// and turns NOT_SERVING when shutdown begins.
    public let health = HealthStatus()

    /// The address actually listened on (with the chosen port for `host:0`), once started.
    public var listeningAddress: String? { bound.withLock { $0 } }

    /// Binds the socket and starts serving.
    ///
    /// - Throws: ``GRPCServerError`` naming the address when the socket path is served by another
    ///   process, is not a socket, or cannot be created, or when ``GRPCServerConfiguration/reflectionFiles``
    ///   are malformed, conflict or miss an import.
    public func start() throws {
        if let setupError { throw setupError }
        let address: SocketAddress
        do { address = try SocketAddress.parse(configuration.address) } catch {
            throw GRPCServerError(message: error.description)
        }
        let fd = try Self.listen(address, mode: configuration.socketMode, directoryMode: configuration.socketDirectoryMode)
        let group: EventLoopGroup
        do {
            group =
                configuration.usesSharedEventLoop
                ? EventLoopGroup(sharing: try SharedLoop.get())
                : try EventLoopGroup(count: configuration.eventLoopCount, name: "h2-server", heapTrimDelay: configuration.heapTrimDelay)
        } catch {
            Sys.close(fd)
            throw GRPCServerError(message: "cannot start event loops for \(address)", underlying: error)
        }
        var actual = address
        if case .tcp(let host, _) = address {
            var sin = sockaddr_in6()
            var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutablePointer(to: &sin) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) }
            }
            actual = .tcp(host: host, port: UInt16(bigEndian: sin.sin6_port))
        }
        let core = ServerCore(configuration: configuration, router: router, address: actual, group: group)
        let loop = group.loops[0]
        let listener = Listener(core: core, loop: loop, fd: fd)
        if case .unix(let path) = address {
            var st = stat()
            if lstat(path, &st) == 0 { listener.socketFile = (st.st_dev, st.st_ino) }
        }
        let ok = state.withLock { s -> Bool in
            guard case .idle = s else { return false }
            s = .running(core, listener)
            return true
        }
        guard ok else {
            Sys.close(fd)
            group.shutdown()
            throw GRPCServerError(message: "the server for \(address) was already started")
        }
        bound.withLock { $0 = actual.description }
        loop.execute {
            do { listener.token = try loop.register(fd, events: Epoll.readable, listener) } catch {
                listener.closed = true
                Sys.close(fd)
            }
        }
    }

    /// Serves until ``shutdown(grace:)`` completes; starts the server first if needed.
    public func run() async throws {
        let idle = state.withLock { s -> Bool in if case .idle = s { return true } else { return false } }
        if idle { try start() }
        await waitUntilStopped()
    }

    private func waitUntilStopped() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = waiters.withLock { w -> Bool in
                if w.done { return true }
                w.list.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
    }

    /// Stops accepting, sends GOAWAY, lets calls in flight finish within `grace`, then closes
    /// everything, removes the socket file and stops the loops.
    public func shutdown(grace: Duration = .seconds(5)) async {
        let (running, wasIdle) = state.withLock { s -> ((ServerCore, Listener)?, Bool) in
            switch s {
            case .idle:
                s = .stopped
                return (nil, true)
            case .running(let core, let listener):
                s = .stopped
                return ((core, listener), false)
            case .stopped:
                return (nil, false)
            }
        }
        health.markAllNotServing()
        guard let (core, listener) = running else {
            if wasIdle { finishWaiters() } else { await waitUntilStopped() }
            return
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            listener.loop.execute {
                listener.close()
                // Remove the socket file only if it is still the one this server created.
                if case .unix(let path) = core.address, let mine = listener.socketFile {
                    var st = stat()
                    if lstat(path, &st) == 0 && st.st_dev == mine.0 && st.st_ino == mine.1 { unlink(path) }
                }
                c.resume()
            }
        }
        for conn in core.allConnections() { conn.loop.execute { conn.beginShutdown(reason: "server shutdown") } }
        let deadline = ContinuousClock.now + grace
        while core.connectionCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        for conn in core.allConnections() { conn.loop.execute { conn.forceClose() } }
        var spins = 0
        while core.connectionCount > 0 && spins < 200 {
            try? await Task.sleep(for: .milliseconds(5))
            spins += 1
        }
        core.group.shutdown()
        finishWaiters()
    }

    private func finishWaiters() {
        let list = waiters.withLock { w -> [CheckedContinuation<Void, Never>] in
            w.done = true
            defer { w.list.removeAll() }
            return w.list
        }
        for c in list { c.resume() }
    }

    private static func listen(_ address: SocketAddress, mode: UInt32, directoryMode: UInt32) throws -> Int32 {
        let fd: Int32
        do { fd = try Sys.socket(address.family, Int32(SOCK_STREAM.rawValue)) } catch {
            throw GRPCServerError(message: "cannot create a socket for \(address)", underlying: error)
        }
        do {
            switch address {
            case .unix(let path):
                try prepareSocketPath(path, address, directoryMode: directoryMode)
            case .tcp:
                try Sys.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            }
            do {
                _ = try address.withSockAddr { (sa, len) throws(SystemError) in
                    try systemCall("bind") { bind(fd, sa, len) }
                }
            } catch { throw GRPCServerError(message: "cannot bind \(address)", underlying: error) }
            if case .unix(let path) = address, chmod(path, mode_t(mode)) != 0 {
                throw GRPCServerError(message: "cannot set the mode of \(path)", underlying: SystemError(call: "chmod", errno: errno, subject: path))
            }
            do { try systemCall("listen") { Glibc.listen(fd, 1024) } } catch {
                throw GRPCServerError(message: "cannot listen on \(address)", underlying: error)
            }
            return fd
        } catch {
            Sys.close(fd)
            throw error
        }
    }

    /// Creates the parent directory; removes a stale socket file; refuses a live one or a non-socket.
    private static func prepareSocketPath(_ path: String, _ address: SocketAddress, directoryMode: UInt32) throws {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            do { try makeDirectories(String(path[..<slash]), mode: directoryMode) } catch {
                throw GRPCServerError(message: "cannot create the directory \(error.subject)", underlying: error)
            }
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw GRPCServerError(message: "refusing to listen on \(path): it exists and is not a socket")
        }
        let probe: Int32
        do { probe = try Sys.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue)) } catch {
            throw GRPCServerError(message: "cannot probe \(path)", underlying: error)
        }
        defer { Sys.close(probe) }
        let rc: Int32
        do {
            rc = try address.withSockAddr { (sa, len) throws(SystemError) -> Int32 in
                connect(probe, sa, len) == 0 ? 0 : errno
            }
        } catch { throw GRPCServerError(message: "cannot probe \(path)", underlying: error) }
        switch rc {
        case 0, EAGAIN, EINPROGRESS:
            throw GRPCServerError(message: "refusing to listen on \(path): another process is serving it")
        case ECONNREFUSED, ENOENT:
            if unlink(path) != 0 && errno != ENOENT {
                throw GRPCServerError(message: "cannot remove the stale socket \(path)", underlying: SystemError(call: "unlink", errno: errno, subject: path))
            }
        default:
            throw GRPCServerError(message: "cannot probe \(path)", underlying: SystemError(call: "connect", errno: rc, subject: path))
        }
    }

}

/// Runs `body` with a started server and shuts it down afterwards, also when `body` throws.
///
/// - Parameters:
///   - router: The methods to serve.
///   - configuration: Where to listen and the limits.
///   - body: Runs while the server serves.
/// - Returns: What `body` returns.
/// - Throws: ``GRPCServerError`` when the server cannot start, or what `body` throws.
public func withGRPCServer<R: Sendable>(
    router: GRPCRouter, configuration: GRPCServerConfiguration,
    _ body: (GRPCServer) async throws -> R
) async throws -> R {
    let server = GRPCServer(router: router, configuration: configuration)
    try server.start()
    do {
        let result = try await body(server)
        await server.shutdown(grace: .seconds(1))
        return result
    } catch {
        await server.shutdown(grace: .zero)
        throw error
    }
}
