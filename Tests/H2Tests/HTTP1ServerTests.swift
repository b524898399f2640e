import Glibc
import Platform
import Synchronization
import TestSupport
import Testing

@testable import H2
import RPCCore

/// The one-request HTTP/1.1 server on the shared loop: partial, slow, oversized and excess requests.
@Suite struct HTTP1ServerTests {
    static func configuration(
        maxConnections: Int = 4, headTimeout: Duration = .milliseconds(300), responseTimeout: Duration = .seconds(60)
    ) -> HTTP1Server.Configuration {
        HTTP1Server.Configuration(
            maxConnections: maxConnections, maxRequestHeadBytes: 64, requestHeadTimeout: headTimeout,
            responseTimeout: responseTimeout,
            badRequest: HTTP1Response(status: 400, reason: "Bad Request", body: "bad\n"),
            tooManyConnections: HTTP1Response(status: 503, reason: "Service Unavailable", body: "busy\n"),
            responseTimedOut: HTTP1Response(status: 503, reason: "Service Unavailable", body: "late\n"))
    }

    /// A listening loopback socket and its port.
    static func listener() -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                precondition(bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0)
            }
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// Sends `parts` with `pause` between them, then reads the whole answer; on a pool thread.
    static func exchange(_ port: UInt16, _ parts: [String], pause: Duration = .zero) async -> String {
        await offload { loopbackExchange(port: Int(port), parts, pauseMicroseconds: UInt32(pause.wholeNanoseconds / 1000)) }
    }

    static func withServer(
        _ configuration: HTTP1Server.Configuration = configuration(),
        respond: @escaping @Sendable (HTTP1Request) async -> HTTP1Response = { request in
            HTTP1Response(status: 200, reason: "OK", body: "\(request.method) \(request.path)\n", headers: [("X-Target", request.target)])
        },
        _ body: (UInt16) async throws -> Void
    ) async throws {
        let (fd, port) = listener()
        let server = try HTTP1Server(listeningSocket: fd, configuration: configuration, respond: respond)
        defer { server.stop() }
        try await body(port)
    }

    @Test func aHeadInPiecesIsAnsweredOnceItIsComplete() async throws {
        // The head timeout is not what is tested here: a loaded machine may stretch the pauses.
        try await Self.withServer(Self.configuration(headTimeout: .seconds(20))) { port in
            let answer = await Self.exchange(port, ["GE", "T /a?b=1 HTT", "P/1.1\r\nHost: x\r", "\n\r\n"], pause: .milliseconds(20))
            #expect(
                answer
                    == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 7\r\nX-Target: /a?b=1\r\nConnection: close\r\n\r\nGET /a\n")
        }
    }

    @Test func headIsAnsweredWithoutBody() async throws {
        try await Self.withServer { port in
            let answer = await Self.exchange(port, ["HEAD /x HTTP/1.0\r\n\r\n"])
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(answer.hasSuffix("Content-Length: 8\r\nX-Target: /x\r\nConnection: close\r\n\r\n"))
        }
    }

    /// A head that never ends is answered from its request line when the time is up, or with 400
    /// when it has none; one longer than the limit likewise, without waiting.
    @Test func slowAndOversizedHeadsAreAnsweredFromWhatArrived() async throws {
        try await Self.withServer { port in
            let start = ContinuousClock.now
            #expect(await Self.exchange(port, ["GET /slow HTTP/1.1\r\nHost:"]).hasSuffix("\r\n\r\nGET /slow\n"))
            #expect(ContinuousClock.now - start >= .milliseconds(300))
            #expect(await Self.exchange(port, ["GET /slo"]).hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
            let long = "GET /big HTTP/1.1\r\nX-Padding: " + String(repeating: "p", count: 200) + "\r\n\r\n"
            #expect(await Self.exchange(port, [long]).hasSuffix("\r\n\r\nGET /big\n"))
            #expect(await Self.exchange(port, ["hello\r\n\r\n"]).hasSuffix("\r\n\r\nbad\n"))
        }
    }

    /// A request body the server never reads does not turn the close into a reset: the answer
    /// arrives whole.
    @Test func unreadRequestBytesDoNotCutTheAnswer() async throws {
        try await Self.withServer(Self.configuration(headTimeout: .seconds(60))) { port in
            let body = String(repeating: "b", count: 32 * 1024)
            let answer = await Self.exchange(port, ["POST /p HTTP/1.1\r\nContent-Length: 32768\r\n\r\n", body], pause: .milliseconds(50))
            #expect(answer.hasSuffix("\r\n\r\nPOST /p\n"))
        }
    }

    @Test func connectionsBeyondTheLimitGetTheBusyAnswer() async throws {
        // The silent connection keeps its place for the whole test.
        try await Self.withServer(Self.configuration(maxConnections: 1, headTimeout: .seconds(60))) { port in
            let silent = connectLoopback(port: Int(port))
            defer { close(silent) }
            try await Task.sleep(for: .milliseconds(50))
            #expect(await Self.exchange(port, ["GET / HTTP/1.1\r\n\r\n"]).hasSuffix("\r\n\r\nbusy\n"))
        }
    }

    @Test func aResponderThatTakesTooLongIsCancelledAndAnsweredForIt() async throws {
        final class Flag: Sendable {
            let value = Atomic<Bool>(false)
            var isSet: Bool { value.load(ordering: .relaxed) }
        }
        let cancelled = Flag()
        try await Self.withServer(Self.configuration(responseTimeout: .milliseconds(100))) { _ in
            do { try await Task.sleep(for: .seconds(60)) } catch { cancelled.value.store(true, ordering: .relaxed) }
            return HTTP1Response(status: 200, reason: "OK", body: "too late\n")
        } _: { port in
            #expect(await Self.exchange(port, ["GET / HTTP/1.1\r\n\r\n"]).hasSuffix("\r\n\r\nlate\n"))
            let deadline = ContinuousClock.now + .seconds(10)
            while !cancelled.isSet && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(cancelled.isSet)
        }
    }
}
