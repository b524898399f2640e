// The well-known types CSI uses, mapped to plain Swift:
// - google.protobuf.Timestamp -> ``Timestamp`` (a message)
// - google.protobuf.{Double,Float,Int64,UInt64,Int32,UInt32,Bool,String,Bytes}Value ->
//   the Swift value as an optional field (`Int64?`, `String?`, ...): nil when absent,
//   the value otherwise (a wrapper without its value field stands for the default).

/// A Swift type a `google.protobuf.*Value` wrapper message maps to.
///
/// Generated code stores a wrapper field as `Value?` and calls ``ProtoReader/readWrapper(_:)``,
/// ``ProtoWriter/writeWrapper(_:)`` and ``ProtoSize/wrapper(_:)``.
public protocol ProtoWrapperValue: Sendable, Hashable {
    /// The wrapper's full protobuf name, for example `google.protobuf.Int64Value`.
    static var protoWrapperName: String { get }
    /// The tag of the wrapper's field 1.
    static var protoWrapperTag: UInt32 { get }
    /// The protobuf default (0, false, empty).
    static var protoDefault: Self { get }
    /// Reads the value (without its tag).
    init(protoReading reader: inout ProtoReader) throws(ProtoWireError)
    /// Whether the value is the default, which proto3 does not emit.
    var protoIsDefault: Bool { get }
    /// The encoded size of the value without its tag.
    var protoSize: Int { get }
    /// Writes the value without its tag.
    func protoWrite(to writer: inout ProtoWriter)
}

/// `google.protobuf.Int64Value` fields map to `Int64?`; the members implement ``ProtoWrapperValue``.
extension Int64: ProtoWrapperValue {
    public static var protoWrapperName: String { "google.protobuf.Int64Value" }
    public static var protoWrapperTag: UInt32 { 0x08 }
    public static var protoDefault: Int64 { 0 }
    @inlinable public init(protoReading reader: inout ProtoReader) throws(ProtoWireError) { self = try reader.readInt64() }
    @inlinable public var protoIsDefault: Bool { self == 0 }
    @inlinable public var protoSize: Int { ProtoSize.int64(self) }
    @inlinable public func protoWrite(to writer: inout ProtoWriter) { writer.writeInt64(self) }
}

/// `google.protobuf.UInt64Value` fields map to `UInt64?`; the members implement ``ProtoWrapperValue``.
extension UInt64: ProtoWrapperValue {
    public static var protoWrapperName: String { "google.protobuf.UInt64Value" }
    public static var protoWrapperTag: UInt32 { 0x08 }
    public static var protoDefault: UInt64 { 0 }
    @inlinable public init(protoReading reader: inout ProtoReader) throws(ProtoWireError) { self = try reader.readUInt64() }
    @inlinable public var protoIsDefault: Bool { self == 0 }
    @inlinable public var protoSize: Int { ProtoSize.uint64(self) }
    @inlinable public func protoWrite(to writer: inout ProtoWriter) { writer.writeUInt64(self) }
}

/// `google.protobuf.Int32Value` fields map to `Int32?`; the members implement ``ProtoWrapperValue``.
extension Int32: ProtoWrapperValue {
    public static var protoWrapperName: String { "google.protobuf.Int32Value" }
    public static var protoWrapperTag: UInt32 { 0x08 }
    public static var protoDefault: Int32 { 0 }
    @inlinable public init(protoReading reader: inout ProtoReader) throws(ProtoWireError) { self = try reader.readInt32() }
    @inlinable public var protoIsDefault: Bool { self == 0 }
    @inlinable public var protoSize: Int { ProtoSize.int32(self) }
    @inlinable public func protoWrite(to writer: inout ProtoWriter) { writer.writeInt32(self) }
}

/// `google.protobuf.UInt32Value` fields map to `UInt32?`; the members implement ``ProtoWrapperValue``.
extension UInt32: ProtoWrapperValue {
    public static var protoWrapperName: String { "google.protobuf.UInt32Value" }
    public static var protoWrapperTag: UInt32 { 0x08 }
    public static var protoDefault: UInt32 { 0 }
    @inlinable public init(protoReading reader: inout ProtoReader) throws(ProtoWireError) { self = try reader.readUInt32() }
    @inlinable public var protoIsDefault: Bool { self == 0 }
    @inlinable public var protoSize: Int { ProtoSize.uint32(self) }
    @inlinable public func protoWrite(to writer: inout ProtoWriter) { writer.writeUInt32(self) }
}

