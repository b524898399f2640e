// DEFLATE decoding (RFC 1951): stored, fixed-Huffman and dynamic-Huffman blocks, with two-level
// lookup tables, a 64-bit bit buffer and an output that never grows past the caller's limit.

/// Why compressed data could not be decoded.
package struct DeflateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure.
    package enum Kind: Sendable, Equatable {
        /// The data is not valid for its format (bad header, code, distance or checksum).
        case corrupt
        /// The data ends before the stream does.
        case truncated
        /// The decoded data would exceed the caller's limit.
        case tooLarge
    }

    /// The kind of failure.
    package var kind: Kind
    /// What was expected and what was found.
    package var message: String

    /// Creates an error.
    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    package var description: String { message }
}

/// Constants shared by the encoder and the decoder (RFC 1951, section 3.2.5).
enum DeflateTables {
    static let lengthBase: [UInt16] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
    ]
    static let lengthExtra: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distBase: [UInt16] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
        6145, 8193, 12289, 16385, 24577,
    ]
    static let distExtra: [UInt8] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
    /// The order in which code-length code lengths are sent.
    static let codeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    /// The fixed literal/length code lengths (section 3.2.6).
    static let fixedLiteralLengths: [UInt8] =
        [UInt8](repeating: 8, count: 144) + [UInt8](repeating: 9, count: 112) + [UInt8](repeating: 7, count: 24)
        + [UInt8](repeating: 8, count: 8)

    /// `code` of `length` bits with its bit order reversed (Huffman codes are sent most significant bit first).
    @inline(__always)
    static func reverse(_ code: UInt32, _ length: Int) -> UInt32 {
        code.bitSwapped() >> UInt32(32 - length)
    }
}

extension UInt32 {
    @inline(__always)
    fileprivate func bitSwapped() -> UInt32 {
        var v = self
        v = ((v >> 1) & 0x5555_5555) | ((v & 0x5555_5555) << 1)
        v = ((v >> 2) & 0x3333_3333) | ((v & 0x3333_3333) << 2)
        v = ((v >> 4) & 0x0F0F_0F0F) | ((v & 0x0F0F_0F0F) << 4)
        return v.byteSwapped
    }
}

/// Decoding tables. An entry is `symbol << 16 | length` for a code, `offset << 16 | 0x100 | bits`
/// for a pointer to a second-level table indexed by the next `bits` bits, and 0 for no code.
enum HuffmanDecodeTable {
    enum BuildResult { case ok, overSubscribed, incomplete }

    /// Fills `table` (capacity `capacity`) for the code with `lengths` (0: symbol unused).
    /// Codes must be complete, except a single code of one bit (RFC 1951 allows one distance code)
    /// or no code at all; the caller decides whether an empty code is acceptable.
    static func build(
        lengths: UnsafeBufferPointer<UInt8>, primaryBits: Int, table: UnsafeMutablePointer<UInt32>, capacity: Int
    ) -> BuildResult {
        var counts = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &counts) { raw -> BuildResult in
            let count = raw.baseAddress!.assumingMemoryBound(to: Int.self)
            for l in lengths { count[Int(l & 15)] += 1 }
            count[0] = 0
            var maxLen = 0
            var used = 0
            for l in 1...15 where count[l] > 0 {
                maxLen = l
                used += count[l]
            }
            let primarySize = 1 << primaryBits
            table.update(repeating: 0, count: primarySize)
            if used == 0 { return .ok }
            var left = 1
            for l in 1...15 {
                left <<= 1
                left -= count[l]
                if left < 0 { return .overSubscribed }
            }
            if left > 0 && maxLen != 1 { return .incomplete }
            // First canonical code of each length.
            var next = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            return withUnsafeMutableBytes(of: &next) { nraw -> BuildResult in
                let nextCode = nraw.baseAddress!.assumingMemoryBound(to: Int.self)
                var code = 0
                for l in 1...15 {
                    code = (code + count[l - 1]) << 1
                    nextCode[l] = code
                }
                let mask = UInt32(primarySize - 1)
                var nextSub = primarySize
                // First pass: short codes, and the widest second-level table each prefix needs.
                for (symbol, l8) in lengths.enumerated() where l8 > 0 {
                    let l = Int(l8)
                    let c = DeflateTables.reverse(UInt32(nextCode[l]), l)
                    if l <= primaryBits {
                        nextCode[l] += 1
                        let entry = UInt32(symbol) << 16 | UInt32(l)
                        var i = Int(c)
                        while i < primarySize {
                            table[i] = entry
                            i += 1 << l
                        }
                    } else {
                        nextCode[l] += 1
                        let p = Int(c & mask)
                        let sub = UInt32(l - primaryBits)
                        let e = table[p]
                        if e == 0 || (e & 0x100 != 0 && e & 0xFF < sub) { table[p] = 0x100 | sub }
                    }
                }
                // Allocate second-level tables.
                if maxLen > primaryBits {
                    for p in 0..<primarySize where table[p] & 0x100 != 0 {
                        let bits = Int(table[p] & 0xFF)
                        guard nextSub + (1 << bits) <= capacity else { return .overSubscribed }
                        table[p] = UInt32(nextSub) << 16 | 0x100 | UInt32(bits)
                        (table + nextSub).update(repeating: 0, count: 1 << bits)
                        nextSub += 1 << bits
                    }
                    // Second pass: long codes, recomputing their canonical codes.
                    code = 0
                    for l in 1...15 {
                        code = (code + count[l - 1]) << 1
                        nextCode[l] = code
                    }
                    for (symbol, l8) in lengths.enumerated() where l8 > 0 {
                        let l = Int(l8)
                        let c = DeflateTables.reverse(UInt32(nextCode[l]), l)
                        nextCode[l] += 1
                        guard l > primaryBits else { continue }
                        let e = table[Int(c & mask)]
                        let offset = Int(e >> 16)
                        let size = 1 << Int(e & 0xFF)
                        let entry = UInt32(symbol) << 16 | UInt32(l)
                        var i = Int(c >> UInt32(primaryBits))
                        while i < size {
                            table[offset + i] = entry
                            i += 1 << (l - primaryBits)
                        }
                    }
                }
                return .ok
            }
        }
    }
}

