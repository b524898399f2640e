/// Writes protobuf wire data back to front into a buffer of exactly the message's size.
///
/// Writing from the end means an embedded message's length is known as soon as its body
/// is written, so every message is sized once (by ``ProtoCodable/protoEncodedSize``) and
/// never re-sized per nesting level. Fields are therefore written in reverse order: a
/// generated `protoWrite(to:)` writes unknown fields first, then fields from the highest
/// number down, and for each field its value before its tag.
///
/// Writing more bytes than the buffer holds traps: sizes and writes come from the same value,
/// so that would be a codec bug, never an input error.
public struct ProtoWriter {
    @usableFromInline let base: UnsafeMutablePointer<UInt8>?
    /// The offset of the first byte written so far; writing ends when it reaches 0.
    @usableFromInline var position: Int

    /// A writer that fills `buffer` from its end.
    @inlinable
    public init(_ buffer: UnsafeMutableRawBufferPointer) {
        base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
        position = buffer.count
    }

    /// The offset of the first byte written so far; the bytes from here to the end are done.
    @inlinable
    public var offset: Int { position }

    /// Checks that the whole buffer was filled.
    @inlinable
    public func finish() {
        precondition(position == 0, "ProtoWriter: encoded size and written bytes disagree")
    }

    @inlinable
    mutating func reserve(_ count: Int) -> UnsafeMutablePointer<UInt8> {
        precondition(position >= count, "ProtoWriter: write past the start of the buffer")
        position &-= count
        return base.unsafelyUnwrapped + position
    }

    /// Writes one byte.
    @inlinable
    public mutating func writeByte(_ byte: UInt8) {
        reserve(1).pointee = byte
    }

    /// Writes a varint.
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        if value < 0x80 {
            reserve(1).pointee = UInt8(truncatingIfNeeded: value)
            return
        }
        var p = reserve(sizeOfVarint(value))
        var v = value
        while v >= 0x80 {
            p.pointee = UInt8(truncatingIfNeeded: v) | 0x80
            p += 1
            v >>= 7
        }
        p.pointee = UInt8(truncatingIfNeeded: v)
    }

    /// Writes a tag given as its encoded key (`fieldNumber << 3 | wireType`).
    @inlinable
    public mutating func writeTag(_ key: UInt32) { writeVarint(UInt64(key)) }

    /// Writes four little-endian bytes.
    @inlinable
    public mutating func writeFixed32(_ value: UInt32) {
        UnsafeMutableRawPointer(reserve(4)).storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    /// Writes eight little-endian bytes.
    @inlinable
    public mutating func writeFixed64(_ value: UInt64) {
        UnsafeMutableRawPointer(reserve(8)).storeBytes(of: value.littleEndian, as: UInt64.self)
    }

    /// Writes an `int32` (negative values sign-extended to ten bytes, as protobuf does).
    @inlinable
    public mutating func writeInt32(_ value: Int32) { writeVarint(UInt64(bitPattern: Int64(value))) }
    /// Writes an `int64`.
    @inlinable
    public mutating func writeInt64(_ value: Int64) { writeVarint(UInt64(bitPattern: value)) }
    /// Writes a `uint32`.
    @inlinable
    public mutating func writeUInt32(_ value: UInt32) { writeVarint(UInt64(value)) }
    /// Writes a `uint64`.
    @inlinable
    public mutating func writeUInt64(_ value: UInt64) { writeVarint(value) }
    /// Writes a zigzag `sint32`.
    @inlinable
    public mutating func writeSInt32(_ value: Int32) { writeVarint(UInt64(encodeZigZag(value))) }
    /// Writes a zigzag `sint64`.
    @inlinable
    public mutating func writeSInt64(_ value: Int64) { writeVarint(encodeZigZag(value)) }
    /// Writes a `bool`.
    @inlinable
    public mutating func writeBool(_ value: Bool) { writeByte(value ? 1 : 0) }
    /// Writes an enum's raw value.
    @inlinable
    public mutating func writeEnum(_ value: Int32) { writeInt32(value) }
    /// Writes a `sfixed32`.
    @inlinable
    public mutating func writeSFixed32(_ value: Int32) { writeFixed32(UInt32(bitPattern: value)) }
    /// Writes a `sfixed64`.
    @inlinable
    public mutating func writeSFixed64(_ value: Int64) { writeFixed64(UInt64(bitPattern: value)) }
    /// Writes a `float`.
    @inlinable
    public mutating func writeFloat(_ value: Float) { writeFixed32(value.bitPattern) }
    /// Writes a `double`.
    @inlinable
    public mutating func writeDouble(_ value: Double) { writeFixed64(value.bitPattern) }

    /// Writes raw bytes (no length prefix).
    @inlinable
    public mutating func writeRaw(_ bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        guard count > 0 else { return }
        let p = reserve(count)
        UnsafeMutableRawPointer(p).copyMemory(from: bytes.baseAddress.unsafelyUnwrapped, byteCount: count)
    }

    /// Writes a string's UTF-8 bytes followed by (that is, preceded on the wire by) their length.
    @inlinable
    public mutating func writeString(_ value: String) {
        let count = value.utf8.count
        // Native and small strings lend their UTF-8 without a copy of the string value.
        let written: Void? = value.utf8.withContiguousStorageIfAvailable { writeRaw(UnsafeRawBufferPointer($0)) }
        if written == nil {
            var copy = value
            copy.withUTF8 { writeRaw(UnsafeRawBufferPointer($0)) }
        }
        writeVarint(UInt64(count))
    }

    /// Writes a `bytes` value with its length prefix.
    @inlinable
    public mutating func writeBytes(_ value: [UInt8]) {
        value.withUnsafeBytes { writeRaw($0) }
        writeVarint(UInt64(value.count))
    }

    /// Writes the length prefix of a body written since `endOffset`, the ``offset`` taken
    /// before the body was written.
    @inlinable
    public mutating func writeLength(since endOffset: Int) {
        writeVarint(UInt64(endOffset &- position))
    }

    /// Writes an embedded message with its length prefix (not its tag).
    @inlinable
    public mutating func writeMessage<M: ProtoCodable>(_ message: M) {
        let end = position
        message.protoWrite(to: &self)
        writeVarint(UInt64(end &- position))
    }

    /// Writes a `google.protobuf.*Value` wrapper message with its length prefix (not its tag).
    @inlinable
    public mutating func writeWrapper<Value: ProtoWrapperValue>(_ value: Value) {
        let end = position
        if !value.protoIsDefault {
            value.protoWrite(to: &self)
            writeTag(Value.protoWrapperTag)
        }
        writeVarint(UInt64(end &- position))
    }

    /// Writes raw unknown-field bytes as they were read.
    @inlinable
    public mutating func writeUnknown(_ fields: UnknownFields) {
        fields.bytes.withUnsafeBytes { writeRaw($0) }
    }

    /// Writes the entries of a map in ascending key order (the order protoc's deterministic
    /// encoder uses), calling `writeEntry` for each; entries are written back to front.
    ///
    /// The map is iterated once (iteration hands out each entry more cheaply than `first` or
    /// index subscripts); more than two entries are insertion-sorted in stack memory
    /// (`withUnsafeTemporaryAllocation`), so small maps cost no heap allocation.
    @inlinable
    public mutating func writeMapEntries<Key: Comparable, Value>(
        _ map: [Key: Value], _ writeEntry: (inout ProtoWriter, Key, Value) -> Void
    ) {
        let count = map.count
        if count == 0 { return }
        if count == 1 {
            for (key, value) in map { writeEntry(&self, key, value) }
            return
        }
        if count == 2 {
            var entries = map.makeIterator()
            let a = entries.next().unsafelyUnwrapped
            let b = entries.next().unsafelyUnwrapped
            // Back to front: the larger key first.
            if a.key < b.key {
                writeEntry(&self, b.key, b.value)
                writeEntry(&self, a.key, a.value)
            } else {
                writeEntry(&self, a.key, a.value)
                writeEntry(&self, b.key, b.value)
            }
            return
        }
        withUnsafeTemporaryAllocation(of: (key: Key, value: Value).self, capacity: count) { buffer in
            let order = buffer.baseAddress.unsafelyUnwrapped
            var sorted = 0
            for entry in map {
                var slot = sorted
                while slot > 0 && entry.key < order[slot &- 1].key {
                    (order + slot).moveInitialize(from: order + (slot &- 1), count: 1)
                    slot &-= 1
                }
                (order + slot).initialize(to: entry)
                sorted &+= 1
            }
            while sorted > 0 {
                sorted &-= 1
                let entry = (order + sorted).move()
                writeEntry(&self, entry.key, entry.value)
            }
        }
    }
}

