import Testing
@testable import RPCCore

@Suite struct DeframerTests {
    func frames(_ payloads: [[UInt8]]) -> [UInt8] { payloads.flatMap { GRPCFraming.frame($0) } }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 100])
    func splitsAnywhere(chunkSize: Int) throws {
        let payloads: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 9, count: 300), [42]]
        let wire = frames(payloads)
        var d = GRPCMessageDeframer(maxMessageSize: 1000)
        var got: [[UInt8]] = []
        var i = 0
        while i < wire.count {
            let end = min(i + chunkSize, wire.count)
            try wire[i..<end].withUnsafeBytes { chunk in try d.process(chunk) { got.append($0) } }
            i = end
        }
        #expect(got == payloads)
        #expect(!d.hasPartialMessage)
    }

    /// Seeded random messages cut at random points: what comes out is what went in.
    @Test(arguments: [1, 2, 3, 42, 1234])
    func randomSplits(seed: UInt64) throws {
        var rng = SplitMix(seed: seed)
        let payloads: [[UInt8]] = (0..<50).map { _ in
            (0..<Int(rng.next() % 3000)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
        let wire = frames(payloads)
        var d = GRPCMessageDeframer(maxMessageSize: 4000)
        var got: [[UInt8]] = []
        var i = 0
        while i < wire.count {
            let end = min(wire.count, i + 1 + Int(rng.next() % 700))
            try wire[i..<end].withUnsafeBytes { chunk in try d.process(chunk) { got.append($0) } }
            i = end
        }
        #expect(got == payloads)
    }

    @Test func partialPrefixIsReported() throws {
        var d = GRPCMessageDeframer(maxMessageSize: 10)
        try [UInt8]([0, 0, 0]).withUnsafeBytes { try d.process($0) { _ in } }
        #expect(d.hasPartialMessage)
    }

    @Test func oversizedIsResourceExhausted() {
        var d = GRPCMessageDeframer(maxMessageSize: 4)
        let wire = GRPCFraming.frame([1, 2, 3, 4, 5])
        #expect(throws: RPCError.self) {
            try wire.withUnsafeBytes { try d.process($0) { _ in } }
        }
        do {
            try wire.withUnsafeBytes { try d.process($0) { _ in } }
        } catch {
            #expect((error as? RPCError)?.code == .resourceExhausted)
        }
    }

    @Test func compressedWithoutEncodingIsInternal() {
        var d = GRPCMessageDeframer(maxMessageSize: 100)
        let wire: [UInt8] = [1, 0, 0, 0, 1, 7]
        do {
            try wire.withUnsafeBytes { try d.process($0) { _ in } }
            Issue.record("expected an error")
        } catch {
            #expect((error as? RPCError)?.code == .internalError)
        }
    }
}

@Suite struct TimeoutTests {
    @Test(arguments: [
        ("1S", Duration.seconds(1)), ("100m", .milliseconds(100)), ("2H", .seconds(7200)), ("3M", .seconds(180)),
        ("5u", .microseconds(5)), ("99999999n", .nanoseconds(99_999_999)),
    ])
    func parses(text: String, expected: Duration) {
        #expect(GRPCTimeout.parse(text) == expected)
    }

    @Test(arguments: ["", "S", "1", "123456789S", "1s", "-1S", "1.5S", "1X"])
    func rejects(text: String) {
        #expect(GRPCTimeout.parse(text) == nil)
    }

    @Test(arguments: [Duration.milliseconds(250), .seconds(30), .nanoseconds(1), .seconds(100_000_000)])
    func roundTrips(d: Duration) throws {
        let text = GRPCTimeout.encode(d)
        let back = try #require(GRPCTimeout.parse(text))
        #expect(back >= d)
        #expect(text.utf8.count <= 9)
    }
}

@Suite struct EncodingTests {
    @Test(arguments: [("plain", "plain"), ("100%", "100%25"), ("é", "%C3%A9"), ("a\nb", "a%0Ab")])
    func percentEncodes(text: String, encoded: String) {
        #expect(GRPCPercentEncoding.encode(text) == encoded)
        #expect(GRPCPercentEncoding.decode(encoded) == text)
    }

    @Test func percentDecodeKeepsMalformedEscapes() {
        #expect(GRPCPercentEncoding.decode("50%zz%4") == "50%zz%4")
    }

    @Test(arguments: [[UInt8](), [0], [0, 255], [1, 2, 3], Array(0...255)])
    func base64RoundTrips(bytes: [UInt8]) throws {
        let text = Base64.encode(bytes)
        #expect(try #require(Base64.decode(text)) == bytes)
        // gRPC peers may omit padding.
        let unpadded = String(text.filter { $0 != "=" })
        #expect(try #require(Base64.decode(unpadded)) == bytes)
    }

    @Test func base64RejectsGarbage() {
        #expect(Base64.decode("ab$d") == nil)
    }
}