/// `google.protobuf.BoolValue` fields map to `Bool?`; the members implement ``ProtoWrapperValue``.
extension Bool: ProtoWrapperValue {
    public static var protoWrapperName: String { "google.protobuf.BoolValue" }
    public static var protoWrapperTag: UInt32 { 0x08 }
    public static var protoDefault: Bool { false }
    @inlinable public init(protoReading reader: inout ProtoReader) throws(ProtoWireError) { self = try reader.readBool() }
    @inlinable public var protoIsDefault: Bool { !self }
    @inlinable public var protoSize: Int { 1 }
    @inlinable public func protoWrite(to writer: inout ProtoWriter) { writer.writeBool(self) }
}

/// `google.protobuf.DoubleValue` fields map to `Double?`; the members implement ``ProtoWrapperValue``.
extension Double: ProtoWrapperValue {
    public static var protoWrapperName: String { "google.protobuf.DoubleValue" }
    public static var protoWrapperTag: UInt32 { 0x09 }
    public static var protoDefault: Double { 0 }
    @inlinable public init(protoReading reader: inout ProtoReader) throws(ProtoWireError) { self = try reader.readDouble() }
    @inlinable public var protoIsDefault: Bool { bitPattern == 0 }
    @inlinable public var protoSize: Int { 8 }
    @inlinable public func protoWrite(to writer: inout ProtoWriter) { writer.writeDouble(self) }
}

/// `google.protobuf.FloatValue` fields map to `Float?`; the members implement ``ProtoWrapperValue``.
extension Float: ProtoWrapperValue {
    public static var protoWrapperName: String { "google.protobuf.FloatValue" }
    public static var protoWrapperTag: UInt32 { 0x0d }
    public static var protoDefault: Float { 0 }
    @inlinable public init(protoReading reader: inout ProtoReader) throws(ProtoWireError) { self = try reader.readFloat() }
    @inlinable public var protoIsDefault: Bool { bitPattern == 0 }
    @inlinable public var protoSize: Int { 4 }
    @inlinable public func protoWrite(to writer: inout ProtoWriter) { writer.writeFloat(self) }
}

/// `google.protobuf.StringValue` fields map to `String?`; the members implement ``ProtoWrapperValue``.
extension String: ProtoWrapperValue {
    public static var protoWrapperName: String { "google.protobuf.StringValue" }
    public static var protoWrapperTag: UInt32 { 0x0a }
    public static var protoDefault: String { "" }
    @inlinable public init(protoReading reader: inout ProtoReader) throws(ProtoWireError) { self = try reader.readString() }
    @inlinable public var protoIsDefault: Bool { isEmpty }
    @inlinable public var protoSize: Int { ProtoSize.string(self) }
    @inlinable public func protoWrite(to writer: inout ProtoWriter) { writer.writeString(self) }
}

/// The Swift mapping of `google.protobuf.BytesValue` (a plain `[UInt8]` cannot conform on its own
/// without claiming every array).
public struct ProtoBytes: ProtoWrapperValue, RandomAccessCollection, ExpressibleByArrayLiteral {
    /// The bytes.
    public var bytes: [UInt8]
    /// Wraps bytes.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    /// Wraps literal bytes.
    public init(arrayLiteral elements: UInt8...) { bytes = elements }
    /// The first index, 0.
    public var startIndex: Int { bytes.startIndex }
    /// One past the last index.
    public var endIndex: Int { bytes.endIndex }
    /// The byte at `position`.
    public subscript(position: Int) -> UInt8 { bytes[position] }

    // ProtoWrapperValue (documented on the protocol).

