/// Fields a decoder did not recognise, kept as the raw bytes they arrived as (tags included)
/// and re-emitted unchanged, after the known fields, when the message is encoded again.
public struct UnknownFields: Hashable, Sendable {
    /// The raw wire bytes, in the order they were read.
    public var bytes: [UInt8]

    /// No unknown fields.
    @inlinable
    public init() { bytes = [] }

    /// Unknown fields holding exactly `bytes` (which must be whole, valid fields).
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Whether there are none.
    @inlinable
    public var isEmpty: Bool { bytes.isEmpty }

    /// Appends the raw bytes of one field.
    @inlinable
    public mutating func append(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }
}