/// A growable output buffer that refuses to grow past `limit` bytes.
struct InflateOutput {
    var base: UnsafeMutablePointer<UInt8>
    var count = 0
    var capacity: Int
    let limit: Int

    init(expected: Int, limit: Int) {
        self.limit = limit
        capacity = max(1, min(limit, max(expected, 256)))
        base = .allocate(capacity: capacity)
    }

    /// Makes room for `extra` more bytes.
    @inline(__always)
    mutating func reserve(_ extra: Int) throws(DeflateError) {
        if capacity - count < extra { try grow(extra) }
    }

    @inline(never)
    mutating func grow(_ extra: Int) throws(DeflateError) {
        guard extra <= limit - count else {
            throw DeflateError(.tooLarge, "the decompressed data exceeds the limit of \(limit) bytes")
        }
        let newCapacity = min(limit, max(capacity * 2, count + extra))
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        b.moveInitialize(from: base, count: count)
        base.deallocate()
        base = b
        capacity = newCapacity
    }

    /// The bytes written, as an array; frees the buffer.
    mutating func finish() -> [UInt8] {
        let n = count
        let b = base
        let out = [UInt8](unsafeUninitializedCapacity: n) { buf, initialized in
            if n > 0 { buf.baseAddress!.update(from: b, count: n) }
            initialized = n
        }
        free()
        return out
    }

    /// Frees the buffer; the output must not be used afterwards.
    func free() {
        base.deallocate()
    }
}

/// Decodes one raw DEFLATE stream.
struct Inflater {
    private let input: UnsafeRawPointer
    private let end: Int
    private(set) var pos: Int
    private var bits: UInt64 = 0
    private var count = 0

    static let literalPrimaryBits = 9
    static let distancePrimaryBits = 7
    static let literalCapacity = (1 << literalPrimaryBits) + 288 * (1 << (15 - literalPrimaryBits))
    static let distanceCapacity = (1 << distancePrimaryBits) + 32 * (1 << (15 - distancePrimaryBits))

    /// Decodes starting at `offset` of `input`.
    init(_ input: UnsafeRawBufferPointer, offset: Int) {
        // A non-nil base even for empty input; nothing is read past `end`.
        self.input = input.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        end = input.count
        pos = offset
    }

    @inline(__always)
    private mutating func refill() {
        if end - pos >= 8 {
            bits |= UInt64(littleEndian: input.loadUnaligned(fromByteOffset: pos, as: UInt64.self)) << UInt64(count)
            pos += (63 - count) >> 3
            count |= 56
        } else {
            while count <= 56 && pos < end {
                bits |= UInt64(input.load(fromByteOffset: pos, as: UInt8.self)) << UInt64(count)
                pos += 1
                count += 8
            }
        }
    }

