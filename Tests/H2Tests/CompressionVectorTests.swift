import H2
import RPCCore
import TestSupport
import Testing

// GRPCCompression's codec on its own: streams from CPython's zlib and made by hand, round trips,
// truncated and corrupt data, bombs. CompressionTests covers the deframer and the calls.

/// Deterministic pseudo-random bytes (xorshift64*).
private func randomBytes(_ n: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var s = seed
    return (0..<n).map { _ in
        s ^= s >> 12
        s ^= s << 25
        s ^= s >> 27
        return UInt8(truncatingIfNeeded: (s &* 2_685_821_657_736_338_717) >> 56)
    }
}

private func hexBytes(_ s: String) -> [UInt8] {
    let u = Array(s.utf8)
    func v(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
    return stride(from: 0, to: u.count, by: 2).map { v(u[$0]) << 4 | v(u[$0 + 1]) }
}

/// CRC-32 as gzip uses it, bit by bit.
private func crc32(_ data: some Sequence<UInt8>) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in data {
        c ^= UInt32(b)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
    }
    return ~c
}

/// Adler-32 as zlib framing uses it.
private func adler32(_ data: some Sequence<UInt8>) -> UInt32 {
    var a: UInt32 = 1, b: UInt32 = 0
    for x in data {
        a = (a + UInt32(x)) % 65521
        b = (b + a) % 65521
    }
    return b << 16 | a
}

private func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
private func littleEndian(_ v: UInt32) -> [UInt8] { bigEndian(v).reversed() }

/// Raw DEFLATE blocks `raw`, which decode to `plain`, in zlib framing (gRPC's `deflate`).
private func zlibFramed(_ raw: [UInt8], _ plain: [UInt8]) -> [UInt8] {
    [0x78, 0x01] + raw + bigEndian(adler32(plain))
}

/// Raw DEFLATE blocks `raw`, which decode to `plain`, as one gzip member (gRPC's `gzip`).
private func gzipFramed(_ raw: [UInt8], _ plain: [UInt8]) -> [UInt8] {
    [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF] + raw + littleEndian(crc32(plain)) + littleEndian(UInt32(truncatingIfNeeded: plain.count))
}

/// Raw DEFLATE blocks `raw` in the framing `encoding` uses.
private func framed(_ encoding: GRPCCompression, _ raw: [UInt8], _ plain: [UInt8]) -> [UInt8] {
    encoding.name == "gzip" ? gzipFramed(raw, plain) : zlibFramed(raw, plain)
}

/// `data` as raw DEFLATE stored blocks (what level 0 writes).
private func storedBlocks(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    repeat {
        let n = min(65535, data.count - i)
        let final: UInt8 = i + n == data.count ? 1 : 0
        out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8(~n >> 8 & 0xFF)] + data[i..<(i + n)]
        i += n
    } while i < data.count
    return out
}

private func expand(_ encoding: GRPCCompression, _ bytes: [UInt8], limit: Int = 1 << 20) throws(RPCError) -> [UInt8] {
    try encoding.decompress(bytes, limit: limit, peer: "the test peer")
}

/// The error decompressing `bytes` throws (an issue is recorded if it does not throw).
private func failure(_ encoding: GRPCCompression, _ bytes: [UInt8], limit: Int = 1 << 20) -> RPCError? {
    #expect(throws: RPCError.self) { try expand(encoding, bytes, limit: limit) }
}

private let both: [GRPCCompression] = [.gzip, .deflate]

private let inputs: [(String, [UInt8])] = [
    ("empty", []),
    ("one byte", [0x41]),
    ("three bytes", [1, 2, 3]),
    ("text 100k", CompressionFixtures.text(100_000)),
    ("random 70k", randomBytes(70_000)),
    ("zeros 200k", [UInt8](repeating: 0, count: 200_000)),
    ("all byte values", (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) }),
    ("random blocks repeated", { let r = randomBytes(3000, seed: 7); return (0..<40).flatMap { i in i % 3 == 0 ? randomBytes(500, seed: UInt64(i) + 1) : r } }()),
    ("short period", (0..<50_000).map { UInt8($0 % 5) }),
]

