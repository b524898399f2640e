// DEFLATE encoding (RFC 1951): LZ77 over a 32 KiB window with hash chains (greedy at levels 1–3,
// lazy matching above), then per block whichever of stored, fixed-Huffman or dynamic-Huffman
// coding is smallest.

/// Bits written least significant first into a growing byte buffer.
struct BitWriter {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int
    private var acc: UInt64 = 0
    private var bitCount = 0

    init(capacity: Int) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    /// Makes room for `n` more bytes (plus the 8 a flush may need).
    @inline(__always)
    mutating func reserve(_ n: Int) {
        if capacity - count < n + 16 { grow(n + 16) }
    }

    @inline(never)
    private mutating func grow(_ n: Int) {
        let c = max(capacity * 2, count + n)
        let b = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        b.moveInitialize(from: base, count: count)
        base.deallocate()
        base = b
        capacity = c
    }

    /// Writes the low `n` bits of `value` (n ≤ 32). The caller has reserved room.
    @inline(__always)
    mutating func write(_ value: UInt32, _ n: Int) {
        acc |= UInt64(value) << UInt64(bitCount)
        bitCount += n
        if bitCount >= 32 {
            UnsafeMutableRawPointer(base + count).storeBytes(of: UInt32(truncatingIfNeeded: acc).littleEndian, as: UInt32.self)
            count += 4
            acc >>= 32
            bitCount -= 32
        }
    }

    /// Pads with zero bits to a byte boundary and writes out the bit buffer.
    mutating func align() {
        reserve(8)
        while bitCount > 0 {
            base[count] = UInt8(truncatingIfNeeded: acc)
            count += 1
            acc >>= 8
            bitCount = max(0, bitCount - 8)
        }
        acc = 0
    }

    /// Appends bytes at a byte boundary (call `align` first).
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count)
        if let b = bytes.baseAddress, bytes.count > 0 {
            (base + count).update(from: b.assumingMemoryBound(to: UInt8.self), count: bytes.count)
            count += bytes.count
        }
    }

    /// Appends one byte at a byte boundary.
    mutating func append(byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    /// The bytes written, as an array; frees the buffer, so the writer must not be used afterwards.
    mutating func finish() -> [UInt8] {
        align()
        let n = count
        let b = base
        let out = [UInt8](unsafeUninitializedCapacity: n) { buf, initialized in
            if n > 0 { buf.baseAddress!.update(from: b, count: n) }
            initialized = n
        }
        base.deallocate()
        capacity = 0
        count = 0
        return out
    }
}

/// Huffman code construction for the encoder.
enum HuffmanEncoder {
    /// Code lengths for `freqs`, none longer than `limit`, forming a complete code when two or
    /// more symbols occur (one symbol gets length 1).
    static func lengths(_ freqs: UnsafeBufferPointer<UInt32>, limit: Int) -> [UInt8] {
        let n = freqs.count
        var lengths = [UInt8](repeating: 0, count: n)
        // Leaves as `freq << 16 | symbol`: sorting the integers orders by frequency, then symbol.
        var leaves: [UInt64] = []
        leaves.reserveCapacity(n)
        for s in 0..<n where freqs[s] > 0 { leaves.append(UInt64(freqs[s]) << 16 | UInt64(s)) }
        if leaves.isEmpty { return lengths }
        if leaves.count == 1 {
            lengths[Int(leaves[0] & 0xFFFF)] = 1
            return lengths
        }
        leaves.sort()
        let m = leaves.count
        // Two-queue construction: leaves in order, internal nodes in creation order (weights never decrease).
        var weight = [UInt64](repeating: 0, count: 2 * m - 1)
        var parent = [Int](repeating: 0, count: 2 * m - 1)
        for i in 0..<m { weight[i] = leaves[i] >> 16 }
        var leaf = 0
        var node = m
        var next = m
        func smallest() -> Int {
            if leaf < m && (node >= next || weight[leaf] <= weight[node]) {
                leaf += 1
                return leaf - 1
            }
            node += 1
            return node - 1
        }
        while next < 2 * m - 1 {
            let a = smallest()
            let b = smallest()
            weight[next] = weight[a] + weight[b]
            parent[a] = next
            parent[b] = next
            next += 1
        }
        var depth = [Int](repeating: 0, count: 2 * m - 1)
        var i = 2 * m - 3
        while i >= 0 {
            depth[i] = depth[parent[i]] + 1
            i -= 1
        }
        var maxDepth = 0
        for i in 0..<m {
            lengths[Int(leaves[i] & 0xFFFF)] = UInt8(min(depth[i], limit))
            maxDepth = max(maxDepth, depth[i])
        }
        if maxDepth > limit { limitLengths(&lengths, limit: limit) }
        return lengths
    }

