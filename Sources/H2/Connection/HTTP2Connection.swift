#if canImport(Glibc)
import Glibc
#endif
import CNGHTTP2
import Platform

/// Header fields laid out for `nghttp2_submit_*`, which copies them during the call.
struct HeaderBlock {
    private var bytes: [UInt8] = []
    private var spans: [(Int, Int, Int, Int)] = []

    init() {
        bytes.reserveCapacity(256)
        spans.reserveCapacity(12)  // a request with grpc-timeout, grpc-accept-encoding and some metadata
    }

    init(_ fields: [(String, String)]) {
        self.init()
        for (n, v) in fields { add(n, v) }
    }

    mutating func add(_ name: String, _ value: String) {
        let ns = bytes.count
        bytes.append(contentsOf: name.utf8)
        let vs = bytes.count
        bytes.append(contentsOf: value.utf8)
        spans.append((ns, vs - ns, vs, bytes.count - vs))
    }

    var count: Int { spans.count }

    func withNV<R>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        bytes.withUnsafeBufferPointer { raw in
            let base = UnsafeMutablePointer(mutating: raw.baseAddress ?? UnsafePointer(bitPattern: 1)!)
            return withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(spans.count, 1)) { nva in
                for (i, s) in spans.enumerated() {
                    nva[i] = nghttp2_nv(
                        name: base + s.0, value: base + s.2, namelen: s.1, valuelen: s.3,
                        flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                }
                return body(UnsafePointer(nva.baseAddress!), spans.count)
            }
        }
    }
}

/// Header fields fixed for the life of the process (for example `:status: 200`), handed to nghttp2
/// without copying. Immutable once built.
final class StaticHeaders: @unchecked Sendable {
    let nva: UnsafeMutablePointer<nghttp2_nv>
    let count: Int

    init(_ fields: [(String, String)]) {
        count = fields.count
        nva = .allocate(capacity: fields.count)
        for (i, (n, v)) in fields.enumerated() {
            let nb = Array(n.utf8), vb = Array(v.utf8)
            let np = UnsafeMutablePointer<UInt8>.allocate(capacity: max(nb.count, 1))
            let vp = UnsafeMutablePointer<UInt8>.allocate(capacity: max(vb.count, 1))
            np.initialize(from: nb, count: nb.count)
            vp.initialize(from: vb, count: vb.count)
            nva[i] = nghttp2_nv(
                name: np, value: vp, namelen: nb.count, valuelen: vb.count,
                flags: UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue))
        }
    }
}

/// The descriptor, buffers and nghttp2 session of one HTTP/2 connection, shared by the server and
/// the client side. Loop thread only: every method runs on `loop`'s thread.
class HTTP2Connection: LoopSelectable, LoopFlushable, @unchecked Sendable {
    /// Output buffered beyond this stops pulling frames from nghttp2 and reading from the peer.
    static let outputCap = 64 * 1024

    let loop: EventLoop
    let fd: Int32
    /// Names the peer in errors, for example the socket path.
    let peerName: String
    var token: UInt64 = 0
    var session: OpaquePointer? = nil
    private(set) var isClosed = false
    private var flushQueued = false
    private var writeBlocked = false
    private var out: UnsafeMutableRawPointer? = nil
    private var outCapacity = 0
    private var outStart = 0
    private var outEnd = 0
    /// Why the connection closed, when it failed.
    var closeReason: String? = nil

    init(loop: EventLoop, fd: Int32, peerName: String) {
        self.loop = loop
        self.fd = fd
        self.peerName = peerName
    }

    deinit {
        if let s = session { nghttp2_session_del(s) }
        out?.deallocate()
        if !isClosed { Sys.close(fd) }
    }

    /// Registers with the loop for reading. Loop thread only.
    func activate() throws(SystemError) {
        token = try loop.register(fd, events: Epoll.readable, self)
        scheduleFlush()
    }

    // MARK: Hooks for subclasses

    /// Called after each `nghttp2_session_mem_recv` returns, to act on what the callbacks recorded.
    func afterReceive() {}
    /// Called once when the connection has closed.
    func didClose() {}

    // MARK: I/O

