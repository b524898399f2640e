/// A protocol buffers message that ProtoWire can encode and decode.
///
/// Generated messages conform to it. The three entry points below are the
/// contract other modules (H2, CSI, Driver) rely on; everything else about the
/// codec is ProtoWire's own business.
public protocol ProtoMessage: Sendable, Hashable {
    /// The fully qualified protobuf name, for example `csi.v1.NodeGetInfoRequest`.
    static var protoMessageName: String { get }

    /// A message with every field at its default.
    init()

    /// Decodes a message from its wire form, strictly (see ``ProtoWireError``).
    init(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoWireError)

    /// Encodes the message into a buffer of exactly its encoded size.
    func serializedBytes() -> [UInt8]
}

extension ProtoMessage {
    /// Decodes a message from an array of bytes.
    public init(serializedBytes bytes: [UInt8]) throws(ProtoWireError) {
        let result: Result<Self, ProtoWireError> = bytes.withUnsafeBytes { raw in
            Result { () throws(ProtoWireError) in try Self(serializedBytes: raw) }
        }
        self = try result.get()
    }
}

/// Why a wire-format buffer could not be decoded.
public struct ProtoWireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, naming the field and the byte offset.
    public var message: String
    /// Creates an error with the given description.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
