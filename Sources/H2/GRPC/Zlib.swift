// DEFLATE through zlib for gRPC's `gzip` and `deflate` message encodings: one-shot compression of
// a message, and decompression whose output never grows past the caller's limit.
import CZlib

/// How DEFLATE data is wrapped.
enum ZlibFraming: Sendable, Hashable, CustomStringConvertible {
    /// A 2-byte header, DEFLATE blocks, the Adler-32 of the data (RFC 1950): gRPC's `deflate`.
    case zlib
    /// gzip members: header, DEFLATE blocks, CRC-32 and length (RFC 1952): gRPC's `gzip`.
    case gzip

    /// zlib's `windowBits` for a window of 2^`bits` bytes: `bits` for zlib framing, plus 16 for gzip.
    func windowBits(_ bits: Int32 = 15) -> Int32 { self == .gzip ? bits + 16 : bits }

    var description: String { self == .gzip ? "gzip" : "zlib" }
}

/// Why compressed data did not decompress.
enum ZlibFailure: Error {
    /// The output would pass the limit; no more than the limit was decompressed.
    case tooLarge
    /// The data is not a valid stream; what was expected and found.
    case invalid(String)
}

/// One-shot compression and decompression through zlib.
enum Zlib {
    /// The window (log2 of its size) and `memLevel` deflate uses for `count` bytes: zlib's defaults,
    /// a 32 KiB window and memLevel 8, unless the data is shorter. Then the window is the smallest
    /// (≥ 2^9) that holds all of it plus deflate's 262-byte lookahead, so every match the full window
    /// would find is still in reach, and memLevel the smallest whose symbol buffer (2^(memLevel+6)
    /// symbols) holds one per byte, so the data stays one block. The output is the same but for a
    /// rare byte where a smaller hash table's collisions end a chain search early; deflateInit2
    /// allocates and clears kilobytes instead of 256 KiB, which for a small message cost more than
    /// compressing it (allocator traffic and page faults, the heap top trimmed after each call).
    static func deflateParameters(count: Int) -> (windowBits: Int32, memLevel: Int32) {
        var bits: Int32 = 9
        while bits < 15 && 1 << bits < count + 262 { bits += 1 }
        let log2Count = Int32(Int.bitWidth - max(0, count - 1).leadingZeroBitCount)  // ⌈log2(count)⌉
        return (bits, min(8, max(1, log2Count - 6)))
    }

    /// `data` compressed at `level` (0 stores, 1 fastest … 9 smallest; clamped), or nil when the
    /// result would not be smaller than `data` (zlib stops once its output fills that room).
    static func compress(_ data: [UInt8], framing: ZlibFraming, level: Int) -> [UInt8]? {
        let room = data.count - 1
        guard room > 0, data.count <= Int(UInt32.max) else { return nil }
        let out = UnsafeMutablePointer<UInt8>.allocate(capacity: room)
        defer { out.deallocate() }
        let (bits, memLevel) = deflateParameters(count: data.count)
        let written = withUnsafeTemporaryAllocation(of: z_stream.self, capacity: 1) { s -> Int? in
            // zlib keeps the stream's address in its state: the z_stream must not move.
            let strm = s.baseAddress!
            strm.initialize(to: z_stream())
            let rc = CZlib_deflateInit2(strm, Int32(min(9, max(0, level))), framing.windowBits(bits), memLevel, Z_DEFAULT_STRATEGY)
            guard rc == Z_OK else { return nil }
            defer { deflateEnd(strm) }
            return data.withUnsafeBufferPointer { input -> Int? in
                strm.pointee.next_in = input.baseAddress
                strm.pointee.avail_in = uInt(input.count)
                strm.pointee.next_out = out
                strm.pointee.avail_out = uInt(room)
                // Anything but the end of the stream means the output did not fit in `room`.
                return deflate(strm, Z_FINISH) == Z_STREAM_END ? room - Int(strm.pointee.avail_out) : nil
            }
        }
        guard let n = written else { return nil }
        return [UInt8](unsafeUninitializedCapacity: n) { buffer, count in
            buffer.baseAddress!.update(from: out, count: n)
            count = n
        }
    }

    /// Decompresses `data`, producing at most `limit` bytes. gzip data may hold several members;
    /// the result is their concatenation.
    ///
    /// The output starts at four times the input (at most `limit`) and doubles, never past `limit`;
    /// once it holds `limit` bytes, zlib is given one byte more to write, and writing it is
    /// ``ZlibFailure/tooLarge``: a decompression bomb costs at most `limit` bytes.
    ///
    /// - Throws: ``ZlibFailure/tooLarge`` when the output would pass `limit`;
    ///   ``ZlibFailure/invalid(_:)`` for anything invalid: a wrong header, block, checksum or length,
    ///   data that ends early, bytes after the end of a zlib stream.
    static func decompress(_ data: [UInt8], framing: ZlibFraming, limit: Int) throws(ZlibFailure) -> [UInt8] {
        let result = data.withUnsafeBufferPointer { input in
            withUnsafeTemporaryAllocation(of: z_stream.self, capacity: 1) { s in
                let strm = s.baseAddress!
                strm.initialize(to: z_stream())
                return inflateAll(input, strm, framing, max(0, limit))
            }
        }
        return try result.get()
    }