    @inline(__always)
    private mutating func take(_ n: Int) throws(DeflateError) -> UInt32 {
        if count < n {
            refill()
            if count < n { throw Self.truncated }
        }
        let v = UInt32(truncatingIfNeeded: bits & ((1 << UInt64(n)) - 1))
        bits >>= UInt64(n)
        count -= n
        return v
    }

    static let truncated = DeflateError(.truncated, "the compressed data ends before the end of the DEFLATE stream")

    /// Decodes one symbol with `table` whose first level is `primaryBits` wide.
    @inline(__always)
    private mutating func decode(_ table: UnsafeMutablePointer<UInt32>, _ primaryBits: Int, _ what: StaticString) throws(DeflateError) -> Int {
        if count < 15 { refill() }
        var e = table[Int(truncatingIfNeeded: bits) & ((1 << primaryBits) - 1)]
        if e & 0x100 != 0 {
            let sub = Int(truncatingIfNeeded: bits >> UInt64(primaryBits)) & ((1 << Int(e & 0xFF)) - 1)
            e = table[Int(e >> 16) + sub]
        }
        let n = Int(e & 0xFF)
        if n == 0 {
            if pos >= end && count < 15 { throw Self.truncated }
            throw DeflateError(.corrupt, "invalid \(what) code in the DEFLATE stream")
        }
        if n > count { throw Self.truncated }
        bits >>= UInt64(n)
        count -= n
        return Int(e >> 16)
    }

    /// Decodes blocks until the final one, appending to `out`. Afterwards `pos` is the offset of the
    /// first byte after the stream (the bit buffer's unread whole bytes given back).
    mutating func run(into out: inout InflateOutput) throws(DeflateError) {
        let tables = UnsafeMutablePointer<UInt32>.allocate(capacity: Self.literalCapacity + Self.distanceCapacity)
        defer { tables.deallocate() }
        let lit = tables
        let dist = tables + Self.literalCapacity
        var final = false
        while !final {
            final = try take(1) == 1
            switch try take(2) {
            case 0:
                try stored(into: &out)
            case 1:
                DeflateTables.fixedLiteralLengths.withUnsafeBufferPointer { l in
                    _ = HuffmanDecodeTable.build(lengths: l, primaryBits: Self.literalPrimaryBits, table: lit, capacity: Self.literalCapacity)
                }
                let fiveBits = [UInt8](repeating: 5, count: 32)
                fiveBits.withUnsafeBufferPointer { l in
                    _ = HuffmanDecodeTable.build(lengths: l, primaryBits: Self.distancePrimaryBits, table: dist, capacity: Self.distanceCapacity)
                }
                try codes(lit, dist, into: &out)
            case 2:
                try dynamicTables(lit, dist)
                try codes(lit, dist, into: &out)
            default:
                throw DeflateError(.corrupt, "invalid DEFLATE block type 3")
            }
        }
        // Give back whole bytes read ahead into the bit buffer.
        pos -= count >> 3
        bits = 0
        count = 0
    }

    private mutating func stored(into out: inout InflateOutput) throws(DeflateError) {
        _ = try take(count & 7)
        pos -= count >> 3
        bits = 0
        count = 0
        guard end - pos >= 4 else { throw Self.truncated }
        let len = Int(input.load(fromByteOffset: pos, as: UInt8.self)) | Int(input.load(fromByteOffset: pos + 1, as: UInt8.self)) << 8
        let nlen = Int(input.load(fromByteOffset: pos + 2, as: UInt8.self)) | Int(input.load(fromByteOffset: pos + 3, as: UInt8.self)) << 8
        guard len == nlen ^ 0xFFFF else {
            throw DeflateError(.corrupt, "stored block length \(len) does not match its complement \(nlen ^ 0xFFFF)")
        }
        pos += 4
        guard end - pos >= len else { throw Self.truncated }
        try out.reserve(len)
        (out.base + out.count).update(from: (input + pos).assumingMemoryBound(to: UInt8.self), count: len)
        out.count += len
        pos += len
    }