    /// Makes clamped lengths a complete prefix code again: lengthen the deepest codes below the
    /// limit while the Kraft sum is over one, then shorten the deepest codes while it is under.
    private static func limitLengths(_ lengths: inout [UInt8], limit: Int) {
        let one = 1 << limit
        var kraft = 0
        for l in lengths where l > 0 { kraft += 1 << (limit - Int(l)) }
        while kraft > one {
            var best = -1
            for (s, l) in lengths.enumerated() where l > 0 && Int(l) < limit && (best < 0 || l > lengths[best]) { best = s }
            if best < 0 { break }
            kraft -= 1 << (limit - Int(lengths[best]) - 1)
            lengths[best] += 1
        }
        while kraft < one {
            var best = -1
            for (s, l) in lengths.enumerated() where l > 1 && kraft + (1 << (limit - Int(l))) <= one && (best < 0 || l > lengths[best]) {
                best = s
            }
            if best < 0 { break }
            kraft += 1 << (limit - Int(lengths[best]))
            lengths[best] -= 1
        }
    }

    /// Canonical codes for `lengths`, bit-reversed for writing least significant bit first.
    static func codes(_ lengths: [UInt8]) -> [UInt16] {
        var count = [Int](repeating: 0, count: 16)
        for l in lengths { count[Int(l)] += 1 }
        count[0] = 0
        var next = [Int](repeating: 0, count: 16)
        var code = 0
        for l in 1...15 {
            code = (code + count[l - 1]) << 1
            next[l] = code
        }
        var codes = [UInt16](repeating: 0, count: lengths.count)
        for (s, l) in lengths.enumerated() where l > 0 {
            codes[s] = UInt16(DeflateTables.reverse(UInt32(next[Int(l)]), Int(l)))
            next[Int(l)] += 1
        }
        return codes
    }
}

/// Encodes raw DEFLATE streams.
struct DeflateEncoder {
    /// Matcher parameters per level, as zlib tunes them: (good, lazy or max insert, nice, chain).
    private static let parameters: [(good: Int, lazy: Int, nice: Int, chain: Int)] = [
        (0, 0, 0, 0), (4, 4, 8, 4), (4, 5, 16, 8), (4, 6, 32, 32), (4, 4, 16, 16), (8, 16, 32, 32),
        (8, 16, 128, 128), (8, 32, 128, 256), (32, 128, 258, 1024), (32, 258, 258, 4096),
    ]
    /// Symbols per block before it is written out.
    private static let blockSymbols = 16 * 1024

