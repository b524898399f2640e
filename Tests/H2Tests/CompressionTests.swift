import Testing
import H2
import RPCCore
import ProtoWire
#if canImport(Glibc)
import Glibc
#endif

/// Text-like bytes that compress well.
private func compressible(_ n: Int) -> [UInt8] {
    let words = Array("volume node publish stage capacity /var/lib/kubelet/pods ".utf8)
    return (0..<n).map { words[($0 &* 7 + $0 / 97) % words.count] }
}

/// Frames `payload` with the compressed flag set.
private func compressedFrame(_ payload: [UInt8]) -> [UInt8] {
    let n = payload.count
    return [1, UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload
}

private func deframe(_ d: inout GRPCMessageDeframer, _ bytes: [UInt8], chunk: Int = 1 << 30) throws -> [[UInt8]] {
    var out: [[UInt8]] = []
    var i = 0
    while i < bytes.count {
        let end = min(bytes.count, i + chunk)
        let part = Array(bytes[i..<end])
        try part.withUnsafeBytes { b in try d.process(b) { out.append($0) } }
        i = end
    }
    return out
}

@Suite struct CompressionTests {
    @Test(arguments: [GRPCCompression.gzip, .deflate])
    func deframerDecompressesFlaggedMessagesOnly(encoding: GRPCCompression) throws {
        let a = compressible(10_000), b = Array("plain".utf8)
        let z = try #require(encoding.compress(a))
        #expect(z.count < a.count / 4)
        let wire = compressedFrame(z) + GRPCFraming.frame(b) + compressedFrame([])
        for chunk in [1, 3, 7, 4096, 1 << 20] {
            var d = GRPCMessageDeframer(maxMessageSize: 1 << 20, compression: encoding)
            #expect(try deframe(&d, wire, chunk: chunk) == [a, b, []])
        }
        // Small or incompressible messages are sent as they are.
        #expect(encoding.compress(Array("tiny".utf8)) == nil)
        #expect(encoding.compress((0..<5000).map { _ in UInt8.random(in: 0...255) }) == nil)
    }

    @Test func compressedFlagWithoutEncodingIsInternal() {
        var d = GRPCMessageDeframer(maxMessageSize: 1 << 20)
        let e = #expect(throws: RPCError.self) { try deframe(&d, compressedFrame([1, 2, 3])) }
        #expect(e?.code == .internalError)
    }

    @Test(arguments: [GRPCCompression.gzip, .deflate])
    func bombIsResourceExhausted(encoding: GRPCCompression) throws {
        let bomb = try #require(encoding.compress([UInt8](repeating: 0, count: 16 << 20)))
        #expect(bomb.count < 64 << 10)
        var d = GRPCMessageDeframer(maxMessageSize: 1 << 20, compression: encoding)
        d.peer = "the client on /run/x.sock"
        let e = #expect(throws: RPCError.self) { try deframe(&d, compressedFrame(bomb)) }
        #expect(e?.code == .resourceExhausted)
        #expect(e?.message.contains("\(encoding.name)-compressed message from the client on /run/x.sock") == true)
        #expect(e?.message.contains("1048576") == true)
    }

    @Test(arguments: [GRPCCompression.gzip, .deflate])
    func corruptDataIsInternalNamingEncodingAndPeer(encoding: GRPCCompression) throws {
        var z = try #require(encoding.compress(compressible(5000)))
        z[z.count / 2] ^= 0x55
        z.removeLast(3)
        var d = GRPCMessageDeframer(maxMessageSize: 1 << 20, compression: encoding)
        d.peer = "the server"
        let e = #expect(throws: RPCError.self) { try deframe(&d, compressedFrame(z)) }
        #expect(e?.code == .internalError)
        #expect(e?.message.hasPrefix("\(encoding.name)-compressed message from the server is invalid: ") == true)
        var g = GRPCMessageDeframer(maxMessageSize: 1 << 20, compression: encoding)
        #expect(throws: RPCError.self) { try deframe(&g, compressedFrame(Array("not compressed at all".utf8))) }
    }

    @Test func acceptEncodingLists() {
        #expect(GRPCCompression.gzip.isAccepted(by: "identity,deflate,gzip"))
        #expect(GRPCCompression.gzip.isAccepted(by: "identity, gzip"))
        #expect(!GRPCCompression.gzip.isAccepted(by: "identity,deflate"))
        #expect(!GRPCCompression.deflate.isAccepted(by: "gzipdeflate"))
        #expect(GRPCCompression(name: "gzip".utf8) == .gzip)
        #expect(GRPCCompression(name: "identity".utf8) == nil)
        #expect(GRPCCompression.gzip.level(1).name == "gzip")
        #expect(GRPCCompression.deflate.level(42).level == 9)
    }

    @Test(arguments: [(GRPCCompression?.none, GRPCCompression?.some(.gzip)), (.deflate, nil), (.gzip, .deflate), (.deflate, .deflate)])
    func serverAndClientCompressBothWays(request: GRPCCompression?, response: GRPCCompression?) async throws {
        let path = socketPath()
        var config = GRPCServerConfiguration(address: "unix://\(path)")
        config.responseCompression = response
        try await withGRPCServer(router: router(), configuration: config) { _ in
            var cc = GRPCChannelConfiguration()
            cc.compression = request
            let channel = GRPCChannel(target: "unix://\(path)", configuration: cc)
            defer { channel.close() }
            let big = String(decoding: compressible(200_000), as: UTF8.self)
            let r: Raw = try await channel.unary(echo, request: Raw(big))
            #expect(r.text == big)
            let small: Raw = try await channel.unary(echo, request: Raw("hi"))
            #expect(small.text == "hi")
            var got: [String] = []
            for try await m in channel.serverStreaming(count, request: Raw("3")) as AsyncThrowingStream<Raw, any Error> {
                got.append(m.text)
            }
            #expect(got == ["0", "1", "2"])
            let (reqs, c) = AsyncStream<Raw>.makeStream()
            c.yield(Raw(big)); c.yield(Raw("b")); c.finish()
            var replies: [String] = []
            for try await m in channel.bidirectionalStreaming(chat, requests: reqs) as AsyncThrowingStream<Raw, any Error> {
                replies.append(m.text)
            }
            #expect(replies == [big.uppercased(), "B"])
        }
    }

    @Test func perCallCompressionOverridesTheChannel() async throws {
        let path = socketPath()
        try await withGRPCServer(router: router(), configuration: GRPCServerConfiguration(address: "unix://\(path)")) { _ in
            var cc = GRPCChannelConfiguration()
            cc.compression = .gzip
            let channel = GRPCChannel(target: "unix://\(path)", configuration: cc)
            defer { channel.close() }
            let big = String(decoding: compressible(50_000), as: UTF8.self)
            for c in [GRPCCompression?.none, .identity, .deflate, .gzip.level(1)] {
                var options = CallOptions()
                options.compression = c
                let r: Raw = try await channel.unary(echo, request: Raw(big), options: options)
                #expect(r.text == big)
            }
        }
        #expect(GRPCCompression.identity.compress(compressible(1000)) == nil)
        #expect(GRPCCompression.identity.level(5) == .identity)
    }

    @Test func compressedRequestOverTheLimitAfterDecompressionFails() async throws {
        let path = socketPath()
        var config = GRPCServerConfiguration(address: "unix://\(path)")
        config.maxReceiveMessageSize = 64 << 10
        try await withGRPCServer(router: router(), configuration: config) { _ in
            var cc = GRPCChannelConfiguration()
            cc.compression = .gzip
            let channel = GRPCChannel(target: "unix://\(path)", configuration: cc)
            defer { channel.close() }
            let big = String(repeating: "a", count: 1 << 20)
            let e = await #expect(throws: RPCError.self) { let _: Raw = try await channel.unary(echo, request: Raw(big)) }
            #expect(e?.code == .resourceExhausted)
            #expect(e?.message.contains("gzip-compressed message from the client on") == true)
            let ok: Raw = try await channel.unary(echo, request: Raw("still fine"))
            #expect(ok.text == "still fine")
        }
    }
}