    private mutating func dynamicTables(_ lit: UnsafeMutablePointer<UInt32>, _ dist: UnsafeMutablePointer<UInt32>) throws(DeflateError) {
        let hlit = Int(try take(5)) + 257
        let hdist = Int(try take(5)) + 1
        let hclen = Int(try take(4)) + 4
        guard hlit <= 286, hdist <= 30 else {
            throw DeflateError(.corrupt, "dynamic block declares \(hlit) literal/length and \(hdist) distance codes; at most 286 and 30 exist")
        }
        var lengths = [UInt8](repeating: 0, count: 286 + 30)
        var clLengths = [UInt8](repeating: 0, count: 19)
        for i in 0..<hclen { clLengths[DeflateTables.codeLengthOrder[i]] = UInt8(try take(3)) }
        var clTable = [UInt32](repeating: 0, count: 128)
        let r = clTable.withUnsafeMutableBufferPointer { t in
            clLengths.withUnsafeBufferPointer { l in
                HuffmanDecodeTable.build(lengths: l, primaryBits: 7, table: t.baseAddress!, capacity: 128)
            }
        }
        guard r == .ok, clLengths.contains(where: { $0 != 0 }) else {
            throw DeflateError(.corrupt, "invalid code-length code in a dynamic block")
        }
        var i = 0
        let total = hlit + hdist
        try clTable.withUnsafeMutableBufferPointer { (t) throws(DeflateError) in
            while i < total {
                let sym = try decode(t.baseAddress!, 7, "code-length")
                if sym < 16 {
                    lengths[i] = UInt8(sym)
                    i += 1
                    continue
                }
                var repeatValue: UInt8 = 0
                let n: Int
                switch sym {
                case 16:
                    guard i > 0 else { throw DeflateError(.corrupt, "a repeat code comes before any code length") }
                    repeatValue = lengths[i - 1]
                    n = 3 + Int(try take(2))
                case 17: n = 3 + Int(try take(3))
                default: n = 11 + Int(try take(7))
                }
                guard i + n <= total else { throw DeflateError(.corrupt, "code lengths repeat past the declared number of codes") }
                for k in i..<(i + n) { lengths[k] = repeatValue }
                i += n
            }
        }
        guard lengths[256] != 0 else { throw DeflateError(.corrupt, "dynamic block has no end-of-block code") }
        try lengths.withUnsafeBufferPointer { (l) throws(DeflateError) in
            let lr = HuffmanDecodeTable.build(
                lengths: UnsafeBufferPointer(rebasing: l[0..<hlit]), primaryBits: Self.literalPrimaryBits, table: lit,
                capacity: Self.literalCapacity)
            guard lr == .ok else { throw DeflateError(.corrupt, "invalid literal/length code lengths (\(lr)) in a dynamic block") }
            let dr = HuffmanDecodeTable.build(
                lengths: UnsafeBufferPointer(rebasing: l[hlit..<total]), primaryBits: Self.distancePrimaryBits, table: dist,
                capacity: Self.distanceCapacity)
            guard dr == .ok else { throw DeflateError(.corrupt, "invalid distance code lengths (\(dr)) in a dynamic block") }
        }
    }

