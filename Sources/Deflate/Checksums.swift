// The two checksums the container formats carry: CRC-32 (gzip, RFC 1952) and Adler-32 (zlib, RFC 1950).

/// CRC-32 as gzip uses it (reflected polynomial 0xEDB88320), computed eight bytes at a time.
package enum CRC32 {
    /// Eight 256-entry tables: table k holds the CRC of a byte followed by k zero bytes.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for n in 0..<256 {
            var c = UInt32(n)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[n] = c
        }
        for n in 0..<256 {
            var c = t[n]
            for k in 1..<8 {
                c = t[Int(c & 0xFF)] ^ (c >> 8)
                t[k * 256 + n] = c
            }
        }
        return t
    }()

    /// The CRC-32 of `bytes`, continuing from `crc` (0 for a fresh checksum).
    package static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = ~crc
        guard let base = bytes.baseAddress else { return crc }
        let n = bytes.count
        tables.withUnsafeBufferPointer { t in
            let t = t.baseAddress!
            var i = 0
            while n - i >= 8 {
                let lo = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
                let hi = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return ~c
    }

    /// The CRC-32 of `bytes`.
    package static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}

/// Adler-32 as zlib uses it (RFC 1950, section 8.2).
package enum Adler32 {
    private static let weights = SIMD16<UInt32>(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
    /// The Adler-32 of `bytes`, continuing from `adler` (1 for a fresh checksum).
    package static func checksum(_ bytes: UnsafeRawBufferPointer, continuing adler: UInt32 = 1) -> UInt32 {
        var a = adler & 0xFFFF
        var b = adler >> 16
        guard let base = bytes.baseAddress else { return adler }
        var i = 0
        let n = bytes.count
        // 5552 is the most bytes that can be summed before b may overflow 32 bits.
        while i < n {
            let end = min(n, i + 5552)
            // 16 bytes at a time: b gains 16·a plus the bytes weighted 16…1, a their sum.
            while end - i >= 16 {
                let v = SIMD16<UInt32>(truncatingIfNeeded: base.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self))
                b &+= a &* 16 &+ (v &* Self.weights).wrappedSum()
                a &+= v.wrappedSum()
                i += 16
            }
            while end - i >= 4 {
                a &+= UInt32(base.load(fromByteOffset: i, as: UInt8.self)); b &+= a
                a &+= UInt32(base.load(fromByteOffset: i + 1, as: UInt8.self)); b &+= a
                a &+= UInt32(base.load(fromByteOffset: i + 2, as: UInt8.self)); b &+= a
                a &+= UInt32(base.load(fromByteOffset: i + 3, as: UInt8.self)); b &+= a
                i += 4
            }
            while i < end {
                a &+= UInt32(base.load(fromByteOffset: i, as: UInt8.self)); b &+= a
                i += 1
            }
            a %= 65521
            b %= 65521
        }
        return b << 16 | a
    }

    /// The Adler-32 of `bytes`.
    package static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