/// Several cases compress and decode megabytes: each runs on a thread of its own, off the concurrency pool.
@Suite(.ownThread) struct CompressionVectorTests {
    @Test func fixtureChecksums() {
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
        let text = CompressionFixtures.text(3000)
        #expect(crc32(text) == CompressionFixtures.crc32OfText3000)
        #expect(adler32(text) == CompressionFixtures.adler32OfText3000)
    }

    @Test(arguments: CompressionFixtures.python.map { $0.0 })
    func decodesPythonZlibStreams(name: String) throws {
        let stream = hexBytes(CompressionFixtures.python.first { $0.0 == name }!.1)
        let text = CompressionFixtures.text(3000)
        if name.hasPrefix("zlib") {
            #expect(try expand(.deflate, stream) == text)
        } else if name.hasPrefix("gzip") {
            #expect(try expand(.gzip, stream) == text)
        } else {
            // Raw DEFLATE (Huffman-only, RLE, fixed blocks, flushes) in both framings.
            for encoding in both {
                #expect(try expand(encoding, framed(encoding, stream, text)) == text, "\(name) as \(encoding)")
            }
        }
    }

    @Test func knownSmallStreams() throws {
        // zlib.compress(b"") and gzip of b"" as CPython writes them.
        #expect(try expand(.deflate, hexBytes("789c030000000001"), limit: 10) == [])
        #expect(try expand(.gzip, hexBytes("1f8b08000000000002ff03000000000000000000"), limit: 10) == [])
        for encoding in both {
            let abc = Array("abc".utf8)
            // A stored block by hand: BFINAL=1 BTYPE=00, LEN=3, NLEN, "abc".
            #expect(try expand(encoding, framed(encoding, [0x01, 3, 0, 0xFC, 0xFF] + abc, abc), limit: 10) == abc)
            // Fixed-Huffman blocks from zlib (Z_FIXED): four literals; a literal and an overlapping match at distance 1.
            let a4 = Array("aaaa".utf8), a8 = Array("aaaaaaaa".utf8)
            #expect(try expand(encoding, framed(encoding, hexBytes("4b4c4c4c0400"), a4), limit: 10) == a4)
            #expect(try expand(encoding, framed(encoding, hexBytes("4b4c840000"), a8), limit: 100) == a8)
            #expect(try expand(encoding, framed(encoding, hexBytes("0300"), []), limit: 100) == [])
        }
    }

    @Test func gzipHeaderFieldsAndMembers() throws {
        let payload = CompressionFixtures.text(300)
        let plain = try #require(GRPCCompression.gzip.compress(payload))
        // Rebuild the 10-byte header with FEXTRA, FNAME, FCOMMENT and FHCRC.
        var header: [UInt8] = [0x1F, 0x8B, 8, 0x1E, 0, 0, 0, 0, 0, 3]
        header += [3, 0, 1, 2, 3] + Array("name.txt".utf8) + [0] + Array("a comment".utf8) + [0]
        let hcrc = crc32(header) & 0xFFFF
        header += [UInt8(hcrc & 0xFF), UInt8(hcrc >> 8)]
        let member = header + plain[10...]
        #expect(try expand(.gzip, member, limit: 1000) == payload)
        // Concatenated members decode to the concatenation.
        let bang = Array("!".utf8)
        let two = member + gzipFramed(storedBlocks(bang), bang)
        #expect(try expand(.gzip, two, limit: 1000) == payload + bang)
        // A wrong header CRC is refused.
        var bad = member
        bad[header.count - 1] ^= 1
        #expect(failure(.gzip, bad)?.message.contains("header") == true)
    }

