#if canImport(Glibc)
import Glibc
#endif
import CH2Sys
import Platform

/// The socket calls H2 makes, over Platform's ``systemCall(_:_:_:)``: EINTR retried, EAGAIN
/// mapped to `.wouldBlock`, everything else thrown as ``SystemError`` naming the call.
enum Sys {
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlockingSystemCall("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Gathers `count` buffers into one write; `MSG_NOSIGNAL` so a closed peer is an error, not SIGPIPE.
    static func writev(_ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ count: Int32) throws(SystemError) -> IOResult<Int> {
        var msg = msghdr()
        msg.msg_iov = iov
        msg.msg_iovlen = Int(count)
        return try nonBlockingSystemCall("sendmsg") { Glibc.sendmsg(fd, &msg, Int32(MSG_NOSIGNAL)) }
    }

    static func close(_ fd: Int32) {
        // Linux releases the descriptor even when close reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

    static func socket(_ domain: Int32, _ type: Int32) throws(SystemError) -> Int32 {
        let flags: Int32 = type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        return try systemCall("socket") { Glibc.socket(domain, flags, 0) }
    }

    static func accept(_ fd: Int32) throws(SystemError) -> IOResult<Int32> {
        try nonBlockingSystemCall("accept4") { h2_accept(fd) }
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws(SystemError) {
        var v = value
        try systemCall("setsockopt") { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
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
        try systemCall("epoll_create1") { h2_epoll_create() }
    }

    static func add(_ epfd: Int32, _ fd: Int32, events: UInt32, token: UInt64) throws(SystemError) {
        try systemCall("epoll_ctl(ADD)") { h2_epoll_ctl(epfd, h2_epoll_ctl_add(), fd, events, token) }
    }

    static func modify(_ epfd: Int32, _ fd: Int32, events: UInt32, token: UInt64) throws(SystemError) {
        try systemCall("epoll_ctl(MOD)") { h2_epoll_ctl(epfd, h2_epoll_ctl_mod(), fd, events, token) }
    }

    static func remove(_ epfd: Int32, _ fd: Int32) {
        _ = h2_epoll_ctl(epfd, h2_epoll_ctl_del(), fd, 0, 0)
    }
}