@Suite struct RequestHeadTests {
    func head(method: String? = "POST", path: String? = "/pkg.Svc/Method", ct: String? = "application/grpc",
              te: String? = "trailers", encoding: String? = nil, timeout: String? = nil) -> GRPCRequestHead {
        var h = GRPCRequestHead()
        h.method = method; h.path = path; h.contentType = ct; h.te = te; h.encoding = encoding; h.timeout = timeout
        return h
    }

    @Test(arguments: ["application/grpc", "application/grpc+proto", "application/grpc;charset=utf-8", "Application/GRPC"])
    func acceptsContentTypes(ct: String) {
        #expect(head(ct: ct).validate() == .accept(path: "/pkg.Svc/Method", timeout: nil))
    }

    @Test func rejectsWrongMethodWith405() {
        guard case .httpError(405, _) = head(method: "GET").validate() else { Issue.record("expected 405"); return }
    }

    @Test(arguments: ["application/json", "application/grpcx", "text/plain"])
    func rejectsOtherContentTypesWith415(ct: String) {
        guard case .httpError(415, _) = head(ct: ct).validate() else { Issue.record("expected 415"); return }
    }

    @Test(arguments: ["", "/", "pkg.Svc/Method", "/pkg.Svc", "/pkg.Svc/"])
    func rejectsMalformedPaths(path: String) {
        guard case .grpcError(let e) = head(path: path).validate() else { Issue.record("expected an error"); return }
        #expect(e.code == .unimplemented)
    }

    @Test func unknownEncodingIsUnimplemented() {
        guard case .grpcError(let e) = head(encoding: "snappy").validate() else { Issue.record("expected an error"); return }
        #expect(e.code == .unimplemented)
        #expect(e.message.contains("identity,deflate,gzip"))
        for encoding in ["identity", "gzip", "deflate"] {
            #expect(head(encoding: encoding).validate() == .accept(path: "/pkg.Svc/Method", timeout: nil))
        }
    }

    @Test func missingTEIsRejected() {
        guard case .grpcError(let e) = head(te: nil).validate() else { Issue.record("expected an error"); return }
        #expect(e.code == .internalError)
    }

    @Test func timeoutBecomesDeadline() {
        #expect(head(timeout: "150m").validate() == .accept(path: "/pkg.Svc/Method", timeout: .milliseconds(150)))
        guard case .grpcError = head(timeout: "soon").validate() else { Issue.record("expected an error"); return }
    }

    @Test func reservedHeadersAreNotMetadata() {
        for name in [":path", "content-type", "te", "grpc-timeout", "grpc-encoding"] { #expect(GRPCRequestHead.isReserved(name)) }
        for name in ["x-custom", "user-agent", "authorization"] { #expect(!GRPCRequestHead.isReserved(name)) }
    }
}

@Suite struct StatusTests {
    @Test(arguments: [(400, RPCError.Code.internalError), (401, .unauthenticated), (403, .permissionDenied),
                      (404, .unimplemented), (429, .unavailable), (502, .unavailable), (503, .unavailable),
                      (504, .unavailable), (500, .unknown)])
    func httpStatusMapping(status: Int, code: RPCError.Code) {
        #expect(GRPCStatusMapping.code(forHTTPStatus: status) == code)
    }

    @Test func codeNames() {
        #expect(RPCError.Code.notFound.description == "NOT_FOUND")
        #expect(RPCError.Code(rawValue: 99).description == "CODE_99")
    }

    @Test func metadataWireForm() {
        var m = Metadata()
        m.add("X-Text", "v")
        m.add("x-data-bin", bytes: [0, 1])
        #expect(m.wireHeaders.map { "\($0.0)=\($0.1)" } == ["x-text=v", "x-data-bin=AAE="])
        var back = Metadata()
        for (k, v) in m.wireHeaders {
            let ok = back.addWire(name: k, value: Array(v.utf8))
            #expect(ok)
        }
        #expect(back == m)
    }
}

/// A small deterministic generator for reproducible random tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct MessageQueueTests {
    @Test func takesInArrivalOrderAndIsReusableWhenDrained() {
        var q = MessageQueue()
        #expect(q.isEmpty && q.count == 0 && q.popLast() == nil)
        for i in 0..<200 { q.append([UInt8(i)]) }
        #expect(q.count == 200)
        for i in 0..<150 { #expect(q.removeFirst() == [UInt8(i)]) }
        #expect(q.count == 50 && !q.isEmpty)
        #expect(q.popLast() == [199])
        for i in 150..<199 { #expect(q.removeFirst() == [UInt8(i)]) }
        #expect(q.isEmpty && q.count == 0)
        q.append([7])
        q.append([8])
        #expect(q.count == 2)
        #expect(q.popLast() == [8])
        #expect(q.removeFirst() == [7])
        #expect(q.isEmpty)
    }
}