    /// The output buffer of one decompression: grows by doubling up to the limit.
    private struct Output {
        var base: UnsafeMutablePointer<UInt8>
        var count = 0
        var capacity: Int

        init(capacity: Int) {
            self.capacity = capacity
            base = .allocate(capacity: max(1, capacity))
        }

        mutating func grow(limit: Int) {
            let c = min(limit, max(capacity * 2, 256))
            let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
            b.moveInitialize(from: base, count: count)
            base.deallocate()
            base = b
            capacity = c
        }

        /// The bytes written, as an array of their exact size.
        func copy() -> [UInt8] {
            [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { buffer.baseAddress!.update(from: base, count: count) }
                initialized = count
            }
        }
    }

    private static func inflateAll(
        _ input: UnsafeBufferPointer<UInt8>, _ strm: UnsafeMutablePointer<z_stream>, _ framing: ZlibFraming, _ limit: Int
    ) -> Result<[UInt8], ZlibFailure> {
        // The full 32 KiB window, whichever window the sender used.
        guard CZlib_inflateInit2(strm, framing.windowBits()) == Z_OK else {
            return .failure(.invalid("zlib could not set up an inflate stream (out of memory)"))
        }
        defer { inflateEnd(strm) }
        var out = Output(capacity: min(limit, max(256, input.count &* 4)))
        defer { out.base.deallocate() }
        // Where the input not yet handed to zlib starts; zlib takes at most 1 GiB per call (avail_in is 32 bits).
        var fed = 0
        var probe: UInt8 = 0
        while true {
            if strm.pointee.avail_in == 0 && fed < input.count {
                let n = min(input.count - fed, 1 << 30)
                strm.pointee.next_in = input.baseAddress! + fed
                strm.pointee.avail_in = uInt(n)
                fed += n
            }
            if out.count == out.capacity && out.capacity < limit { out.grow(limit: limit) }
            let full = out.count == out.capacity
            let room = full ? 1 : min(out.capacity - out.count, 1 << 30)
            let rc = withUnsafeMutablePointer(to: &probe) { p in
                strm.pointee.next_out = full ? p : out.base + out.count
                strm.pointee.avail_out = uInt(room)
                // Z_FINISH: when one call ends the stream, zlib needs no 32 KiB window of its own.
                return inflate(strm, Z_FINISH)
            }
            let written = room - Int(strm.pointee.avail_out)
            if full && written > 0 { return .failure(.tooLarge) }
            out.count += written
            let left = Int(strm.pointee.avail_in) + input.count - fed
            let at = input.count - left
            switch rc {
            case Z_STREAM_END:
                if left == 0 { return .success(out.copy()) }
                guard framing == .gzip else {
                    let what = left == 1 ? "1 byte follows" : "\(left) bytes follow"
                    return .failure(.invalid("\(what) the end of the zlib stream (at byte \(at) of \(input.count))"))
                }
                inflateReset(strm)  // the next gzip member
            case Z_OK, Z_BUF_ERROR:
                // The output is full (grow it, or probe at the limit), or there is input to hand over.
                if strm.pointee.avail_out == 0 || (strm.pointee.avail_in == 0 && fed < input.count) { continue }
                if left == 0 {
                    return .failure(.invalid("the data ends after \(input.count) bytes, inside the \(framing) stream"))
                }
                return .failure(.invalid("zlib stopped at byte \(at) of \(input.count) without reaching the end of the \(framing) stream"))
            case Z_NEED_DICT:
                return .failure(.invalid("the zlib stream needs a preset dictionary, which gRPC messages do not use"))
            case Z_DATA_ERROR:
                let zmsg = strm.pointee.msg.map { String(cString: $0) } ?? "invalid data"
                let place = "at byte \(at) of the \(input.count)-byte \(framing) stream"
                guard let meaning = explain(zmsg, framing) else { return .failure(.invalid("\(zmsg) \(place)")) }
                return .failure(.invalid("\(meaning) (zlib: \(zmsg), \(place))"))
            case Z_MEM_ERROR:
                return .failure(.invalid("zlib ran out of memory"))
            default:
                return .failure(.invalid("zlib's inflate returned \(rc)"))
            }
        }
    }

    /// What zlib's terse messages for the header and trailer checks mean.
    private static func explain(_ zmsg: String, _ framing: ZlibFraming) -> String? {
        switch zmsg {
        case "incorrect header check":
            framing == .gzip
                ? "a gzip member does not start with the magic bytes 1f 8b"
                : "the data does not start with a zlib header (its check bits are wrong)"
        case "incorrect data check":
            framing == .gzip
                ? "the CRC-32 in the gzip trailer does not match the decompressed bytes"
                : "the Adler-32 in the zlib trailer does not match the decompressed bytes"
        case "header crc mismatch":
            "the CRC-16 in the gzip header does not match the header"
        case "incorrect length check":
            "the length in the gzip trailer does not match the decompressed bytes"
        case "unknown compression method":
            "the header names a compression method other than DEFLATE (8)"
        default:
            nil
        }
    }
}
