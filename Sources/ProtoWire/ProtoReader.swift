/// Reads protobuf wire data from a contiguous buffer without copying it.
///
/// The reader is a cursor over memory it does not own: keep the buffer alive while reading.
/// Nested readers (``enterMessage()``, ``enterPacked()``) share the same base, so every
/// error's ``ProtoWireError/offset`` counts from the start of the outermost buffer.
///
/// ```swift
/// var reader = ProtoReader(buffer)
/// while let tag = try reader.nextTag() {
///     switch tag.rawValue {
///     case 0x0a: name = try reader.readString()
///     default: try reader.skipField(into: &unknownFields)
///     }
/// }
/// ```
public struct ProtoReader {
    /// How deeply messages and groups may nest before decoding fails with `tooDeep`.
    public static let maximumDepth = 100

    @usableFromInline let base: UnsafeRawPointer?
    @usableFromInline var position: Int
    @usableFromInline let end: Int
    @usableFromInline let depth: Int
    /// Where the current field's tag starts.
    @usableFromInline var fieldStart: Int
    /// The current field's tag (0 before the first ``nextTag()``).
    @usableFromInline var currentTag: UInt32

    /// A reader over all of `buffer`.
    @inlinable
    public init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress
        position = 0
        end = buffer.count
        depth = 0
        fieldStart = 0
        currentTag = 0
    }

    @inlinable
    init(base: UnsafeRawPointer?, start: Int, end: Int, depth: Int, tag: UInt32) {
        self.base = base
        self.position = start
        self.end = end
        self.depth = depth
        self.fieldStart = start
        self.currentTag = tag
    }

    /// The offset of the next byte to read, from the start of the outermost buffer.
    @inlinable
    public var offset: Int { position }

    /// Whether every byte has been read.
    @inlinable
    public var isAtEnd: Bool { position >= end }

    /// The number of bytes left.
    @inlinable
    public var remaining: Int { end - position }

    /// The field number of the field being read, or `nil` before the first tag.
    @inlinable
    public var currentFieldNumber: Int? { currentTag == 0 ? nil : Int(currentTag >> 3) }

    // MARK: Errors (kept out of line so inlined readers stay small)

    @usableFromInline
    func error(_ code: ProtoWireError.Code, at offset: Int, _ detail: String) -> ProtoWireError {
        ProtoWireError(code: code, fieldNumber: currentFieldNumber, offset: offset, detail)
    }

    @usableFromInline
    func truncated(needing count: Int, at offset: Int, what: String) -> ProtoWireError {
        error(.truncated, at: offset, "expected \(count) bytes of \(what), found \(end - offset) before the end")
    }

    // MARK: Varints

    /// Reads a varint (at most 10 bytes).
    ///
    /// - Throws: `truncated` if the buffer ends first, `overlongVarint` if it runs past 10 bytes
    ///   or overflows 64 bits.
    @inlinable @inline(__always)
    public mutating func readVarint() throws(ProtoWireError) -> UInt64 {
        if position < end {
            let p = base.unsafelyUnwrapped
            let b0 = p.load(fromByteOffset: position, as: UInt8.self)
            if b0 < 0x80 {
                position &+= 1
                return UInt64(b0)
            }
            if position &+ 1 < end {
                let b1 = p.load(fromByteOffset: position &+ 1, as: UInt8.self)
                if b1 < 0x80 {
                    position &+= 2
                    return UInt64(b0 & 0x7f) | UInt64(b1) << 7
                }
            }
        }
        return try readVarintSlow()
    }

    @usableFromInline
    mutating func readVarintSlow() throws(ProtoWireError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var index = position
        while true {
            guard index < end else {
                throw error(.truncated, at: start, "expected a varint, found the end of the buffer after \(index - start) bytes")
            }
            let byte = base.unsafelyUnwrapped.load(fromByteOffset: index, as: UInt8.self)
            index += 1
            if shift == 63 && byte > 1 {
                throw error(.overlongVarint, at: start, "expected a varint of at most 10 bytes fitting 64 bits, found a longer one")
            }
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        position = index
        return result
    }

    // MARK: Tags

    /// Reads the next field's tag, or returns `nil` at the end of the buffer.
    ///
    /// - Throws: `invalidFieldNumber` for field 0 or above 2^29-1, `invalidWireType` for wire types 6 and 7.
    @inlinable @inline(__always)
    public mutating func nextTag() throws(ProtoWireError) -> ProtoTag? {
        guard position < end else { return nil }
        fieldStart = position
        let key = try readVarint()
        if key < 8 || key > UInt64(FieldNumber.maximum) << 3 | 7 || key & 7 > 5 {
            throw badTag(key)
        }
        currentTag = UInt32(truncatingIfNeeded: key)
        return ProtoTag(unchecked: currentTag)
    }

    @usableFromInline
    func badTag(_ key: UInt64) -> ProtoWireError {
        let number = key >> 3
        if number == 0 || number > UInt64(FieldNumber.maximum) {
            return ProtoWireError(
                code: .invalidFieldNumber, fieldNumber: nil, offset: fieldStart,
                "expected a field number in 1...536870911, found \(number)")
        }
        return ProtoWireError(
            code: .invalidWireType, fieldNumber: Int(number), offset: fieldStart,
            "expected a wire type in 0...5, found \(key & 7)")
    }

    // MARK: Scalars

    /// Reads four little-endian bytes.
    @inlinable
    public mutating func readFixed32() throws(ProtoWireError) -> UInt32 {
        guard end &- position >= 4 else { throw truncated(needing: 4, at: position, what: "fixed32") }
        let value = base.unsafelyUnwrapped.loadUnaligned(fromByteOffset: position, as: UInt32.self)
        position &+= 4
        return UInt32(littleEndian: value)
    }

    /// Reads eight little-endian bytes.
    @inlinable
    public mutating func readFixed64() throws(ProtoWireError) -> UInt64 {
        guard end &- position >= 8 else { throw truncated(needing: 8, at: position, what: "fixed64") }
        let value = base.unsafelyUnwrapped.loadUnaligned(fromByteOffset: position, as: UInt64.self)
        position &+= 8
        return UInt64(littleEndian: value)
    }

    /// Reads an `int32` (a varint truncated to 32 bits, as protobuf does).
    @inlinable
    public mutating func readInt32() throws(ProtoWireError) -> Int32 { Int32(truncatingIfNeeded: try readVarint()) }
    /// Reads an `int64`.
    @inlinable
    public mutating func readInt64() throws(ProtoWireError) -> Int64 { Int64(bitPattern: try readVarint()) }
    /// Reads a `uint32` (truncated to 32 bits).
    @inlinable
    public mutating func readUInt32() throws(ProtoWireError) -> UInt32 { UInt32(truncatingIfNeeded: try readVarint()) }
    /// Reads a `uint64`.
    @inlinable
    public mutating func readUInt64() throws(ProtoWireError) -> UInt64 { try readVarint() }
    /// Reads a zigzag-encoded `sint32`.
    @inlinable
    public mutating func readSInt32() throws(ProtoWireError) -> Int32 {
        decodeZigZag(UInt32(truncatingIfNeeded: try readVarint()))
    }
    /// Reads a zigzag-encoded `sint64`.
    @inlinable
    public mutating func readSInt64() throws(ProtoWireError) -> Int64 { decodeZigZag(try readVarint()) }
    /// Reads a `bool` (any non-zero varint is true).
    @inlinable
    public mutating func readBool() throws(ProtoWireError) -> Bool { try readVarint() != 0 }
    /// Reads an enum's raw value (truncated to 32 bits).
    @inlinable
    public mutating func readEnum() throws(ProtoWireError) -> Int32 { Int32(truncatingIfNeeded: try readVarint()) }
    /// Reads a `sfixed32`.
    @inlinable
    public mutating func readSFixed32() throws(ProtoWireError) -> Int32 { Int32(bitPattern: try readFixed32()) }
    /// Reads a `sfixed64`.
    @inlinable
    public mutating func readSFixed64() throws(ProtoWireError) -> Int64 { Int64(bitPattern: try readFixed64()) }
    /// Reads a `float`.
    @inlinable
    public mutating func readFloat() throws(ProtoWireError) -> Float { Float(bitPattern: try readFixed32()) }
    /// Reads a `double`.
    @inlinable
    public mutating func readDouble() throws(ProtoWireError) -> Double { Double(bitPattern: try readFixed64()) }

    // MARK: Length-delimited

    /// Reads a length prefix and returns the bytes it covers, without copying.
    ///
    /// The length is checked against the bytes left before anything is sliced.
    /// - Throws: `lengthOutOfBounds` if the length runs past the end.
    @inlinable
    public mutating func readLengthDelimited() throws(ProtoWireError) -> UnsafeRawBufferPointer {
        let (start, count) = try readLengthPrefix()
        return UnsafeRawBufferPointer(start: base.map { $0 + start }, count: count)
    }

    /// Reads a length prefix, checks it, and skips the body; returns the body's start and length.
    @inlinable @inline(__always)
    mutating func readLengthPrefix() throws(ProtoWireError) -> (start: Int, count: Int) {
        let lengthOffset = position
        let length = try readVarint()
        guard length <= UInt64(end &- position) else { throw lengthPastEnd(length, at: lengthOffset) }
        let start = position
        position &+= Int(truncatingIfNeeded: length)
        return (start, Int(truncatingIfNeeded: length))
    }

    @usableFromInline
    func lengthPastEnd(_ length: UInt64, at offset: Int) -> ProtoWireError {
        error(.lengthOutOfBounds, at: offset, "declared length \(length) runs past the end: only \(end - position) bytes left")
    }

    /// Reads a `string` field, validating UTF-8.
    ///
    /// - Throws: `invalidUTF8` if the bytes are not valid UTF-8.
    @inlinable
    public mutating func readString() throws(ProtoWireError) -> String {
        let (start, count) = try readLengthPrefix()
        if count == 0 { return "" }
        let bytes = UnsafeBufferPointer(
            start: base.unsafelyUnwrapped.advanced(by: start).assumingMemoryBound(to: UInt8.self), count: count)
        if ProtoReader.isASCII(bytes) {
            // ASCII is valid UTF-8. Up to 15 bytes the string is stored inline (no allocation) and
            // the closure form builds it cheapest; longer ones are copied once into new storage.
            if count <= 15 {
                return String(unsafeUninitializedCapacity: count) { buffer in
                    buffer.baseAddress.unsafelyUnwrapped.update(from: bytes.baseAddress.unsafelyUnwrapped, count: count)
                    return count
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        guard let string = String(validating: bytes, as: UTF8.self) else { throw invalidUTF8(at: start) }
        return string
    }

    /// Whether every byte is below 0x80, checked eight bytes at a time.
    @inlinable
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let p = UnsafeRawPointer(bytes.baseAddress.unsafelyUnwrapped)
        let n = bytes.count
        var bits: UInt64 = 0
        if n >= 8 {
            var i = 0
            while i &+ 8 <= n {
                bits |= p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                i &+= 8
            }
            // The last (overlapping) eight bytes cover the tail.
            bits |= p.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
        } else {
            // Two (possibly overlapping) loads cover 2...7 bytes.
            if n >= 4 {
                bits = UInt64(p.loadUnaligned(as: UInt32.self) | p.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self))
            } else if n >= 2 {
                bits = UInt64(p.loadUnaligned(as: UInt16.self) | p.loadUnaligned(fromByteOffset: n &- 2, as: UInt16.self))
            } else if n == 1 {
                bits = UInt64(p.load(as: UInt8.self))
            }
        }
        return bits & 0x8080_8080_8080_8080 == 0
    }

    @usableFromInline
    func invalidUTF8(at offset: Int) -> ProtoWireError {
        error(.invalidUTF8, at: offset, "expected a UTF-8 string, found invalid UTF-8")
    }

    /// Reads a `bytes` field into a new array.
    @inlinable
    public mutating func readBytes() throws(ProtoWireError) -> [UInt8] {
        [UInt8](try readLengthDelimited())
    }

    /// Reads a length prefix and returns a reader over the embedded message, one level deeper.
    ///
    /// - Throws: `tooDeep` past ``maximumDepth``, `lengthOutOfBounds` if the length runs past the end.
    @inlinable
    public mutating func enterMessage() throws(ProtoWireError) -> ProtoReader {
        guard depth < ProtoReader.maximumDepth else { throw tooDeep() }
        let (start, count) = try readLengthPrefix()
        return ProtoReader(base: base, start: start, end: start &+ count, depth: depth &+ 1, tag: currentTag)
    }

    /// Reads a length prefix and returns a reader over a packed repeated field's elements.
    @inlinable
    public mutating func enterPacked() throws(ProtoWireError) -> ProtoReader {
        let (start, count) = try readLengthPrefix()
        return ProtoReader(base: base, start: start, end: start &+ count, depth: depth, tag: currentTag)
    }

    @usableFromInline
    func tooDeep() -> ProtoWireError {
        error(.tooDeep, at: position, "messages nest deeper than \(ProtoReader.maximumDepth) levels")
    }

    /// The number of varints left (bytes with the high bit clear): an exact, bounded count for
    /// reserving a packed field's array before reading it.
    @inlinable
    public func countVarints() -> Int {
        var count = 0
        var index = position
        while index < end {
            if base.unsafelyUnwrapped.load(fromByteOffset: index, as: UInt8.self) < 0x80 { count &+= 1 }
            index &+= 1
        }
        return count
    }

    /// The number of `width`-byte elements left in a packed fixed-width field.
    ///
    /// - Throws: `malformed` if the bytes left are not a multiple of `width`.
    @inlinable
    public func countFixed(width: Int) throws(ProtoWireError) -> Int {
        let bytes = end &- position
        guard bytes % width == 0 else { throw packedLength(bytes, width) }
        return bytes / width
    }

    @usableFromInline
    func packedLength(_ bytes: Int, _ width: Int) -> ProtoWireError {
        error(
            .malformed, at: position, "expected packed fixed\(width * 8) data whose length is a multiple of \(width), found \(bytes) bytes")
    }

    /// How many consecutive length-delimited fields, starting with the current one, carry the
    /// current tag (at most `limit`): a cheap, bounded count for reserving a repeated field's
    /// capacity before its elements are decoded. Malformed data simply ends the count.
    @inlinable
    public func countFieldRun(limit: Int = 256) -> Int {
        var scan = self
        scan.position = fieldStart
        var count = 0
        while count < limit && scan.position < scan.end {
            guard let key = try? scan.readVarint(), key == UInt64(currentTag) else { break }
            guard (try? scan.readLengthPrefix()) != nil else { break }
            count &+= 1
        }
        return count
    }

    // MARK: Maps

    /// Reads the run of map entries that starts with the current field (it and the fields right
    /// after it with the same tag, up to 16 of them) and adds them to `map`; a later
    /// entry with an equal key replaces the earlier one, as protobuf requires.
    ///
    /// The entries are decoded into temporary (stack) memory first and the dictionary is built or
    /// extended once, with its capacity reserved for the whole batch. `readEntry` decodes one
    /// entry's body, filling in the defaults for a missing key or value. Fields that follow the
    /// batch, and the rest of longer runs, are left to the caller's loop (which calls this again).
    ///
    /// - Throws: what `enterMessage()` and `readEntry` throw; nothing is added to `map` then.
    @inlinable
    public mutating func readMapEntries<Key: Hashable, Value>(
        into map: inout [Key: Value],
        _ readEntry: (inout ProtoReader) throws(ProtoWireError) -> (Key, Value)
    ) throws(ProtoWireError) {
        let tag = currentTag
        try withUnsafeTemporaryAllocation(
            of: (Key, Value).self, capacity: ProtoReader.mapBatchSize
        ) { entries throws(ProtoWireError) in
            let first = entries.baseAddress.unsafelyUnwrapped
            var read = 0
            do throws(ProtoWireError) {
                while true {
                    var entry = try enterMessage()
                    (first + read).initialize(to: try readEntry(&entry))
                    read &+= 1
                    guard read < ProtoReader.mapBatchSize, nextTagIs(tag) else { break }
                    _ = try nextTag()
                }
            } catch {
                first.deinitialize(count: read)
                throw error
            }
            let batch = ProtoMovingBuffer(first, count: read)
            if map.isEmpty {
                map = Dictionary(batch, uniquingKeysWith: { _, last in last })
            } else {
                map.merge(batch, uniquingKeysWith: { _, last in last })
            }
        }
    }

    /// How many map entries ``readMapEntries(into:_:)`` decodes before adding them to the map.
    @inlinable
    static var mapBatchSize: Int { 16 }

    /// Whether the next bytes are the tag `tag` (one- and two-byte tags; others report false,
    /// which only ends a batch early).
    @inlinable
    func nextTagIs(_ tag: UInt32) -> Bool {
        guard position < end else { return false }
        let p = base.unsafelyUnwrapped
        let b0 = UInt32(p.load(fromByteOffset: position, as: UInt8.self))
        if tag < 0x80 { return b0 == tag }
        guard tag < 0x4000, position &+ 1 < end else { return false }
        let b1 = UInt32(p.load(fromByteOffset: position &+ 1, as: UInt8.self))
        return b0 == (tag & 0x7f) | 0x80 && b1 == tag >> 7
    }

    // MARK: Skipping

    /// Skips the value of the field whose tag was just read.
    ///
    /// Every wire type is skipped, groups included (matching end-group tag required).
    /// - Throws: `invalidWireType` for an end-group tag with no matching start.
    @inlinable
    public mutating func skipField() throws(ProtoWireError) {
        switch currentTag & 7 {
        case 0: _ = try readVarint()
        case 1: _ = try readFixed64()
        case 2: _ = try readLengthPrefix()
        case 5: _ = try readFixed32()
        default: try skipGroupOrFail()
        }
    }

    /// Skips the field whose tag was just read and appends its bytes, tag included,
    /// to `unknownFields`, so they are re-emitted unchanged.
    @inlinable
    public mutating func skipField(into unknownFields: inout UnknownFields) throws(ProtoWireError) {
        let start = fieldStart
        try skipField()
        unknownFields.append(UnsafeRawBufferPointer(start: base.unsafelyUnwrapped + start, count: position &- start))
    }

    @usableFromInline
    mutating func skipGroupOrFail() throws(ProtoWireError) {
        let tag = currentTag
        guard tag & 7 == 3 else {
            throw error(.invalidWireType, at: fieldStart, "found an end-group tag outside any group")
        }
        try skipGroup(startTag: tag, depth: depth + 1)
        currentTag = tag
    }

    /// Skips a group's fields up to its matching end-group tag.
    mutating func skipGroup(startTag: UInt32, depth groupDepth: Int) throws(ProtoWireError) {
        guard groupDepth <= ProtoReader.maximumDepth else { throw tooDeep() }
        let groupStart = fieldStart
        while true {
            guard let tag = try nextTag() else {
                currentTag = startTag
                throw error(.truncated, at: groupStart, "expected an end-group tag for field \(startTag >> 3), found the end of the buffer")
            }
            switch tag.rawValue & 7 {
            case 0: _ = try readVarint()
            case 1: _ = try readFixed64()
            case 2: _ = try readLengthPrefix()
            case 5: _ = try readFixed32()
            case 3: try skipGroup(startTag: tag.rawValue, depth: groupDepth + 1)
            default:
                guard tag.rawValue >> 3 == startTag >> 3 else {
                    throw error(
                        .invalidWireType, at: fieldStart,
                        "expected an end-group tag for field \(startTag >> 3), found one for field \(tag.rawValue >> 3)")
                }
                return
            }
        }
    }

    // MARK: Reading submessages of well-known shapes

    /// Merges a `google.protobuf.*Value` wrapper message into `current`: a wrapper without
    /// its value field stands for the type's default; anything else inside is skipped.
    @inlinable
    public mutating func readWrapper<Value: ProtoWrapperValue>(_ current: Value?) throws(ProtoWireError) -> Value {
        var sub = try enterMessage()
        var value = current ?? Value.protoDefault
        while let tag = try sub.nextTag() {
            if tag.rawValue == Value.protoWrapperTag {
                value = try Value(protoReading: &sub)
            } else {
                try sub.skipField()
            }
        }
        return value
    }

    /// Reads an embedded message and merges it into `message`.
    @inlinable
    public mutating func readMessage<M: ProtoCodable>(into message: inout M) throws(ProtoWireError) {
        var sub = try enterMessage()
        try message.protoMerge(from: &sub)
    }

    /// Reads an embedded message into a new value.
    @inlinable
    public mutating func readMessage<M: ProtoCodable>(_: M.Type = M.self) throws(ProtoWireError) -> M {
        var message = M()
        var sub = try enterMessage()
        try message.protoMerge(from: &sub)
        return message
    }

    /// Reads an embedded message and merges it into an optional field (creating it if absent),
    /// so repeated occurrences of a singular message merge as protobuf requires.
    @inlinable
    public mutating func mergeMessage<M: ProtoCodable>(into field: inout M?) throws(ProtoWireError) {
        var message = field ?? M()
        field = nil  // keep the storage uniquely referenced while merging
        var sub = try enterMessage()
        try message.protoMerge(from: &sub)
        field = message
    }
}

/// Initialised elements in temporary memory, handed out by moving them: iterating to the end
/// leaves the memory uninitialised, so a consumer that reads every element owns them all.
@usableFromInline
struct ProtoMovingBuffer<Element>: Sequence, IteratorProtocol {
    @usableFromInline let base: UnsafeMutablePointer<Element>
    @usableFromInline let count: Int
    @usableFromInline var index = 0

    @inlinable
    init(_ base: UnsafeMutablePointer<Element>, count: Int) {
        self.base = base
        self.count = count
    }

    @inlinable
    var underestimatedCount: Int { count &- index }

    @inlinable
    mutating func next() -> Element? {
        guard index < count else { return nil }
        defer { index &+= 1 }
        return (base + index).move()
    }
}