    /// Length code index (0…28) for `length - 3`.
    private static let lengthCode: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 256)
        for code in 0..<29 {
            let base = Int(DeflateTables.lengthBase[code]) - 3
            let n = 1 << Int(DeflateTables.lengthExtra[code])
            for k in 0..<n where base + k < 256 { t[base + k] = UInt8(code) }
        }
        t[255] = 28
        return t
    }()

    @inline(__always)
    static func distanceCode(_ distance: Int) -> Int {
        let x = distance - 1
        if x < 4 { return x }
        let log = Int.bitWidth - 1 - x.leadingZeroBitCount
        return 2 * log + ((x >> (log - 1)) & 1)
    }

    private let input: UnsafePointer<UInt8>
    private let n: Int
    private let level: Int
    private var writer: BitWriter
    /// The block's symbols: a literal byte, or `1 << 31 | (length - 3) << 16 | (distance - 1)`.
    private let symbols: UnsafeMutablePointer<UInt32>
    private var symbolCount = 0
    /// Symbols per block: fewer than `blockSymbols` for short inputs, which then allocate less.
    private let blockCapacity: Int
    /// Symbol frequencies of the block: 286 literal/length codes, then 30 distance codes.
    private let freq: UnsafeMutablePointer<UInt32>
    private var literalFreq: UnsafeMutableBufferPointer<UInt32> { UnsafeMutableBufferPointer(start: freq, count: 286) }
    private var distanceFreq: UnsafeMutableBufferPointer<UInt32> { UnsafeMutableBufferPointer(start: freq + 286, count: 30) }
    private var blockStart = 0

    private init(_ input: UnsafePointer<UInt8>, count: Int, level: Int, writer: BitWriter) {
        self.input = input
        self.n = count
        self.level = level
        self.writer = writer
        blockCapacity = min(Self.blockSymbols, count + 1)
        symbols = .allocate(capacity: blockCapacity)
        freq = .allocate(capacity: 286 + 30)
        freq.initialize(repeating: 0, count: 286 + 30)
    }

    /// Appends the raw DEFLATE encoding of `data` at `level` (0 stored, 1 fastest … 9 smallest) to `writer`.
    static func encode(_ data: UnsafeRawBufferPointer, level: Int, into writer: inout BitWriter) {
        let level = min(9, max(0, level))
        let empty: UInt8 = 0
        withUnsafePointer(to: empty) { emptyPointer in
            let base = data.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPointer
            var encoder = DeflateEncoder(base, count: data.count, level: level, writer: writer)
            defer {
                encoder.symbols.deallocate()
                encoder.freq.deallocate()
            }
            encoder.run()
            writer = encoder.writer
        }
    }

    private mutating func run() {
        writer.reserve(n / 2 + 64)
        if level == 0 {
            writeStored(0, n, final: true)
            return
        }
        if n < 4 {
            for i in 0..<n { emitLiteral(at: i) }
            flush(at: n, final: true)
            return
        }
        let p = Self.parameters[level]
        let hashBits = min(15, max(8, Int.bitWidth - n.leadingZeroBitCount))
        let windowSize = min(32768, 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount))
        var head = [Int32](repeating: -1, count: 1 << hashBits)
        var prev = [Int32](repeating: -1, count: windowSize)
        head.withUnsafeMutableBufferPointer { head in
            prev.withUnsafeMutableBufferPointer { prev in
                let m = Matcher(
                    input: input, n: n, head: head.baseAddress!, prev: prev.baseAddress!, hashShift: 32 - hashBits,
                    windowMask: windowSize - 1, nice: p.nice)
                if level <= 3 {
                    greedy(m, chain: p.chain, maxInsert: p.lazy)
                } else {
                    lazy(m, good: p.good, lazyLimit: p.lazy, chain: p.chain)
                }
            }
        }
        flush(at: n, final: true)
    }

    // MARK: LZ77

    private struct Matcher {
        let input: UnsafePointer<UInt8>
        let n: Int
        let head: UnsafeMutablePointer<Int32>
        let prev: UnsafeMutablePointer<Int32>
        let hashShift: Int
        let windowMask: Int
        let nice: Int

        /// Adds position `i` (needs 3 bytes) to its hash chain; returns the previous head.
        @inline(__always)
        func insert(_ i: Int) -> Int {
            let v = UInt32(input[i]) | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2]) << 16
            let h = Int((v &* 2_654_435_761) >> UInt32(hashShift))
            let old = Int(head[h])
            prev[i & windowMask] = Int32(truncatingIfNeeded: old)
            head[h] = Int32(truncatingIfNeeded: i)
            return old
        }

        /// The longest match for position `pos` longer than `atLeast`, following at most `chain`
        /// candidates from `candidate`. Returns (length, distance); length ≤ atLeast means none.
        @inline(__always)
        func longest(_ pos: Int, from candidate: Int, atLeast: Int, chain: Int) -> (Int, Int) {
            let maxLen = min(258, n - pos)
            var best = atLeast
            var bestDistance = 0
            guard best < maxLen else { return (best, 0) }
            var cand = candidate
            var chain = chain
            let lowest = pos - 32768
            let raw = UnsafeRawPointer(input)
            while cand >= 0 && cand >= lowest && cand < pos && chain > 0 {
                chain -= 1
                if input[cand + best] == input[pos + best] && input[cand] == input[pos] {
                    var l = 0
                    while l + 8 <= maxLen {
                        let x = raw.loadUnaligned(fromByteOffset: cand + l, as: UInt64.self)
                            ^ raw.loadUnaligned(fromByteOffset: pos + l, as: UInt64.self)
                        if x != 0 {
                            l += UInt64(littleEndian: x).trailingZeroBitCount >> 3
                            break
                        }
                        l += 8
                    }
                    if l + 8 > maxLen {
                        while l < maxLen && input[cand + l] == input[pos + l] { l += 1 }
                    }
                    if l > best {
                        best = l
                        bestDistance = pos - cand
                        if l >= nice || l >= maxLen { break }
                    }
                }
                let next = Int(prev[cand & windowMask])
                if next >= cand { break }
                cand = next
            }
            return (best, bestDistance)
        }
    }

    private mutating func greedy(_ m: Matcher, chain: Int, maxInsert: Int) {
        var i = 0
        while i < n {
            if i + 3 <= n {
                let cand = m.insert(i)
                let (len, dist) = m.longest(i, from: cand, atLeast: 2, chain: chain)
                if len >= 3 {
                    emitMatch(len, dist, at: i)
                    if len <= maxInsert {
                        var j = i + 1
                        while j < i + len && j + 3 <= n {
                            _ = m.insert(j)
                            j += 1
                        }
                    }
                    i += len
                    continue
                }
            }
            emitLiteral(at: i)
            i += 1
        }
    }

    private mutating func lazy(_ m: Matcher, good: Int, lazyLimit: Int, chain: Int) {
        var i = 0
        var prevLen = 2
        var prevDist = 0
        var pending = false
        while i < n {
            var len = 2
            var dist = 0
            if i + 3 <= n {
                let cand = m.insert(i)
                if prevLen < lazyLimit {
                    (len, dist) = m.longest(i, from: cand, atLeast: 2, chain: prevLen >= good ? chain >> 2 : chain)
                    // A 3-byte match far back costs more than three literals.
                    if len == 3 && dist > 4096 { len = 2 }
                }
            }
            if prevLen >= 3 && len <= prevLen {
                let start = i - 1
                emitMatch(prevLen, prevDist, at: start)
                var j = i + 1
                let end = start + prevLen
                while j < end && j + 3 <= n {
                    _ = m.insert(j)
                    j += 1
                }
                i = end
                pending = false
                prevLen = 2
            } else {
                if pending { emitLiteral(at: i - 1) }
                pending = true
                prevLen = len
                prevDist = dist
                i += 1
            }
        }
        if pending { emitLiteral(at: n - 1) }
    }

    @inline(__always)
    private mutating func emitLiteral(at i: Int) {
        let b = input[i]
        symbols[symbolCount] = UInt32(b)
        symbolCount += 1
        freq[Int(b)] += 1
        if symbolCount == blockCapacity { flush(at: i + 1, final: false) }
    }

    @inline(__always)
    private mutating func emitMatch(_ length: Int, _ distance: Int, at i: Int) {
        symbols[symbolCount] = 1 << 31 | UInt32(length - 3) << 16 | UInt32(distance - 1)
        symbolCount += 1
        freq[257 + Int(Self.lengthCode[length - 3])] += 1
        freq[286 + Self.distanceCode(distance)] += 1
        if symbolCount == blockCapacity { flush(at: i + length, final: false) }
    }

    // MARK: Blocks

    /// Writes the symbols gathered for input `blockStart..<end` as one block (or stored blocks).
    private mutating func flush(at end: Int, final: Bool) {
        freq[256] = 1
        let rawBytes = end - blockStart
        // Dynamic code lengths; at least two codes each so both codes are complete.
        var litLengths = HuffmanEncoder.lengths(UnsafeBufferPointer(literalFreq), limit: 15)
        if litLengths.lazy.filter({ $0 > 0 }).count < 2 { litLengths[litLengths[0] == 0 ? 0 : 1] = 1 }
        var distLengths = HuffmanEncoder.lengths(UnsafeBufferPointer(distanceFreq), limit: 15)
        let usedDistances = distLengths.lazy.filter { $0 > 0 }.count
        if usedDistances == 0 {
            distLengths[0] = 1
            distLengths[1] = 1
        } else if usedDistances == 1 {
            distLengths[distLengths[0] == 0 ? 0 : 1] = 1
        }
        var hlit = 286
        while hlit > 257 && litLengths[hlit - 1] == 0 { hlit -= 1 }
        var hdist = 30
        while hdist > 1 && distLengths[hdist - 1] == 0 { hdist -= 1 }
        let rle = Self.runLengths(Array(litLengths[0..<hlit]) + Array(distLengths[0..<hdist]))
        var clFreq = [UInt32](repeating: 0, count: 19)
        for r in rle { clFreq[Int(r >> 8)] += 1 }
        let clLengths = clFreq.withUnsafeBufferPointer { HuffmanEncoder.lengths($0, limit: 7) }
        var hclen = 19
        while hclen > 4 && clLengths[DeflateTables.codeLengthOrder[hclen - 1]] == 0 { hclen -= 1 }

        var extraBits = 0
        for c in 0..<29 { extraBits += Int(literalFreq[257 + c]) * Int(DeflateTables.lengthExtra[c]) }
        for c in 0..<30 { extraBits += Int(distanceFreq[c]) * Int(DeflateTables.distExtra[c]) }
        var dynamicBits = 3 + 14 + 3 * hclen + extraBits
        for r in rle {
            let sym = r >> 8
            dynamicBits += Int(clLengths[Int(sym)]) + (sym == 16 ? 2 : sym == 17 ? 3 : sym == 18 ? 7 : 0)
        }
        var fixedBits = 3 + extraBits
        for s in 0..<286 {
            let f = Int(literalFreq[s])
            dynamicBits += f * Int(litLengths[s])
            fixedBits += f * Int(DeflateTables.fixedLiteralLengths[s])
        }
        for d in 0..<30 {
            dynamicBits += Int(distanceFreq[d]) * Int(distLengths[d])
            fixedBits += Int(distanceFreq[d]) * 5
        }
        let storedBits = (rawBytes + 5 * max(1, (rawBytes + 65534) / 65535)) * 8 + 7

        if storedBits <= min(fixedBits, dynamicBits) {
            writeStored(blockStart, end, final: final)
        } else if fixedBits <= dynamicBits {
            writer.reserve(fixedBits / 8 + 16)
            writer.write(final ? 3 : 2, 3)  // BFINAL, BTYPE=01
            Self.fixedTables.withUnsafe { lit, dist in writeSymbols(lit: lit, dist: dist) }
        } else {
            writer.reserve(dynamicBits / 8 + 16)
            writer.write(final ? 5 : 4, 3)  // BFINAL, BTYPE=10
            writer.write(UInt32(hlit - 257), 5)
            writer.write(UInt32(hdist - 1), 5)
            writer.write(UInt32(hclen - 4), 4)
            for i in 0..<hclen { writer.write(UInt32(clLengths[DeflateTables.codeLengthOrder[i]]), 3) }
            let clCodes = HuffmanEncoder.codes(clLengths)
            for r in rle {
                let sym = r >> 8, extra = r & 0xFF
                writer.write(UInt32(clCodes[Int(sym)]), Int(clLengths[Int(sym)]))
                switch sym {
                case 16: writer.write(UInt32(extra), 2)
                case 17: writer.write(UInt32(extra), 3)
                case 18: writer.write(UInt32(extra), 7)
                default: break
                }
            }
            let tables = CodeTables(lengths: litLengths, distLengths: distLengths)
            tables.withUnsafe { lit, dist in writeSymbols(lit: lit, dist: dist) }
        }
        symbolCount = 0
        freq.update(repeating: 0, count: 286 + 30)
        blockStart = end
    }

    /// Codes and lengths packed as `code << 8 | length`, with length and distance extra-bit data.
    private struct CodeTables {
        var lit: [UInt32]
        var dist: [UInt32]
        init(lengths: [UInt8], distLengths: [UInt8]) {
            let lc = HuffmanEncoder.codes(lengths)
            let dc = HuffmanEncoder.codes(distLengths)
            lit = (0..<lengths.count).map { UInt32(lc[$0]) << 8 | UInt32(lengths[$0]) }
            dist = (0..<distLengths.count).map { UInt32(dc[$0]) << 8 | UInt32(distLengths[$0]) }
        }
        func withUnsafe(_ body: (UnsafeBufferPointer<UInt32>, UnsafeBufferPointer<UInt32>) -> Void) {
            lit.withUnsafeBufferPointer { l in dist.withUnsafeBufferPointer { d in body(l, d) } }
        }
    }

    private static let fixedTables = CodeTables(
        lengths: DeflateTables.fixedLiteralLengths, distLengths: [UInt8](repeating: 5, count: 30))

    private mutating func writeSymbols(lit: UnsafeBufferPointer<UInt32>, dist: UnsafeBufferPointer<UInt32>) {
        DeflateTables.lengthBase.withUnsafeBufferPointer { lengthBase in
            DeflateTables.lengthExtra.withUnsafeBufferPointer { lengthExtra in
                DeflateTables.distBase.withUnsafeBufferPointer { distBase in
                    DeflateTables.distExtra.withUnsafeBufferPointer { distExtra in
                        Self.lengthCode.withUnsafeBufferPointer { lengthCode in
                            for s in UnsafeBufferPointer(start: symbols, count: symbolCount) {
                                if s & (1 << 31) == 0 {
                                    let e = lit[Int(s)]
                                    writer.write(e >> 8, Int(e & 0xFF))
                                    continue
                                }
                                let length = Int((s >> 16) & 0xFF) + 3
                                let distance = Int(s & 0xFFFF) + 1
                                let lc = Int(lengthCode[length - 3])
                                let le = lit[257 + lc]
                                writer.write(le >> 8, Int(le & 0xFF))
                                let lx = Int(lengthExtra[lc])
                                if lx > 0 { writer.write(UInt32(length - Int(lengthBase[lc])), lx) }
                                let dc = Self.distanceCode(distance)
                                let de = dist[dc]
                                writer.write(de >> 8, Int(de & 0xFF))
                                let dx = Int(distExtra[dc])
                                if dx > 0 { writer.write(UInt32(distance - Int(distBase[dc])), dx) }
                            }
                            let eob = lit[256]
                            writer.write(eob >> 8, Int(eob & 0xFF))
                        }
                    }
                }
            }
        }
    }

    private mutating func writeStored(_ start: Int, _ end: Int, final: Bool) {
        var s = start
        repeat {
            let len = min(65535, end - s)
            let last = s + len == end
            writer.reserve(8)
            writer.write(final && last ? 1 : 0, 3)  // BFINAL, BTYPE=00
            writer.align()
            writer.append(byte: UInt8(truncatingIfNeeded: len))
            writer.append(byte: UInt8(truncatingIfNeeded: len >> 8))
            writer.append(byte: UInt8(truncatingIfNeeded: ~len))
            writer.append(byte: UInt8(truncatingIfNeeded: ~len >> 8))
            writer.append(UnsafeRawBufferPointer(start: input + s, count: len))
            s += len
        } while s < end
    }

    /// Run-length codes (section 3.2.7) for a list of code lengths: `symbol << 8 | extra-bits value`.
    static func runLengths(_ lengths: [UInt8]) -> [UInt16] {
        var out: [UInt16] = []
        func append(_ symbol: UInt8, _ extra: UInt8) { out.append(UInt16(symbol) << 8 | UInt16(extra)) }
        var i = 0
        while i < lengths.count {
            let v = lengths[i]
            var run = 1
            while i + run < lengths.count && lengths[i + run] == v { run += 1 }
            i += run
            if v == 0 {
                while run >= 11 {
                    let r = min(run, 138)
                    append(18, UInt8(r - 11))
                    run -= r
                }
                if run >= 3 {
                    append(17, UInt8(run - 3))
                    run = 0
                }
            } else {
                append(v, 0)
                run -= 1
                while run >= 3 {
                    let r = min(run, 6)
                    append(16, UInt8(r - 3))
                    run -= r
                }
            }
            while run > 0 {
                append(v, 0)
                run -= 1
            }
        }
        return out
    }
}