    @Test(arguments: both, [1, 4, 6, 9])
    func roundTrips(encoding: GRPCCompression, level: Int) throws {
        let c = encoding.level(level)
        for (name, data) in inputs {
            guard let z = c.compress(data) else {
                // Only what is too small to bother with or does not shrink is sent as it is.
                #expect(data.count < 24 || name == "random 70k", "\(name) at level \(level) in \(encoding)")
                continue
            }
            #expect(z.count < data.count)
            #expect(try expand(c, z, limit: data.count) == data, "\(name) at level \(level) in \(encoding)")
            #expect(failure(c, z, limit: data.count - 1)?.code == .resourceExhausted, "\(name) at level \(level) in \(encoding)")
        }
    }

    @Test func compressesAsWellAsZlib() throws {
        let text = CompressionFixtures.text(3000)
        // CPython's zlib: 752 bytes at level 1, 648 at level 6.
        #expect(try #require(GRPCCompression.deflate.level(1).compress(text)).count < 752 * 11 / 10)
        #expect(try #require(GRPCCompression.deflate.level(6).compress(text)).count < 648 * 11 / 10)
        // Incompressible data and level 0 (stored blocks only) never shrink: sent as they are.
        #expect(GRPCCompression.gzip.compress(randomBytes(100_000)) == nil)
        var stored = GRPCCompression.deflate
        stored.level = 0
        #expect(stored.compress(text) == nil)
        #expect(try #require(GRPCCompression.deflate.compress([UInt8](repeating: 0, count: 1 << 20))).count < 1100)
    }

    @Test func limitCutsOffBombs() throws {
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        for encoding in both {
            let bomb = try #require(encoding.level(9).compress(zeros))
            #expect(bomb.count < 10_000)
            let e = failure(encoding, bomb, limit: 1 << 20)
            #expect(e?.code == .resourceExhausted)
            #expect(e?.message == "\(encoding.name)-compressed message from the test peer decompresses to more than the limit of 1048576 bytes")
            #expect(try expand(encoding, bomb, limit: zeros.count).count == zeros.count)
        }
        // [1, 2, 3, 4] as CPython's zlib.compress and gzip.compress write it.
        for (encoding, one) in [(GRPCCompression.deflate, "789c6364626601000018000b"), (.gzip, "1f8b0800000000000203636462660100cdfb3cb604000000")] {
            #expect(try expand(encoding, hexBytes(one), limit: 4) == [1, 2, 3, 4])
            #expect(failure(encoding, hexBytes(one), limit: 3)?.code == .resourceExhausted)
            #expect(failure(encoding, hexBytes(one), limit: 0)?.code == .resourceExhausted)
            #expect(try expand(encoding, framed(encoding, storedBlocks([]), []), limit: 0) == [])
        }
        // gzip members each within the limit, together over it.
        let half = [UInt8](repeating: 7, count: 600)
        let member = try #require(GRPCCompression.gzip.compress(half))
        #expect(try expand(.gzip, member + member, limit: 1200).count == 1200)
        #expect(failure(.gzip, member + member, limit: 1199)?.code == .resourceExhausted)
    }

    @Test func truncatedStreamsFail() throws {
        let text = CompressionFixtures.text(5000)
        for encoding in both {
            let streams = [
                try #require(encoding.level(1).compress(text)),
                try #require(encoding.level(6).compress(text)),
                framed(encoding, storedBlocks(text), text),
            ]
            for (i, z) in streams.enumerated() {
                for cut in 0..<z.count {
                    let e = failure(encoding, Array(z[0..<cut]))
                    #expect(e?.code == .internalError, "\(encoding) stream \(i) cut at \(cut)")
                }
                #expect(failure(encoding, Array(z.dropLast()))?.message.contains("ends after \(z.count - 1) bytes") == true)
            }
        }
    }