    public static var protoWrapperName: String { "google.protobuf.BytesValue" }
    public static var protoWrapperTag: UInt32 { 0x0a }
    public static var protoDefault: ProtoBytes { ProtoBytes([]) }
    @inlinable public init(protoReading reader: inout ProtoReader) throws(ProtoWireError) { self.init(try reader.readBytes()) }
    @inlinable public var protoIsDefault: Bool { bytes.isEmpty }
    @inlinable public var protoSize: Int { ProtoSize.bytes(bytes) }
    @inlinable public func protoWrite(to writer: inout ProtoWriter) { writer.writeBytes(bytes) }
}

/// The wire form `google.protobuf.Timestamp` and `google.protobuf.Duration` share: `int64 seconds = 1`
/// and `int32 nanos = 2`, each left out when 0, then the fields this version does not know.
@usableFromInline
enum SecondsNanosCodec {
    /// The encoded size of the message.
    @inlinable
    static func encodedSize(_ seconds: Int64, _ nanos: Int32, _ unknownFields: UnknownFields) -> Int {
        var size = unknownFields.bytes.count
        if seconds != 0 { size &+= 1 &+ ProtoSize.int64(seconds) }
        if nanos != 0 { size &+= 1 &+ ProtoSize.int32(nanos) }
        return size
    }

    /// Writes the message (the writer fills from the back: the last field first).
    @inlinable
    static func write(_ seconds: Int64, _ nanos: Int32, _ unknownFields: UnknownFields, to writer: inout ProtoWriter) {
        writer.writeUnknown(unknownFields)
        if nanos != 0 {
            writer.writeInt32(nanos)
            writer.writeTag(0x10)
        }
        if seconds != 0 {
            writer.writeInt64(seconds)
            writer.writeTag(0x08)
        }
    }

    /// Merges the fields `reader` holds into the parts.
    @inlinable
    static func merge(
        _ seconds: inout Int64, _ nanos: inout Int32, _ unknownFields: inout UnknownFields, from reader: inout ProtoReader
    ) throws(ProtoWireError) {
        while let tag = try reader.nextTag() {
            switch tag.rawValue {
            case 0x08: seconds = try reader.readInt64()
            case 0x10: nanos = try reader.readInt32()
            default: try reader.skipField(into: &unknownFields)
            }
        }
    }
}

/// `google.protobuf.Timestamp`: a point in time as seconds and nanoseconds since the Unix epoch (UTC).
public struct Timestamp: ProtoCodable, Comparable, CustomStringConvertible, CustomDebugStringConvertible {
    /// `google.protobuf.Timestamp`.
    public static var protoMessageName: String { "google.protobuf.Timestamp" }

    /// Seconds since 1970-01-01T00:00:00Z.
    public var seconds: Int64 = 0
    /// Nanoseconds within the second, 0...999,999,999.
    public var nanos: Int32 = 0
    /// Fields this version does not know, kept for re-encoding.
    public var unknownFields = UnknownFields()

    /// The epoch.
    public init() {}

    /// A timestamp of `seconds` and `nanos` since the epoch.
    public init(seconds: Int64, nanos: Int32 = 0) {
        self.seconds = seconds
        self.nanos = nanos
    }

    @inlinable
    public var protoEncodedSize: Int { SecondsNanosCodec.encodedSize(seconds, nanos, unknownFields) }

    @inlinable
    public func protoWrite(to writer: inout ProtoWriter) { SecondsNanosCodec.write(seconds, nanos, unknownFields, to: &writer) }

    @inlinable
    public mutating func protoMerge(from reader: inout ProtoReader) throws(ProtoWireError) {
        try SecondsNanosCodec.merge(&seconds, &nanos, &unknownFields, from: &reader)
    }

    /// Earlier timestamps order first.
    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanos) < (b.seconds, b.nanos)
    }

    /// `Timestamp(seconds: 1700000000, nanos: 5)`.
    public var description: String { "Timestamp(seconds: \(seconds), nanos: \(nanos))" }
    /// Same as ``description``.
    public var debugDescription: String { description }
}