extension ProtoWriter {
    /// Writes the entries of a map with `bool` keys: `false` first on the wire, then `true`.
    @inlinable
    public mutating func writeMapEntries<Value>(
        _ map: [Bool: Value], _ writeEntry: (inout ProtoWriter, Bool, Value) -> Void
    ) {
        if let value = map[true] { writeEntry(&self, true, value) }
        if let value = map[false] { writeEntry(&self, false, value) }
    }
}

/// Size helpers for generated `protoEncodedSize` implementations.
public enum ProtoSize {
    /// The size of a length-delimited value whose body is `count` bytes, prefix included.
    @inlinable
    public static func lengthDelimited(_ count: Int) -> Int { sizeOfVarint(UInt64(count)) &+ count }
    /// The size of a `string` value, length prefix included.
    @inlinable
    public static func string(_ value: String) -> Int { lengthDelimited(value.utf8.count) }
    /// The size of a `bytes` value, length prefix included.
    @inlinable
    public static func bytes(_ value: [UInt8]) -> Int { lengthDelimited(value.count) }
    /// The size of an embedded message, length prefix included.
    @inlinable
    public static func message<M: ProtoCodable>(_ value: M) -> Int { lengthDelimited(value.protoEncodedSize) }
    /// The size of a wrapper message, length prefix included.
    @inlinable
    public static func wrapper<Value: ProtoWrapperValue>(_ value: Value) -> Int {
        lengthDelimited(value.protoIsDefault ? 0 : sizeOfVarint(UInt64(Value.protoWrapperTag)) &+ value.protoSize)
    }
    /// The size of an `int32` varint (ten bytes when negative).
    @inlinable
    public static func int32(_ value: Int32) -> Int { value < 0 ? 10 : sizeOfVarint(UInt64(value)) }
    /// The size of an `int64` varint.
    @inlinable
    public static func int64(_ value: Int64) -> Int { sizeOfVarint(UInt64(bitPattern: value)) }
    /// The size of a `uint32` varint.
    @inlinable
    public static func uint32(_ value: UInt32) -> Int { sizeOfVarint(UInt64(value)) }
    /// The size of a `uint64` varint.
    @inlinable
    public static func uint64(_ value: UInt64) -> Int { sizeOfVarint(value) }
    /// The size of a zigzag `sint32`.
    @inlinable
    public static func sint32(_ value: Int32) -> Int { sizeOfVarint(UInt64(encodeZigZag(value))) }
    /// The size of a zigzag `sint64`.
    @inlinable
    public static func sint64(_ value: Int64) -> Int { sizeOfVarint(encodeZigZag(value)) }
}