    @Test func corruptStreamsFailOrDecodeWithoutTrapping() throws {
        let text = CompressionFixtures.text(4000)
        let z = try #require(GRPCCompression.deflate.compress(text))
        var caught = 0
        for i in 0..<z.count {
            for bit in [0, 3, 7] {
                var m = z
                m[i] ^= 1 << bit
                do {
                    let out = try expand(.deflate, m, limit: 8000)
                    #expect(out == text || out.count <= 8000)
                } catch {
                    #expect(error.code == .internalError || error.code == .resourceExhausted)
                    caught += 1
                }
            }
        }
        // The Adler-32 catches nearly every flipped bit that still decodes.
        #expect(caught > z.count * 3 * 9 / 10)
        // Random garbage never traps.
        for seed in 1...300 {
            let g = randomBytes(seed * 3, seed: UInt64(seed))
            for encoding in both { _ = try? expand(encoding, g, limit: 4096) }
            _ = try? expand(.deflate, [0x78, 0x9C] + g, limit: 4096)
            _ = try? expand(.gzip, [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF] + g, limit: 4096)
        }
    }

    @Test func specificCorruptionsNameTheProblem() {
        func message(_ encoding: GRPCCompression, _ bytes: [UInt8]) -> String {
            let e = failure(encoding, bytes, limit: 1000)
            #expect(e?.code == .internalError)
            let m = e?.message ?? ""
            #expect(m.hasPrefix("\(encoding.name)-compressed message from the test peer is invalid: "), "\(m)")
            return m
        }
        // Inside the DEFLATE blocks zlib's own words name the problem.
        #expect(message(.deflate, zlibFramed([0x07], [])).contains("invalid block type"))
        #expect(message(.deflate, zlibFramed([0x01, 3, 0, 0xFC, 0xFE, 1, 2, 3], [1, 2, 3])).contains("invalid stored block lengths"))
        // Fixed block: a match (symbol 257) at distance 1 before any literal.
        #expect(message(.deflate, zlibFramed([0x03, 0x02, 0x00], [])).contains("invalid distance too far back"))
        // Dynamic block whose code-length code is over-subscribed (all 19 lengths 1).
        #expect(message(.gzip, gzipFramed(hexBytes("05e09324499224499200"), [])).contains("invalid code lengths set"))
        let a = Array("a".utf8)
        #expect(message(.deflate, zlibFramed(storedBlocks(a), a) + [0]).contains("1 byte follows the end of the zlib stream"))
        // Headers and trailers.
        let abc = Array("abc".utf8)
        var z = zlibFramed(storedBlocks(abc), abc)
        z[z.count - 1] ^= 0xFF
        #expect(message(.deflate, z).contains("Adler-32"))
        #expect(message(.deflate, [0x78, 0x9D, 0x03, 0x00]).contains("check bits"))
        #expect(message(.deflate, [0x78, 0xBB, 0, 0, 0, 0, 0x03, 0x00]).contains("dictionary"))
        var g = gzipFramed(storedBlocks(abc), abc)
        g[g.count - 5] ^= 1
        #expect(message(.gzip, g).contains("CRC-32"))
        g = gzipFramed(storedBlocks(abc), abc)
        g[g.count - 1] ^= 1
        #expect(message(.gzip, g).contains("length"))
        #expect(message(.gzip, [0x1F, 0x8C, 8, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x00]).contains("magic"))
        #expect(message(.gzip, [0x1F, 0x8B, 7, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x00]).contains("method"))
        #expect(message(.gzip, [0x1F, 0x8B, 8, 0xE0, 0, 0, 0, 0, 0, 0, 0x03, 0x00]).contains("flags"))
    }

    @Test func deepHuffmanTreesRoundTrip() throws {
        // Fibonacci frequencies make the deepest possible Huffman tree.
        var f: [Int] = [1, 1]
        while f.count < 20 { f.append(f[f.count - 1] + f[f.count - 2]) }
        var data: [UInt8] = []
        for (s, n) in f.enumerated() { data += [UInt8](repeating: UInt8(s), count: n) }
        data = data.enumerated().map { i, b in i % 2 == 0 ? b : b &+ 100 }
        for encoding in both {
            let z = try #require(encoding.compress(data))
            #expect(try expand(encoding, z, limit: data.count) == data)
        }
    }
}
