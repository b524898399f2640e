/// Why a wire-format buffer could not be decoded.
///
/// Every error names what was expected and what was found, and where: the field number
/// (when a field was being read) and the byte offset from the start of the outermost buffer.
public struct ProtoWireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, naming the field and the byte offset.
    public var message: String
    /// The kind of failure.
    public var code: Code
    /// The field being read when decoding failed, if any.
    public var fieldNumber: Int?
    /// The byte offset, from the start of the outermost buffer, where the bad data starts.
    public var offset: Int?

    /// Creates an error with the given description (code ``Code/other``).
    public init(_ message: String) {
        self.message = message
        self.code = .other
        self.fieldNumber = nil
        self.offset = nil
    }

    /// Creates an error with a code, the field and offset it concerns, and a description
    /// of what was expected and found; `message` is prefixed with the field and offset.
    public init(code: Code, fieldNumber: Int?, offset: Int?, _ detail: String) {
        self.code = code
        self.fieldNumber = fieldNumber
        self.offset = offset
        var text = ""
        if let fieldNumber { text += "field \(fieldNumber)" }
        if let offset { text += text.isEmpty ? "offset \(offset)" : " at offset \(offset)" }
        self.message = text.isEmpty ? detail : text + ": " + detail
    }

    /// The message.
    public var description: String { message }

    /// The kind of a ``ProtoWireError``; a struct so kinds can be added without breaking users.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case truncated, overlongVarint, invalidWireType, invalidFieldNumber, lengthOutOfBounds,
                tooDeep, invalidUTF8, malformed, other
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The buffer ended in the middle of a tag or value.
        public static let truncated = Code(.truncated)
        /// A varint ran longer than 10 bytes or overflowed 64 bits.
        public static let overlongVarint = Code(.overlongVarint)
        /// A wire type of 6 or 7, or an end-group tag with no matching start.
        public static let invalidWireType = Code(.invalidWireType)
        /// A field number of 0 or above 2^29-1.
        public static let invalidFieldNumber = Code(.invalidFieldNumber)
        /// A declared length runs past the end of its enclosing buffer.
        public static let lengthOutOfBounds = Code(.lengthOutOfBounds)
        /// Messages or groups nested deeper than ``ProtoReader/maximumDepth``.
        public static let tooDeep = Code(.tooDeep)
        /// A `string` field that is not valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// Structurally invalid data, for example a packed fixed32 field whose length is not a multiple of 4.
        public static let malformed = Code(.malformed)
        /// Anything else (errors built with ``ProtoWireError/init(_:)``).
        public static let other = Code(.other)

        /// A short name, for example `truncated`.
        public var description: String {
            switch base {
            case .truncated: "truncated"
            case .overlongVarint: "overlongVarint"
            case .invalidWireType: "invalidWireType"
            case .invalidFieldNumber: "invalidFieldNumber"
            case .lengthOutOfBounds: "lengthOutOfBounds"
            case .tooDeep: "tooDeep"
            case .invalidUTF8: "invalidUTF8"
            case .malformed: "malformed"
            case .other: "other"
            }
        }
    }
}
