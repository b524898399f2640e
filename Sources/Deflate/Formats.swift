// The container formats around DEFLATE data: zlib (RFC 1950) and gzip (RFC 1952), and the one-shot
// API the rest of the package uses.

/// How compressed data is wrapped.
package enum DeflateFormat: Sendable, Hashable, CustomStringConvertible {
    /// Bare DEFLATE blocks (RFC 1951).
    case raw
    /// A 2-byte header, DEFLATE blocks, the Adler-32 of the data (RFC 1950): what HTTP and gRPC call `deflate`.
    case zlib
    /// A gzip member: header, DEFLATE blocks, CRC-32 and length (RFC 1952).
    case gzip

    package var description: String {
        switch self {
        case .raw: "raw deflate"
        case .zlib: "zlib"
        case .gzip: "gzip"
        }
    }
}

/// One-shot compression and decompression of whole buffers.
package enum DeflateCodec {
    /// Compresses `data` in `format` at `level` (0 stores, 1 is fastest, 9 smallest; 6 by default).
    package static func compress(_ data: UnsafeRawBufferPointer, format: DeflateFormat, level: Int = 6) -> [UInt8] {
        var w = BitWriter(capacity: data.count / 2 + 64)
        switch format {
        case .raw:
            DeflateEncoder.encode(data, level: level, into: &w)
        case .zlib:
            // CMF: deflate, 32 KiB window; FLG: level hint, check bits making CMF*256+FLG a multiple of 31.
            let cmf: UInt32 = 0x78
            let hint: UInt32 = level <= 1 ? 0 : level < 6 ? 1 : level == 6 ? 2 : 3
            var flg = hint << 6
            flg += 31 - (cmf * 256 + flg) % 31
            w.append(byte: UInt8(cmf))
            w.append(byte: UInt8(flg))
            DeflateEncoder.encode(data, level: level, into: &w)
            w.align()
            withUnsafeBytes(of: Adler32.checksum(data).bigEndian) { w.append($0) }
        case .gzip:
            // ID1 ID2 CM=8 FLG=0 MTIME=0 XFL OS=255 (unknown).
            let xfl: UInt8 = level >= 9 ? 2 : level <= 1 ? 4 : 0
            for b: UInt8 in [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, xfl, 255] { w.append(byte: b) }
            DeflateEncoder.encode(data, level: level, into: &w)
            w.align()
            let trailer = (CRC32.checksum(data).littleEndian, UInt32(truncatingIfNeeded: data.count).littleEndian)
            withUnsafeBytes(of: trailer) { w.append($0) }
        }
        return w.finish()
    }

    /// Compresses `data` in `format` at `level`.
    package static func compress(_ data: [UInt8], format: DeflateFormat, level: Int = 6) -> [UInt8] {
        data.withUnsafeBytes { compress($0, format: format, level: level) }
    }

    /// Decompresses `data` in `format`, producing at most `limit` bytes.
    ///
    /// - Throws: ``DeflateError`` `.tooLarge` as soon as the output would pass `limit` (nothing more
    ///   is decoded or allocated), `.truncated` when the data ends early, `.corrupt` for anything
    ///   invalid, including a wrong checksum or length and bytes after the end.
    package static func decompress(_ data: UnsafeRawBufferPointer, format: DeflateFormat, limit: Int) throws(DeflateError) -> [UInt8] {
        var out = InflateOutput(expected: data.count * 4, limit: max(0, limit))
        do throws(DeflateError) {
            switch format {
            case .raw:
                var inflater = Inflater(data, offset: 0)
                try inflater.run(into: &out)
                try expectEnd(data, inflater.pos, format)
            case .zlib:
                guard data.count >= 2 else { throw DeflateError(.truncated, "zlib data of \(data.count) bytes is shorter than its 2-byte header") }
                let cmf = data[0]
                let flg = data[1]
                guard cmf & 0x0F == 8, cmf >> 4 <= 7 else {
                    throw DeflateError(.corrupt, "zlib header 0x\(String(cmf, radix: 16)) does not announce DEFLATE with a window of at most 32 KiB")
                }
                guard (UInt32(cmf) << 8 | UInt32(flg)) % 31 == 0 else {
                    throw DeflateError(.corrupt, "zlib header check bits are wrong (0x\(String(cmf, radix: 16))\(String(flg, radix: 16)))")
                }
                guard flg & 0x20 == 0 else { throw DeflateError(.corrupt, "zlib data needs a preset dictionary, which is not supported") }
                var inflater = Inflater(data, offset: 2)
                try inflater.run(into: &out)
                let p = inflater.pos
                guard data.count - p >= 4 else { throw DeflateError(.truncated, "zlib data ends before its Adler-32 checksum") }
                let stored = UInt32(data[p]) << 24 | UInt32(data[p + 1]) << 16 | UInt32(data[p + 2]) << 8 | UInt32(data[p + 3])
                let actual = Adler32.checksum(UnsafeRawBufferPointer(start: out.base, count: out.count))
                guard stored == actual else {
                    throw DeflateError(.corrupt, "zlib Adler-32 mismatch: the data says \(hex(stored)), the decoded bytes give \(hex(actual))")
                }
                try expectEnd(data, p + 4, format)
            case .gzip:
                // Members may be concatenated; the result is their concatenation.
                var p = 0
                repeat {
                    let start = out.count
                    p = try gzipHeader(data, at: p)
                    var inflater = Inflater(data, offset: p)
                    try inflater.run(into: &out)
                    p = inflater.pos
                    guard data.count - p >= 8 else { throw DeflateError(.truncated, "gzip data ends before its CRC-32 and length") }
                    let crc = le32(data, p)
                    let size = le32(data, p + 4)
                    let member = UnsafeRawBufferPointer(start: out.base + start, count: out.count - start)
                    let actual = CRC32.checksum(member)
                    guard crc == actual else {
                        throw DeflateError(.corrupt, "gzip CRC-32 mismatch: the data says \(hex(crc)), the decoded bytes give \(hex(actual))")
                    }
                    guard size == UInt32(truncatingIfNeeded: member.count) else {
                        throw DeflateError(.corrupt, "gzip length mismatch: the data says \(size) bytes, \(member.count) were decoded")
                    }
                    p += 8
                } while p < data.count
            }
        } catch {
            out.free()
            throw error
        }
        return out.finish()
    }

    /// Decompresses `data` in `format`, producing at most `limit` bytes.
    package static func decompress(_ data: [UInt8], format: DeflateFormat, limit: Int) throws(DeflateError) -> [UInt8] {
        let r = data.withUnsafeBytes { b in Result { () throws(DeflateError) in try decompress(b, format: format, limit: limit) } }
        return try r.get()
    }

    private static func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }

    private static func le32(_ d: UnsafeRawBufferPointer, _ p: Int) -> UInt32 {
        UInt32(d[p]) | UInt32(d[p + 1]) << 8 | UInt32(d[p + 2]) << 16 | UInt32(d[p + 3]) << 24
    }

    private static func expectEnd(_ data: UnsafeRawBufferPointer, _ p: Int, _ format: DeflateFormat) throws(DeflateError) {
        guard p == data.count else {
            throw DeflateError(.corrupt, "\(data.count - p) bytes follow the end of the \(format) stream")
        }
    }

    /// Parses a gzip member header at `p`; returns the offset of its DEFLATE data.
    private static func gzipHeader(_ d: UnsafeRawBufferPointer, at start: Int) throws(DeflateError) -> Int {
        let truncated = DeflateError(.truncated, "gzip data ends inside its header")
        guard d.count - start >= 10 else { throw truncated }
        guard d[start] == 0x1F, d[start + 1] == 0x8B else {
            throw DeflateError(.corrupt, "gzip magic is 0x\(String(d[start], radix: 16)) 0x\(String(d[start + 1], radix: 16)), not 0x1f 0x8b")
        }
        guard d[start + 2] == 8 else { throw DeflateError(.corrupt, "gzip compression method \(d[start + 2]) is not DEFLATE (8)") }
        let flags = d[start + 3]
        guard flags & 0xE0 == 0 else { throw DeflateError(.corrupt, "gzip header has reserved flag bits set (0x\(String(flags, radix: 16)))") }
        var p = start + 10
        if flags & 4 != 0 {  // FEXTRA
            guard d.count - p >= 2 else { throw truncated }
            let xlen = Int(d[p]) | Int(d[p + 1]) << 8
            p += 2
            guard d.count - p >= xlen else { throw truncated }
            p += xlen
        }
        for bit: UInt8 in [8, 16] where flags & bit != 0 {  // FNAME, FCOMMENT: zero-terminated
            while true {
                guard p < d.count else { throw truncated }
                p += 1
                if d[p - 1] == 0 { break }
            }
        }
        if flags & 2 != 0 {  // FHCRC: the low 16 bits of the header's CRC-32
            guard d.count - p >= 2 else { throw truncated }
            let stored = UInt32(d[p]) | UInt32(d[p + 1]) << 8
            let actual = CRC32.checksum(UnsafeRawBufferPointer(rebasing: d[start..<p])) & 0xFFFF
            guard stored == actual else { throw DeflateError(.corrupt, "gzip header CRC mismatch") }
            p += 2
        }
        return p
    }
}
