// The primitive vocabulary of the wire format, after Go's encoding/protowire:
// validated field numbers and wire types, and free-standing size/append/consume functions.

/// A protobuf field number: 1 through 2^29-1 (536,870,911).
public struct FieldNumber: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The largest valid field number.
    public static let maximum: UInt32 = (1 << 29) - 1

    /// The number, always within 1...``maximum``.
    public let rawValue: UInt32

    /// Validates a field number; `nil` for 0 or anything above ``maximum``.
    @inlinable
    public init?(_ value: Int) {
        guard value >= 1, value <= Int(FieldNumber.maximum) else { return nil }
        rawValue = UInt32(value)
    }

    @inlinable
    init(unchecked value: UInt32) { rawValue = value }

    /// Orders by number.
    public static func < (a: FieldNumber, b: FieldNumber) -> Bool { a.rawValue < b.rawValue }
    /// The number in decimal.
    public var description: String { String(rawValue) }
}

/// How a field's value is laid out on the wire.
public enum WireType: UInt8, Hashable, Sendable, CustomStringConvertible {
    /// A base-128 varint (int32, int64, uint32, uint64, sint32, sint64, bool, enum).
    case varint = 0
    /// Eight little-endian bytes (fixed64, sfixed64, double).
    case fixed64 = 1
    /// A varint length followed by that many bytes (string, bytes, messages, packed repeated).
    case lengthDelimited = 2
    /// The start of a group (deprecated; skipped, never generated).
    case startGroup = 3
    /// The end of a group.
    case endGroup = 4
    /// Four little-endian bytes (fixed32, sfixed32, float).
    case fixed32 = 5

    /// A short name, for example `varint`.
    public var description: String {
        switch self {
        case .varint: "varint"
        case .fixed64: "fixed64"
        case .lengthDelimited: "bytes"
        case .startGroup: "start-group"
        case .endGroup: "end-group"
        case .fixed32: "fixed32"
        }
    }
}

/// A field's key on the wire: `fieldNumber << 3 | wireType`, already validated.
///
/// Generated decoders switch on ``rawValue``, which matches field number and wire type at once.
public struct ProtoTag: Hashable, Sendable, CustomStringConvertible {
    /// The encoded key.
    public let rawValue: UInt32

    /// Builds the key for a field number and wire type.
    @inlinable
    public init(_ field: FieldNumber, _ wireType: WireType) {
        rawValue = field.rawValue << 3 | UInt32(wireType.rawValue)
    }

    @inlinable
    init(unchecked rawValue: UInt32) { self.rawValue = rawValue }

    /// The field number.
    @inlinable
    public var fieldNumber: FieldNumber { FieldNumber(unchecked: rawValue >> 3) }

    /// The wire type.
    @inlinable
    public var wireType: WireType { WireType(rawValue: UInt8(rawValue & 7)).unsafelyUnwrapped }

    /// `field <number> (<wire type>)`.
    public var description: String { "field \(fieldNumber) (\(wireType))" }
}

/// The number of bytes `value` takes as a varint (1 to 10).
@inlinable
public func sizeOfVarint(_ value: UInt64) -> Int {
    // 1 + floor(bits / 7), computed without a loop.
    let bits = 64 - (value | 1).leadingZeroBitCount
    return (bits * 9 + 64) >> 6
}

/// The number of bytes a tag for `field` takes.
@inlinable
public func sizeOfTag(_ field: FieldNumber) -> Int { sizeOfVarint(UInt64(field.rawValue) << 3) }

/// Appends `value` as a varint.
@inlinable
public func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
    var v = value
    while v >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
        v >>= 7
    }
    bytes.append(UInt8(v))
}

/// Appends the tag for a field number and wire type.
@inlinable
public func appendTag(_ field: FieldNumber, _ wireType: WireType, to bytes: inout [UInt8]) {
    appendVarint(UInt64(ProtoTag(field, wireType).rawValue), to: &bytes)
}

/// Reads a varint at the start of `bytes`.
///
/// - Returns: the value and the number of bytes it took.
/// - Throws: ``ProtoWireError`` (`truncated` or `overlongVarint`, offset 0).
public func consumeVarint(_ bytes: UnsafeRawBufferPointer) throws(ProtoWireError) -> (value: UInt64, length: Int) {
    var reader = ProtoReader(bytes)
    let value = try reader.readVarint()
    return (value, reader.offset)
}

/// Maps a signed integer to an unsigned one so that small magnitudes encode small (sint64).
@inlinable
public func encodeZigZag(_ value: Int64) -> UInt64 {
    UInt64(bitPattern: (value << 1) ^ (value >> 63))
}

/// Reverses ``encodeZigZag(_:)-(Int64)``.
@inlinable
public func decodeZigZag(_ value: UInt64) -> Int64 {
    Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
}

/// Maps a signed 32-bit integer the way sint32 fields encode it.
@inlinable
public func encodeZigZag(_ value: Int32) -> UInt32 {
    UInt32(bitPattern: (value << 1) ^ (value >> 31))
}

/// Reverses ``encodeZigZag(_:)-(Int32)``.
@inlinable
public func decodeZigZag(_ value: UInt32) -> Int32 {
    Int32(bitPattern: value >> 1) ^ -Int32(bitPattern: value & 1)
}
