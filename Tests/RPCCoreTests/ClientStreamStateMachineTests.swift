import RPCCore
import Testing

/// A client call that has received `fields` (headers and trailers).
private func received(_ fields: [(String, String)], maxMessageSize: Int = 1024) -> ClientStreamStateMachine {
    var m = ClientStreamStateMachine(maxMessageSize: maxMessageSize)
    for (name, value) in fields { _ = m.receiveHeader(name, value) }
    return m
}

private func status(_ m: ClientStreamStateMachine, reset: UInt32 = 0) -> RPCError? {
    var m = m
    return m.streamClosed(resetCode: reset, path: "/pkg.Svc/M", target: "unix:///s.sock")
}

@Suite struct ClientStreamStateMachineTests {
    @Test func okStatusIsNil() {
        let m = received([(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "0")])
        #expect(status(m) == nil)
    }

    @Test func statusMessageAndMetadataFromTrailers() {
        let m = received([
            (":status", "200"), ("content-type", "application/grpc"), ("x-volume", "pvc-1"), ("x-raw-bin", "AAH/"),
            ("grpc-status", "5"), ("grpc-message", "volume %22pvc-1%22 not found %E2%9C%93"), ("grpc-accept-encoding", "gzip"),
        ])
        var metadata = Metadata()
        metadata.add("x-volume", "pvc-1")
        metadata.add("x-raw-bin", bytes: [0, 1, 255])
        #expect(status(m) == RPCError(code: .notFound, message: "volume \"pvc-1\" not found ✓", metadata: metadata))
    }

    @Test func malformedStatusIsUnknown() {
        #expect(status(received([(":status", "200"), ("grpc-status", "five")]))?.code == .unknown)
    }

    @Test(arguments: [(404, RPCError.Code.unimplemented), (503, .unavailable), (401, .unauthenticated), (500, .unknown)])
    func httpStatusWithoutGRPCStatus(http: Int, code: RPCError.Code) {
        let error = status(received([(":status", String(http))]))
        #expect(error == RPCError(code: code, message: "/pkg.Svc/M on unix:///s.sock: HTTP status \(http)"))
    }

    @Test func nonGRPCContentTypeIsUnknown() {
        let error = status(received([(":status", "200"), ("content-type", "text/html")]))
        #expect(error == RPCError(code: .unknown, message: "/pkg.Svc/M on unix:///s.sock: the response's content-type is text/html, not application/grpc"))
    }

    @Test(arguments: [
        (HTTP2ErrorCode.refusedStream, RPCError(code: .unavailable, message: "unix:///s.sock refused the stream for /pkg.Svc/M")),
        (HTTP2ErrorCode.cancel, RPCError(code: .cancelled, message: "unix:///s.sock cancelled /pkg.Svc/M")),
        (HTTP2ErrorCode.noError, RPCError(code: .internalError, message: "unix:///s.sock ended /pkg.Svc/M without a grpc-status")),
        (UInt32(2), RPCError(code: .internalError, message: "unix:///s.sock reset /pkg.Svc/M with HTTP/2 error 2")),
    ])
    func resetWithoutStatus(code: UInt32, expected: RPCError) {
        #expect(status(ClientStreamStateMachine(maxMessageSize: 10), reset: code) == expected)
    }

    @Test func encodings() {
        var m = ClientStreamStateMachine(maxMessageSize: 10)
        let gzip = m.receiveHeader("grpc-encoding", "gzip")
        #expect(gzip == .gzip)
        let identity = m.receiveHeader("grpc-encoding", "identity")
        #expect(identity == nil && m.unsupportedEncoding == nil)
        let snappy = m.receiveHeader("grpc-encoding", "snappy")
        #expect(snappy == nil && m.unsupportedEncoding == "snappy")
    }

    @Test(arguments: [1, 2, 5, 100])
    func messagesSplitAcrossFrames(chunk: Int) {
        var m = ClientStreamStateMachine(maxMessageSize: 100)
        let wire = GRPCFraming.frame([1, 2, 3]) + GRPCFraming.frame([]) + GRPCFraming.frame(Array(repeating: 7, count: 40))
        var got: [[UInt8]] = []
        var i = 0
        while i < wire.count {
            let end = min(wire.count, i + chunk)
            let error = Array(wire[i..<end]).withUnsafeBytes { m.receiveData($0, path: "/p", target: "t") { got.append($0) } }
            #expect(error == nil)
            i = end
        }
        #expect(got == [[1, 2, 3], [], Array(repeating: 7, count: 40)])
    }

    @Test func oversizedResponseIsResourceExhausted() {
        var m = ClientStreamStateMachine(maxMessageSize: 4)
        let error = GRPCFraming.frame([1, 2, 3, 4, 5]).withUnsafeBytes { m.receiveData($0, path: "/p", target: "t") { _ in } }
        #expect(error == RPCError(code: .resourceExhausted, message: "response from t for /p: message of 5 bytes exceeds the limit of 4 bytes"))
    }

    @Test func compressedResponseInAnUnsupportedEncodingIsInternal() {
        var m = ClientStreamStateMachine(maxMessageSize: 100)
        _ = m.receiveHeader("grpc-encoding", "snappy")
        let error = [UInt8]([1, 0, 0, 0, 1, 9]).withUnsafeBytes { m.receiveData($0, path: "/p", target: "t") { _ in } }
        #expect(error?.code == .internalError)
        #expect(error?.message == "t answered /p with grpc-encoding snappy, which is not supported (identity,deflate,gzip)")
    }

    @Test func requestSideDefersUntilResumedAndEndsTheStream() {
        var m = ClientStreamStateMachine(maxMessageSize: 10)
        #expect(m.read(copied: 9, queueEmpty: false) == .send)
        #expect(m.read(copied: 9, queueEmpty: true) == .send)
        #expect(m.read(copied: 0, queueEmpty: true) == .deferred)
        #expect(m.deferred)
        let first = m.resume()
        let second = m.resume()
        #expect(first && !second)
        m.endRequests()
        #expect(m.read(copied: 0, queueEmpty: true) == .endStream)
    }

    @Test func completesOnce() {
        var m = ClientStreamStateMachine(maxMessageSize: 10)
        _ = m.read(copied: 0, queueEmpty: true)
        let first = m.complete()
        let second = m.complete()
        #expect(first && !second && m.finished)
        let resumed = m.resume()
        #expect(!resumed)  // a finished call's data source is not resumed
    }
}