/// `google.protobuf.Duration`: a signed span of seconds and nanoseconds. Named so that it does not
/// shadow Swift's `Duration`; ``duration`` and ``init(_:)`` convert between the two.
public struct ProtoDuration: ProtoCodable, Comparable, CustomStringConvertible, CustomDebugStringConvertible {
    /// `google.protobuf.Duration`.
    public static var protoMessageName: String { "google.protobuf.Duration" }

    /// Whole seconds, -315,576,000,000...315,576,000,000.
    public var seconds: Int64 = 0
    /// Nanoseconds, -999,999,999...999,999,999, with the sign of ``seconds`` when that is not 0.
    public var nanos: Int32 = 0
    /// Fields this version does not know, kept for re-encoding.
    public var unknownFields = UnknownFields()

    /// Zero.
    public init() {}

    /// A duration of `seconds` and `nanos`.
    public init(seconds: Int64, nanos: Int32 = 0) {
        self.seconds = seconds
        self.nanos = nanos
    }

    /// The protobuf form of a Swift `Duration`, truncated to whole nanoseconds.
    public init(_ duration: Duration) {
        let (s, attoseconds) = duration.components
        var nanos = attoseconds / 1_000_000_000
        var seconds = s
        // Swift keeps the attoseconds non-negative; protobuf gives both parts one sign.
        if seconds < 0 && nanos > 0 {
            seconds += 1
            nanos -= 1_000_000_000
        }
        self.init(seconds: seconds, nanos: Int32(nanos))
    }

    /// The span as a Swift `Duration`.
    public var duration: Duration { .seconds(seconds) + .nanoseconds(Int64(nanos)) }

    @inlinable
    public var protoEncodedSize: Int { SecondsNanosCodec.encodedSize(seconds, nanos, unknownFields) }

    @inlinable
    public func protoWrite(to writer: inout ProtoWriter) { SecondsNanosCodec.write(seconds, nanos, unknownFields, to: &writer) }

    @inlinable
    public mutating func protoMerge(from reader: inout ProtoReader) throws(ProtoWireError) {
        try SecondsNanosCodec.merge(&seconds, &nanos, &unknownFields, from: &reader)
    }

    /// Shorter spans order first.
    public static func < (a: ProtoDuration, b: ProtoDuration) -> Bool {
        (a.seconds, a.nanos) < (b.seconds, b.nanos)
    }

    /// `ProtoDuration(seconds: 5, nanos: 0)`.
    public var description: String { "ProtoDuration(seconds: \(seconds), nanos: \(nanos))" }
    /// Same as ``description``.
    public var debugDescription: String { description }
}

/// `google.protobuf.Empty`: a message without fields, for methods that take or return nothing.
public struct ProtoEmpty: ProtoCodable, CustomStringConvertible, CustomDebugStringConvertible {
    /// `google.protobuf.Empty`.
    public static var protoMessageName: String { "google.protobuf.Empty" }

    /// Fields this version does not know, kept for re-encoding.
    public var unknownFields = UnknownFields()

    /// The empty message.
    public init() {}

    @inlinable
    public var protoEncodedSize: Int { unknownFields.bytes.count }

    @inlinable
    public func protoWrite(to writer: inout ProtoWriter) { writer.writeUnknown(unknownFields) }

    @inlinable
    public mutating func protoMerge(from reader: inout ProtoReader) throws(ProtoWireError) {
        while try reader.nextTag() != nil { try reader.skipField(into: &unknownFields) }
    }

    /// `ProtoEmpty()`.
    public var description: String { "ProtoEmpty()" }
    /// Same as ``description``.
    public var debugDescription: String { description }
}

/// Holds a message out of line, so that a message type can contain itself through a cycle of
/// singular message fields (a Swift struct cannot contain itself inline). Immutable: generated
/// setters put a new box in place, which keeps value semantics.
public final class ProtoBox<Value: Hashable & Sendable>: Hashable, Sendable {
    /// The boxed message.
    public let value: Value
    /// Boxes `value`.
    public init(_ value: Value) { self.value = value }
    /// Boxes are equal when their messages are.
    public static func == (a: ProtoBox, b: ProtoBox) -> Bool { a === b || a.value == b.value }
    /// Hashes the message.
    public func hash(into hasher: inout Hasher) { hasher.combine(value) }
}
