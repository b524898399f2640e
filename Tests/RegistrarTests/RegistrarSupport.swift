import Platform
import Glibc
import Testing

@testable import Registrar

/// A fresh directory under /tmp, removed (with everything in it) by ``remove()``.
struct ScratchDirectory {
    let path: String
    init(_ label: String = "registrar") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    func remove() {
        _ = system("rm -rf '\(path)'")
    }
}

/// A Unix socket bound (and optionally listening) at a path; closed by ``close()``.
final class UnixListener: @unchecked Sendable {
    let fd: Int32
    let path: String
    init(path: String, listening: Bool = true) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = try PathInspection.unixAddress(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw PathInspection.systemError("bind", path) }
        if listening { Glibc.listen(fd, 8) }
    }
    func listen() { Glibc.listen(fd, 8) }
    func close() { Glibc.close(fd) }
}

/// A log sink that keeps every message.
final class CollectingLogSink: LogSink, @unchecked Sendable {
    private let lock = NSLockLike()
    private var lines: [String] = []
    func write(level: LogLevel, message: String, fields: [(String, String)]) {
        lock.withLock { lines.append(message) }
    }
    var messages: [String] { lock.withLock { lines } }
}

/// A tiny mutex over pthread, enough for test bookkeeping.
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

/// Waits until `condition` holds, checking every few milliseconds; the bound is generous for a
/// loaded machine. Throws naming `what` when it never comes true.
func waitUntil(_ what: String, within bound: Duration = .seconds(30), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + bound
    while !condition() {
        guard ContinuousClock.now < deadline else {
            throw RegistrarError(code: .timeout, message: "test: no \(what) within \(bound)")
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

func writeFile(_ path: String, _ text: String = "x") {
    let f = fopen(path, "w")
    fputs(text, f)
    fclose(f)
}