    func handleEvent(_ events: UInt32) {
        if isClosed { return }
        if events & Epoll.writable != 0 && writeBlocked {
            writeBlocked = false
            loop.modify(fd, token: token, events: Epoll.readable)
            flush()
            if isClosed { return }
        }
        if events & (Epoll.readable | Epoll.hangup) != 0 && !writeBlocked {
            readAvailable()
        }
    }

    private func readAvailable() {
        let buffer = loop.readBuffer
        while !isClosed {
            let result: IOResult<Int>
            do { result = try Sys.read(fd, buffer) } catch {
                close(reason: "\(error)")
                return
            }
            switch result {
            case .wouldBlock:
                scheduleFlush()
                return
            case .done(0):
                close(reason: nil)
                return
            case .done(let n):
                let rv = nghttp2_session_mem_recv(session, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), n)
                if rv < 0 {
                    // nghttp2 has queued GOAWAY for most errors: try to deliver it, then close.
                    flush()
                    close(reason: "HTTP/2 protocol error from \(peerName): \(String(cString: nghttp2_strerror(Int32(rv))))")
                    return
                }
                afterReceive()
                if n < buffer.count || writeBlocked {
                    scheduleFlush()
                    return
                }
            }
        }
    }

    /// Asks for a flush at the end of this loop turn.
    func scheduleFlush() {
        if flushQueued || isClosed { return }
        flushQueued = true
        loop.needsFlush(self)
    }

    /// Pulls frames from nghttp2 into the output buffer and writes them with one call.
    func flush() {
        flushQueued = false
        if isClosed || writeBlocked { return }
        guard let session else { return }
        while true {
            while outEnd - outStart < Self.outputCap {
                var data: UnsafePointer<UInt8>? = nil
                let n = nghttp2_session_mem_send(session, &data)
                if n < 0 {
                    close(reason: "HTTP/2 error towards \(peerName): \(String(cString: nghttp2_strerror(Int32(n))))")
                    return
                }
                if n == 0 { break }
                append(data!, n)
            }
            if outEnd == outStart { break }
            var iov = iovec(iov_base: out! + outStart, iov_len: outEnd - outStart)
            let result: IOResult<Int>
            do { result = try Sys.writev(fd, &iov, 1) } catch {
                close(reason: "\(error)")
                return
            }
            switch result {
            case .done(let n):
                outStart += n
                if outStart == outEnd {
                    outStart = 0
                    outEnd = 0
                    if nghttp2_session_want_write(session) != 0 { continue }
                    break
                }
                blockOnWrite()
                return
            case .wouldBlock:
                blockOnWrite()
                return
            }
            break
        }
        if nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 {
            close(reason: nil)
        }
    }

    private func blockOnWrite() {
        writeBlocked = true
        loop.modify(fd, token: token, events: Epoll.writable)
    }

    private func append(_ data: UnsafePointer<UInt8>, _ n: Int) {
        if outEnd + n > outCapacity {
            if outStart > 0 && outEnd - outStart + n <= outCapacity {
                (out! + 0).copyMemory(from: out! + outStart, byteCount: outEnd - outStart)
                outEnd -= outStart
                outStart = 0
            } else {
                let newCap = max(outCapacity * 2, outEnd - outStart + n, 16 * 1024)
                let p = UnsafeMutableRawPointer.allocate(byteCount: newCap, alignment: 16)
                if let old = out {
                    p.copyMemory(from: old + outStart, byteCount: outEnd - outStart)
                    old.deallocate()
                }
                out = p
                outEnd -= outStart
                outStart = 0
                outCapacity = newCap
            }
        }
        (out! + outEnd).copyMemory(from: data, byteCount: n)
        outEnd += n
    }

    /// Closes the descriptor now. Idempotent.
    func close(reason: String?) {
        if isClosed { return }
        isClosed = true
        if closeReason == nil { closeReason = reason }
        loop.deregister(fd, token: token)
        Sys.close(fd)
        didClose()
    }
}

/// The nghttp2 callbacks' way back to their connection.
@inline(__always)
func connection<T: HTTP2Connection>(_ userData: UnsafeMutableRawPointer?, as: T.Type) -> T {
    Unmanaged<T>.fromOpaque(userData!).takeUnretainedValue()
}
