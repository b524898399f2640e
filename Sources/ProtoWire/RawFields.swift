/// A schema-less view of wire data, like `protoc --decode_raw`: every field's number,
/// wire type and value, with length-delimited values shown as a nested message when they
/// parse as one, as text when they are printable UTF-8, and as hex otherwise.
public enum ProtoRawFields {
    /// One field as found on the wire.
    public struct Field: Sendable, Hashable {
        /// The field number.
        public var number: Int
        /// The wire type.
        public var wireType: WireType
        /// Where the field's tag starts, from the start of the outermost buffer.
        public var offset: Int
        /// The value.
        public var value: Value
    }

    /// A field's value.
    public enum Value: Sendable, Hashable {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        /// Bytes that parse as a message (and are not printable text).
        case message([Field], raw: [UInt8])
        /// Printable UTF-8 text.
        case text(String)
        /// Other bytes.
        case bytes([UInt8])
        /// A group's fields.
        case group([Field])
    }

    /// Parses every field of `bytes`.
    ///
    /// - Throws: ``ProtoWireError`` naming the offset of the first malformed field.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(ProtoWireError) -> [Field] {
        var reader = ProtoReader(bytes)
        return try parseFields(&reader, depth: 0, endGroup: nil)
    }

    static func parseFields(_ reader: inout ProtoReader, depth: Int, endGroup: UInt32?) throws(ProtoWireError) -> [Field] {
        var fields: [Field] = []
        while let tag = try reader.nextTag() {
            let offset = reader.fieldStart
            let number = Int(tag.fieldNumber.rawValue)
            switch tag.wireType {
            case .varint: fields.append(Field(number: number, wireType: .varint, offset: offset, value: .varint(try reader.readVarint())))
            case .fixed64:
                fields.append(Field(number: number, wireType: .fixed64, offset: offset, value: .fixed64(try reader.readFixed64())))
            case .fixed32:
                fields.append(Field(number: number, wireType: .fixed32, offset: offset, value: .fixed32(try reader.readFixed32())))
            case .lengthDelimited:
                let body = try reader.readLengthDelimited()
                let bodyStart = reader.position - body.count
                var value: Value = .bytes([UInt8](body))
                if let text = String(validating: body.bindMemory(to: UInt8.self), as: UTF8.self),
                    !text.isEmpty,
                    text.unicodeScalars.allSatisfy({ ($0.value >= 0x20 && $0.value != 0x7f) || $0 == "\n" || $0 == "\t" })
                {
                    value = .text(text)
                } else if depth < ProtoReader.maximumDepth && !body.isEmpty {
                    var sub = ProtoReader(
                        base: reader.base, start: bodyStart, end: bodyStart + body.count, depth: depth + 1, tag: tag.rawValue)
                    if let nested = try? parseFields(&sub, depth: depth + 1, endGroup: nil) {
                        value = .message(nested, raw: [UInt8](body))
                    }
                }
                fields.append(Field(number: number, wireType: .lengthDelimited, offset: offset, value: value))
            case .startGroup:
                guard depth < ProtoReader.maximumDepth else { throw reader.tooDeep() }
                let inner = try parseFields(&reader, depth: depth + 1, endGroup: tag.rawValue >> 3)
                fields.append(Field(number: number, wireType: .startGroup, offset: offset, value: .group(inner)))
            case .endGroup:
                guard endGroup == tag.rawValue >> 3 else {
                    throw reader.error(.invalidWireType, at: offset, "found an end-group tag for field \(number) outside its group")
                }
                return fields
            }
        }
        if let endGroup {
            throw ProtoWireError(
                code: .truncated, fieldNumber: Int(endGroup), offset: reader.position,
                "expected an end-group tag, found the end of the buffer")
        }
        return fields
    }

    /// Renders fields one per line, nested messages indented:
    /// `1 (bytes) @0: "text"`, `2 (varint) @5: 150`.
    public static func render(_ fields: [Field], indent: Int = 0) -> String {
        var out = ""
        let pad = String(repeating: "  ", count: indent)
        for field in fields {
            out += "\(pad)\(field.number) (\(field.wireType)) @\(field.offset): "
            switch field.value {
            case .varint(let v):
                out += "\(v)"
                let signed = Int64(bitPattern: v)
                if signed < 0 { out += " (int64 \(signed))" }
                if v > 1 { out += " (sint \(decodeZigZag(v)))" }
                out += "\n"
            case .fixed64(let v): out += "0x\(String(v, radix: 16)) (double \(Double(bitPattern: v)))\n"
            case .fixed32(let v): out += "0x\(String(v, radix: 16)) (float \(Float(bitPattern: v)))\n"
            case .text(let s): out += ProtoTextBuilder.text(s) + "\n"
            case .bytes(let b): out += ProtoTextBuilder.text(b) + " (\(b.count) bytes)\n"
            case .message(let nested, _):
                out += "{\n" + render(nested, indent: indent + 1) + pad + "}\n"
            case .group(let nested):
                out += "group {\n" + render(nested, indent: indent + 1) + pad + "}\n"
            }
        }
        return out
    }
}
