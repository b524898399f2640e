#if canImport(Glibc)
import Glibc
#endif
import CH2Sys

/// A failed system call: the call's name, `errno`, and what it was operating on.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    /// The system call that failed, for example `connect`.
    public var call: String
    /// The `errno` value it reported.
    public var errno: Int32
    /// What the call was operating on, for example a socket path.
    public var subject: String

    /// Creates an error.
    public init(call: String, errno: Int32, subject: String = "") {
        self.call = call
        self.errno = errno
        self.subject = subject
    }

    /// `strerror(errno)`.
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        subject.isEmpty ? "\(call): \(reason) (errno \(errno))" : "\(call) \(subject): \(reason) (errno \(errno))"
    }
}

/// The outcome of a non-blocking I/O call.
enum IOResult<T> {
    case done(T)
    case wouldBlock
}

/// Thin wrappers around the system calls H2 makes: EINTR retried, EAGAIN mapped to `.wouldBlock`,
/// everything else thrown as ``SystemError`` naming the call.
enum Sys {
    @inline(__always)
    static func retrying(_ name: String, _ body: () -> Int) throws(SystemError) -> Int {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = Glibc.errno
            if e == EINTR { continue }
            throw SystemError(call: name, errno: e)
        }
    }

    @inline(__always)
    static func nonBlocking(_ name: String, _ body: () -> Int) throws(SystemError) -> IOResult<Int> {
        while true {
            let r = body()
            if r >= 0 { return .done(r) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            throw SystemError(call: name, errno: e)
        }
    }

    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Gathers `count` buffers into one write; `MSG_NOSIGNAL` so a closed peer is an error, not SIGPIPE.
    static func writev(_ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ count: Int32) throws(SystemError) -> IOResult<Int> {
        var msg = msghdr()
        msg.msg_iov = iov
        msg.msg_iovlen = Int(count)
        return try nonBlocking("sendmsg") { Glibc.sendmsg(fd, &msg, Int32(MSG_NOSIGNAL)) }
    }

    static func close(_ fd: Int32) {
        // Linux releases the descriptor even when close reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

    static func socket(_ domain: Int32, _ type: Int32) throws(SystemError) -> Int32 {
        let flags: Int32 = type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        return Int32(try retrying("socket") { () -> Int in Int(Glibc.socket(domain, flags, 0)) })
    }

    static func accept(_ fd: Int32) throws(SystemError) -> IOResult<Int32> {
        let r = try nonBlocking("accept4") { () -> Int in Int(h2_accept(fd)) }
        switch r {
        case .done(let s): return .done(Int32(s))
        case .wouldBlock: return .wouldBlock
        }
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws(SystemError) {
        var v = value
        _ = try retrying("setsockopt") { Int(setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))) }
    }

    static func peerCredentials(_ fd: Int32) -> (pid: Int32, uid: UInt32, gid: UInt32)? {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        guard h2_peercred(fd, &pid, &uid, &gid) == 0 else { return nil }
        return (pid, uid, gid)
    }

    static func socketError(_ fd: Int32) -> Int32 {
        var v: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len) == 0 else { return Glibc.errno }
        return v
    }
}

/// The epoll calls, in one place.
enum Epoll {
    static let readable = h2_epollin()
    static let writable = h2_epollout()
    static let hangup = h2_epollhup()

    static func create() throws(SystemError) -> Int32 {
        Int32(try Sys.retrying("epoll_create1") { Int(h2_epoll_create()) })
    }

    static func add(_ epfd: Int32, _ fd: Int32, events: UInt32, token: UInt64) throws(SystemError) {
        _ = try Sys.retrying("epoll_ctl(ADD)") { Int(h2_epoll_ctl(epfd, h2_epoll_ctl_add(), fd, events, token)) }
    }

    static func modify(_ epfd: Int32, _ fd: Int32, events: UInt32, token: UInt64) throws(SystemError) {
        _ = try Sys.retrying("epoll_ctl(MOD)") { Int(h2_epoll_ctl(epfd, h2_epoll_ctl_mod(), fd, events, token)) }
    }

    static func remove(_ epfd: Int32, _ fd: Int32) {
        _ = h2_epoll_ctl(epfd, h2_epoll_ctl_del(), fd, 0, 0)
    }
}
