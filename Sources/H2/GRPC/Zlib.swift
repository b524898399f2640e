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
    /// zlib writes straight into the array returned: it starts at four times the input (at most
    /// `limit`) and doubles, never past `limit`, each time copied into the next; once it holds
    /// `limit` bytes, zlib is given one byte more to write, and writing it is
    /// ``ZlibFailure/tooLarge``: a decompression bomb costs at most `limit` bytes (and the half as
    /// large buffer before it while it is copied). When the room left unused is over 64 KiB and
    /// over a quarter of the result's size, the result is copied to an array of its size.
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
        let out = try result.get()
        if out.capacity - out.count > max(64 << 10, out.count / 4) { return Array(out[...]) }
        return out
    }

    /// Where one decompression stands after inflating into a buffer.
    private enum Progress {
        /// The buffer is full and smaller than the limit: inflating goes on in a larger one.
        case full
        case done
        case failed(ZlibFailure)
    }

    private static func inflateAll(
        _ input: UnsafeBufferPointer<UInt8>, _ strm: UnsafeMutablePointer<z_stream>, _ framing: ZlibFraming, _ limit: Int
    ) -> Result<[UInt8], ZlibFailure> {
        // The full 32 KiB window, whichever window the sender used.
        guard CZlib_inflateInit2(strm, framing.windowBits()) == Z_OK else {
            return .failure(.invalid("zlib could not set up an inflate stream (out of memory)"))
        }
        defer { inflateEnd(strm) }
        // Where the input not yet handed to zlib starts.
        var fed = 0
        var out: [UInt8] = []
        var capacity = min(limit, max(256, input.count &* 4))
        while true {
            let previous = out
            var progress = Progress.full
            out = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
                previous.withUnsafeBufferPointer { p in
                    if p.count > 0 { buffer.baseAddress!.update(from: p.baseAddress!, count: p.count) }
                }
                count = previous.count
                progress = inflate(input, &fed, into: buffer, &count, strm, framing, limit)
            }
            switch progress {
            case .full: capacity = min(limit, max(capacity * 2, 256))
            case .done: return .success(out)
            case .failed(let failure): return .failure(failure)
            }
        }
    }

    /// Inflates into `buffer` after its first `count` bytes, handing zlib the input from `fed` on.
    private static func inflate(
        _ input: UnsafeBufferPointer<UInt8>, _ fed: inout Int, into buffer: UnsafeMutableBufferPointer<UInt8>,
        _ count: inout Int, _ strm: UnsafeMutablePointer<z_stream>, _ framing: ZlibFraming, _ limit: Int
    ) -> Progress {
        var probe: UInt8 = 0
        while true {
            // zlib takes at most 1 GiB per call (avail_in is 32 bits).
            if strm.pointee.avail_in == 0 && fed < input.count {
                let n = min(input.count - fed, 1 << 30)
                strm.pointee.next_in = input.baseAddress! + fed
                strm.pointee.avail_in = uInt(n)
                fed += n
            }
            let full = count == buffer.count
            if full && buffer.count < limit { return .full }
            let room = full ? 1 : min(buffer.count - count, 1 << 30)
            let rc = withUnsafeMutablePointer(to: &probe) { p in
                strm.pointee.next_out = full ? p : buffer.baseAddress! + count
                strm.pointee.avail_out = uInt(room)
                // Z_FINISH: when one call ends the stream, zlib needs no 32 KiB window of its own.
                return CZlib.inflate(strm, Z_FINISH)
            }
            let written = room - Int(strm.pointee.avail_out)
            if full && written > 0 { return .failed(.tooLarge) }
            count += written
            let left = Int(strm.pointee.avail_in) + input.count - fed
            let at = input.count - left
            switch rc {
            case Z_STREAM_END:
                if left == 0 { return .done }
                guard framing == .gzip else {
                    let what = left == 1 ? "1 byte follows" : "\(left) bytes follow"
                    return .failed(.invalid("\(what) the end of the zlib stream (at byte \(at) of \(input.count))"))
                }
                inflateReset(strm)  // the next gzip member
            case Z_OK, Z_BUF_ERROR:
                // The buffer is full (grow it, or probe at the limit), or there is input to hand over.
                if strm.pointee.avail_out == 0 || (strm.pointee.avail_in == 0 && fed < input.count) { continue }
                if left == 0 {
                    return .failed(.invalid("the data ends after \(input.count) bytes, inside the \(framing) stream"))
                }
                return .failed(.invalid("zlib stopped at byte \(at) of \(input.count) without reaching the end of the \(framing) stream"))
            case Z_NEED_DICT:
                return .failed(.invalid("the zlib stream needs a preset dictionary, which gRPC messages do not use"))
            case Z_DATA_ERROR:
                let zmsg = strm.pointee.msg.map { String(cString: $0) } ?? "invalid data"
                let place = "at byte \(at) of the \(input.count)-byte \(framing) stream"
                guard let meaning = explain(zmsg, framing) else { return .failed(.invalid("\(zmsg) \(place)")) }
                return .failed(.invalid("\(meaning) (zlib: \(zmsg), \(place))"))
            case Z_MEM_ERROR:
                return .failed(.invalid("zlib ran out of memory"))
            default:
                return .failed(.invalid("zlib's inflate returned \(rc)"))
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
