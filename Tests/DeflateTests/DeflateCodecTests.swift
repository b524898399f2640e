import TestSupport
import Testing

@testable import Deflate

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

private let inputs: [(String, [UInt8])] = [
    ("empty", []),
    ("one byte", [0x41]),
    ("three bytes", [1, 2, 3]),
    ("text 100k", FixtureData.text(100_000)),
    ("random 70k", randomBytes(70_000)),
    ("zeros 200k", [UInt8](repeating: 0, count: 200_000)),
    ("all byte values", (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7) }),
    ("random blocks repeated", { let r = randomBytes(3000, seed: 7); return (0..<40).flatMap { i in i % 3 == 0 ? randomBytes(500, seed: UInt64(i) + 1) : r } }()),
    ("short period", (0..<50_000).map { UInt8($0 % 5) }),
]

/// Several cases compress and decode megabytes: each runs on a thread of its own, off the concurrency pool.
@Suite(.ownThread) struct DeflateCodecTests {
    @Test func checksumVectors() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([]) == 0)
        #expect(Adler32.checksum(Array("Wikipedia".utf8)) == 0x11E6_0398)
        #expect(Adler32.checksum([]) == 1)
        let text = FixtureData.text(3000)
        #expect(CRC32.checksum(text) == FixtureData.crc32OfText3000)
        #expect(Adler32.checksum(text) == FixtureData.adler32OfText3000)
        // Continuing a checksum over two halves equals the whole.
        let a = Array(text[0..<1234]), b = Array(text[1234...])
        let crc = b.withUnsafeBytes { CRC32.checksum($0, continuing: CRC32.checksum(a)) }
        #expect(crc == FixtureData.crc32OfText3000)
        // Adler-32 of many 0xFF bytes exercises the modulo reduction.
        let ff = [UInt8](repeating: 0xFF, count: 100_000)
        var a1: UInt32 = 1, b1: UInt32 = 0
        for x in ff { a1 = (a1 + UInt32(x)) % 65521; b1 = (b1 + a1) % 65521 }
        #expect(Adler32.checksum(ff) == b1 << 16 | a1)
    }

    @Test(arguments: FixtureData.python.map { $0.0 })
    func decodesPythonZlibStreams(name: String) throws {
        let stream = hexBytes(FixtureData.python.first { $0.0 == name }!.1)
        let format: DeflateFormat = name.hasPrefix("zlib") ? .zlib : name.hasPrefix("gzip") ? .gzip : .raw
        let out = try DeflateCodec.decompress(stream, format: format, limit: 1 << 20)
        #expect(out == FixtureData.text(3000))
    }

    @Test func knownSmallStreams() throws {
        // zlib.compress(b"") and gzip of b"" as CPython writes them.
        #expect(try DeflateCodec.decompress(hexBytes("789c030000000001"), format: .zlib, limit: 10) == [])
        #expect(try DeflateCodec.decompress(hexBytes("1f8b08000000000002ff03000000000000000000"), format: .gzip, limit: 10) == [])
        // A stored block by hand: BFINAL=1 BTYPE=00, LEN=3, NLEN, "abc".
        #expect(try DeflateCodec.decompress([0x01, 3, 0, 0xFC, 0xFF, 0x61, 0x62, 0x63], format: .raw, limit: 10) == Array("abc".utf8))
        // Fixed-Huffman blocks from zlib (Z_FIXED): four literals; a literal and an overlapping match at distance 1.
        #expect(try DeflateCodec.decompress(hexBytes("4b4c4c4c0400"), format: .raw, limit: 10) == Array("aaaa".utf8))
        #expect(try DeflateCodec.decompress(hexBytes("4b4c840000"), format: .raw, limit: 100) == Array("aaaaaaaa".utf8))
        #expect(try DeflateCodec.decompress(hexBytes("0300"), format: .raw, limit: 100) == [])
    }

    @Test func gzipHeaderFieldsAndMembers() throws {
        let payload = Array("hello, gzip".utf8)
        let plain = DeflateCodec.compress(payload, format: .gzip)
        // Rebuild the header with FEXTRA, FNAME, FCOMMENT and FHCRC.
        var header: [UInt8] = [0x1F, 0x8B, 8, 0x1E, 0, 0, 0, 0, 0, 3]
        header += [3, 0, 1, 2, 3] + Array("name.txt".utf8) + [0] + Array("a comment".utf8) + [0]
        let hcrc = CRC32.checksum(header) & 0xFFFF
        header += [UInt8(hcrc & 0xFF), UInt8(hcrc >> 8)]
        let member = header + plain[10...]
        #expect(try DeflateCodec.decompress(member, format: .gzip, limit: 100) == payload)
        // Concatenated members decode to the concatenation.
        let two = member + DeflateCodec.compress(Array("!".utf8), format: .gzip)
        #expect(try DeflateCodec.decompress(two, format: .gzip, limit: 100) == payload + Array("!".utf8))
        // A wrong header CRC is refused.
        var bad = member
        bad[header.count - 1] ^= 1
        #expect(throws: DeflateError.self) { try DeflateCodec.decompress(bad, format: .gzip, limit: 100) }
    }

    @Test(arguments: [DeflateFormat.raw, .zlib, .gzip], [0, 1, 4, 6, 9])
    func roundTrips(format: DeflateFormat, level: Int) throws {
        for (name, data) in inputs {
            let c = DeflateCodec.compress(data, format: format, level: level)
            let d = try DeflateCodec.decompress(c, format: format, limit: data.count)
            #expect(d == data, "\(name) at level \(level) in \(format)")
        }
    }

    @Test func compressesAboutAsWellAsZlib() {
        let text = FixtureData.text(3000)
        // CPython's zlib: 752 bytes at level 1, 648 at level 6.
        #expect(DeflateCodec.compress(text, format: .zlib, level: 1).count < 752 * 11 / 10)
        #expect(DeflateCodec.compress(text, format: .zlib, level: 6).count < 648 * 11 / 10)
        // Incompressible data grows by a few bytes only (stored blocks).
        let r = randomBytes(100_000)
        #expect(DeflateCodec.compress(r, format: .gzip).count <= r.count + 18 + 5 * (r.count / 16384 + 1))
        #expect(DeflateCodec.compress([UInt8](repeating: 0, count: 1 << 20), format: .raw).count < 1100)
    }

    @Test func limitCutsOffBombs() throws {
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        for format in [DeflateFormat.raw, .zlib, .gzip] {
            let bomb = DeflateCodec.compress(zeros, format: format, level: 9)
            #expect(bomb.count < 10_000)
            let e = #expect(throws: DeflateError.self) { try DeflateCodec.decompress(bomb, format: format, limit: 1 << 20) }
            #expect(e?.kind == .tooLarge)
            #expect(try DeflateCodec.decompress(bomb, format: format, limit: zeros.count).count == zeros.count)
            let one = DeflateCodec.compress([1, 2, 3, 4], format: format)
            #expect(try DeflateCodec.decompress(one, format: format, limit: 4) == [1, 2, 3, 4])
            #expect((#expect(throws: DeflateError.self) { try DeflateCodec.decompress(one, format: format, limit: 3) })?.kind == .tooLarge)
        }
    }

    @Test func truncatedStreamsFail() {
        let text = FixtureData.text(5000)
        for format in [DeflateFormat.raw, .zlib, .gzip] {
            for level in [0, 6] {
                let c = DeflateCodec.compress(text, format: format, level: level)
                for cut in 0..<c.count {
                    let e = #expect(throws: DeflateError.self) { try DeflateCodec.decompress(Array(c[0..<cut]), format: format, limit: 1 << 20) }
                    #expect(e?.kind != .tooLarge)
                }
            }
        }
    }

    @Test func corruptStreamsFailOrDecodeWithoutTrapping() {
        let text = FixtureData.text(4000)
        let c = DeflateCodec.compress(text, format: .zlib)
        var caught = 0
        for i in 0..<c.count {
            for bit in [0, 3, 7] {
                var m = c
                m[i] ^= 1 << bit
                do {
                    let out = try DeflateCodec.decompress(m, format: .zlib, limit: 8000)
                    #expect(out == text || out.count <= 8000)
                } catch {
                    caught += 1
                }
            }
        }
        // The Adler-32 catches nearly every flipped bit that still decodes.
        #expect(caught > c.count * 3 * 9 / 10)
        // Random garbage never traps.
        for seed in 1...300 {
            let g = randomBytes(Int(seed) * 3, seed: UInt64(seed))
            _ = try? DeflateCodec.decompress(g, format: .raw, limit: 4096)
            _ = try? DeflateCodec.decompress([0x78, 0x9C] + g, format: .zlib, limit: 4096)
        }
    }

    @Test func specificCorruptionsNameTheProblem() {
        func error(_ bytes: [UInt8], _ format: DeflateFormat = .raw) -> DeflateError? {
            #expect(throws: DeflateError.self) { try DeflateCodec.decompress(bytes, format: format, limit: 1000) }
        }
        #expect(error([0x07])?.message.contains("block type 3") == true)
        #expect(error([0x01, 3, 0, 0xFC, 0xFE, 1, 2, 3])?.message.contains("complement") == true)
        // Fixed block: a match (symbol 257, code 0000001) at distance 1 before any literal.
        var m = BitWriter(capacity: 16)
        m.reserve(16)
        m.write(3, 3); m.write(64, 7); m.write(0, 5); m.write(0, 7)
        #expect(error(m.finish())?.message.contains("before the start") == true)
        #expect(error([0x01, 1, 0, 0xFE, 0xFF, 0x61, 0x00])?.message.contains("follow the end") == true)
        var z = DeflateCodec.compress(Array("abc".utf8), format: .zlib)
        z[z.count - 1] ^= 0xFF
        #expect(error(z, .zlib)?.message.contains("Adler-32") == true)
        #expect(error([0x78, 0x9D, 0x03, 0x00], .zlib)?.message.contains("check bits") == true)
        #expect(error([0x78, 0xBB, 0, 0, 0, 0, 0x03, 0x00], .zlib)?.message.contains("dictionary") == true)
        var g = DeflateCodec.compress(Array("abc".utf8), format: .gzip)
        g[g.count - 5] ^= 1
        #expect(error(g, .gzip)?.message.contains("CRC-32") == true)
        g = DeflateCodec.compress(Array("abc".utf8), format: .gzip)
        g[g.count - 1] ^= 1
        #expect(error(g, .gzip)?.message.contains("length") == true)
        #expect(error([0x1F, 0x8C, 8, 0, 0, 0, 0, 0, 0, 0], .gzip)?.message.contains("magic") == true)
        // Dynamic block whose code-length code is over-subscribed (all 19 lengths 1).
        var w = BitWriter(capacity: 16)
        w.reserve(32)
        w.write(5, 3); w.write(0, 5); w.write(0, 5); w.write(15, 4)
        for _ in 0..<19 { w.write(1, 3) }
        #expect(error(w.finish())?.message.contains("code-length code") == true)
    }

    @Test func huffmanLengthsStayWithinTheLimit() {
        // Fibonacci frequencies make the deepest possible tree.
        var f: [UInt32] = [1, 1]
        while f.count < 30 { f.append(f[f.count - 1] + f[f.count - 2]) }
        let l = f.withUnsafeBufferPointer { HuffmanEncoder.lengths($0, limit: 7) }
        #expect(l.allSatisfy { $0 >= 1 && $0 <= 7 })
        let kraft = l.reduce(0) { $0 + (1 << (7 - Int($1))) }
        #expect(kraft == 1 << 7)
        // And such data round-trips.
        var data: [UInt8] = []
        for (s, n) in f.prefix(20).enumerated() { data += [UInt8](repeating: UInt8(s), count: Int(n)) }
        data = data.enumerated().map { i, b in i % 2 == 0 ? b : b &+ 100 }
        let c = DeflateCodec.compress(data, format: .raw)
        #expect((try? DeflateCodec.decompress(c, format: .raw, limit: data.count)) == data)
    }
}