    private mutating func codes(
        _ lit: UnsafeMutablePointer<UInt32>, _ dist: UnsafeMutablePointer<UInt32>, into out: inout InflateOutput
    ) throws(DeflateError) {
        try DeflateTables.lengthBase.withUnsafeBufferPointer { (lengthBase) throws(DeflateError) in
            try DeflateTables.lengthExtra.withUnsafeBufferPointer { (lengthExtra) throws(DeflateError) in
                try DeflateTables.distBase.withUnsafeBufferPointer { (distBase) throws(DeflateError) in
                    try DeflateTables.distExtra.withUnsafeBufferPointer { (distExtra) throws(DeflateError) in
                        while true {
                            // Fast path: eight input bytes and room for a longest match plus an
                            // 8-byte over-copy, so one refill covers a whole length/distance pair
                            // (at most 15+5+15+13 bits) and no bound is checked per symbol. The
                            // bit buffer and output position live in locals here.
                            if end - pos >= 8 && out.capacity - out.count >= 258 + 8 {
                                var b = bits, c = count, p = pos, o = out.count
                                let base = out.base, room = out.capacity - (258 + 8), last = end - 8
                                defer {
                                    bits = b
                                    count = c
                                    pos = p
                                    out.count = o
                                }
                                while p <= last && o <= room {
                                    b |= UInt64(littleEndian: input.loadUnaligned(fromByteOffset: p, as: UInt64.self)) << UInt64(c)
                                    p += (63 - c) >> 3
                                    c |= 56
                                    var e = lit[Int(truncatingIfNeeded: b) & ((1 << Self.literalPrimaryBits) - 1)]
                                    if e & 0x100 != 0 {
                                        e = lit[Int(e >> 16) + (Int(truncatingIfNeeded: b >> UInt64(Self.literalPrimaryBits)) & ((1 << Int(e & 0xFF)) - 1))]
                                    }
                                    var n = Int(e & 0xFF)
                                    guard n != 0 else { throw DeflateError(.corrupt, "invalid literal/length code in the DEFLATE stream") }
                                    b >>= UInt64(n)
                                    c -= n
                                    let sym = Int(e >> 16)
                                    if sym < 256 {
                                        base[o] = UInt8(truncatingIfNeeded: sym)
                                        o += 1
                                        continue
                                    }
                                    if sym == 256 { return }
                                    let li = sym - 257
                                    guard li < 29 else { throw DeflateError(.corrupt, "invalid literal/length symbol \(sym)") }
                                    n = Int(lengthExtra[li])
                                    let length = Int(lengthBase[li]) + Int(truncatingIfNeeded: b & ((1 << UInt64(n)) - 1))
                                    b >>= UInt64(n)
                                    c -= n
                                    e = dist[Int(truncatingIfNeeded: b) & ((1 << Self.distancePrimaryBits) - 1)]
                                    if e & 0x100 != 0 {
                                        e = dist[Int(e >> 16) + (Int(truncatingIfNeeded: b >> UInt64(Self.distancePrimaryBits)) & ((1 << Int(e & 0xFF)) - 1))]
                                    }
                                    n = Int(e & 0xFF)
                                    guard n != 0 else { throw DeflateError(.corrupt, "invalid distance code in the DEFLATE stream") }
                                    b >>= UInt64(n)
                                    c -= n
                                    let ds = Int(e >> 16)
                                    guard ds < 30 else { throw DeflateError(.corrupt, "invalid distance symbol \(ds)") }
                                    n = Int(distExtra[ds])
                                    let distance = Int(distBase[ds]) + Int(truncatingIfNeeded: b & ((1 << UInt64(n)) - 1))
                                    b >>= UInt64(n)
                                    c -= n
                                    guard distance <= o else {
                                        throw DeflateError(.corrupt, "a match refers \(distance) bytes back, before the start of the data")
                                    }
                                    let dst = base + o
                                    let src = dst - distance
                                    if distance >= 8 {
                                        // Forward 8-byte copies: each reads bytes already written.
                                        let d = UnsafeMutableRawPointer(dst), s = UnsafeRawPointer(src)
                                        var k = 0
                                        repeat {
                                            d.storeBytes(of: s.loadUnaligned(fromByteOffset: k, as: UInt64.self), toByteOffset: k, as: UInt64.self)
                                            k += 8
                                        } while k < length
                                    } else if distance == 1 {
                                        dst.update(repeating: src.pointee, count: length)
                                    } else {
                                        for k in 0..<length { dst[k] = src[k] }
                                    }
                                    o += length
                                }
                                continue
                            }
                            if count < 48 { refill() }
                            let sym = try decode(lit, Self.literalPrimaryBits, "literal/length")
                            if sym < 256 {
                                if out.count == out.capacity { try out.grow(1) }
                                out.base[out.count] = UInt8(truncatingIfNeeded: sym)
                                out.count += 1
                                continue
                            }
                            if sym == 256 { return }
                            let li = sym - 257
                            guard li < 29 else { throw DeflateError(.corrupt, "invalid literal/length symbol \(sym)") }
                            let length = Int(lengthBase[li]) + Int(try take(Int(lengthExtra[li])))
                            let ds = try decode(dist, Self.distancePrimaryBits, "distance")
                            guard ds < 30 else { throw DeflateError(.corrupt, "invalid distance symbol \(ds)") }
                            let distance = Int(distBase[ds]) + Int(try take(Int(distExtra[ds])))
                            guard distance <= out.count else {
                                throw DeflateError(.corrupt, "a match refers \(distance) bytes back, before the start of the data")
                            }
                            try out.reserve(length)
                            let dst = out.base + out.count
                            let src = dst - distance
                            if distance >= length {
                                dst.update(from: src, count: length)
                            } else if distance == 1 {
                                dst.update(repeating: src.pointee, count: length)
                            } else {
                                for k in 0..<length { dst[k] = src[k] }
                            }
                            out.count += length
                        }
                    }
                }
            }
        }
    }
}
