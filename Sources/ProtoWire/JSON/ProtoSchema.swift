// The shape of messages and enums, read from the file descriptors generated code embeds
// (`<File>ProtoFile.descriptor`), as the proto3 JSON mapping needs it: names, JSON names,
// numbers, types, labels, oneofs, map entries and the `csi_secret` option.

/// Messages and enums of a set of `.proto` files, by fully qualified name.
public struct ProtoSchema: Sendable {
    /// A field's protobuf type (`FieldDescriptorProto.Type`).
    enum FieldType: Int, Sendable {
        case double = 1, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes, uint32,
            enumeration, sfixed32, sfixed64, sint32, sint64
    }

    struct Field: Sendable {
        var name: String
        var jsonName: String
        var number: Int
        var type: FieldType
        var repeated: Bool
        /// The message or enum type, fully qualified without the leading dot.
        var typeName: String
        /// The oneof the field belongs to; nil for a proto3 `optional` field's synthetic oneof.
        var oneof: Int?
        /// Whether presence is tracked (a proto3 `optional` field or a oneof member).
        var tracksPresence: Bool
        /// Whether the field carries the `csi_secret` option.
        var secret: Bool
    }

    struct Message: Sendable {
        var fullName: String
        var fields: [Field]
        var oneofNames: [String]
        var isMapEntry: Bool
        var fieldIndexByNumber: [Int: Int]
        var fieldIndexByName: [String: Int]
    }

    struct Enumeration: Sendable {
        var fullName: String
        var nameByNumber: [Int32: String]
        var numberByName: [String: Int32]
    }

    private(set) var messages: [String: Message] = [:]
    private(set) var enums: [String: Enumeration] = [:]

    /// The field number of the `csi_secret` extension of `google.protobuf.FieldOptions` (csi.proto).
    static let csiSecretExtension = 1059

    /// Reads every message and enum in `files`.
    ///
    /// - Throws: ``ProtoJSONError`` when a descriptor is malformed or defines a name twice.
    public init(files: [ProtoFileDescriptor]) throws(ProtoJSONError) {
        for file in files {
            var schema = self
            let failure: ProtoWireError? = file.serializedBytes.withUnsafeBytes { bytes in
                do throws(ProtoWireError) {
                    try schema.readFile(bytes)
                    return nil
                } catch {
                    return error
                }
            }
            if let failure { throw ProtoJSONError("the descriptor of \(file.name) is malformed: \(failure)") }
            self = schema
        }
    }

    /// The fully qualified names of every message, sorted.
    public var messageNames: [String] { messages.keys.sorted() }

    private mutating func readFile(_ bytes: UnsafeRawBufferPointer) throws(ProtoWireError) {
        var package = ""
        var reader = ProtoReader(bytes)
        while let tag = try reader.nextTag() {
            if tag.rawValue == 2 << 3 | 2 { package = try reader.readString() } else { try reader.skipField() }
        }
        let scope = package.isEmpty ? "" : package + "."
        reader = ProtoReader(bytes)
        while let tag = try reader.nextTag() {
            switch tag.rawValue {
            case 4 << 3 | 2: try readMessage(try reader.readLengthDelimited(), scope: scope)
            case 5 << 3 | 2: try readEnum(try reader.readLengthDelimited(), scope: scope)
            default: try reader.skipField()
            }
        }
    }

    private mutating func readMessage(_ bytes: UnsafeRawBufferPointer, scope: String) throws(ProtoWireError) {
        var name = ""
        var reader = ProtoReader(bytes)
        while let tag = try reader.nextTag() {
            if tag.rawValue == 1 << 3 | 2 { name = try reader.readString() } else { try reader.skipField() }
        }
        let fullName = scope + name
        var message = Message(
            fullName: fullName, fields: [], oneofNames: [], isMapEntry: false, fieldIndexByNumber: [:], fieldIndexByName: [:])
        reader = ProtoReader(bytes)
        while let tag = try reader.nextTag() {
            switch tag.rawValue {
            case 2 << 3 | 2: message.fields.append(try Self.readField(try reader.readLengthDelimited()))
            case 3 << 3 | 2: try readMessage(try reader.readLengthDelimited(), scope: fullName + ".")
            case 4 << 3 | 2: try readEnum(try reader.readLengthDelimited(), scope: fullName + ".")
            case 7 << 3 | 2:
                var options = ProtoReader(try reader.readLengthDelimited())
                while let option = try options.nextTag() {
                    if option.rawValue == 7 << 3 { message.isMapEntry = try options.readBool() } else { try options.skipField() }
                }
            case 8 << 3 | 2:
                var oneof = ProtoReader(try reader.readLengthDelimited())
                var oneofName = ""
                while let field = try oneof.nextTag() {
                    if field.rawValue == 1 << 3 | 2 { oneofName = try oneof.readString() } else { try oneof.skipField() }
                }
                message.oneofNames.append(oneofName)
            default: try reader.skipField()
            }
        }
        for (index, field) in message.fields.enumerated() {
            message.fieldIndexByNumber[field.number] = index
            message.fieldIndexByName[field.name] = index
            if message.fieldIndexByName[field.jsonName] == nil { message.fieldIndexByName[field.jsonName] = index }
        }
        guard messages[fullName] == nil else { throw ProtoWireError("message \(fullName) is defined twice") }
        messages[fullName] = message
    }

    private static func readField(_ bytes: UnsafeRawBufferPointer) throws(ProtoWireError) -> Field {
        var field = Field(
            name: "", jsonName: "", number: 0, type: .int32, repeated: false, typeName: "", oneof: nil, tracksPresence: false,
            secret: false)
        var proto3Optional = false
        var reader = ProtoReader(bytes)
        while let tag = try reader.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 2: field.name = try reader.readString()
            case 3 << 3: field.number = Int(try reader.readInt32())
            case 4 << 3: field.repeated = try reader.readInt32() == 3
            case 5 << 3:
                let raw = Int(try reader.readInt32())
                guard let type = FieldType(rawValue: raw) else { throw ProtoWireError("field type \(raw) is unknown") }
                field.type = type
            case 6 << 3 | 2:
                let name = try reader.readString()
                field.typeName = name.hasPrefix(".") ? String(name.dropFirst()) : name
            case 8 << 3 | 2:
                var options = ProtoReader(try reader.readLengthDelimited())
                while let option = try options.nextTag() {
                    if option.rawValue == UInt32(csiSecretExtension << 3) { field.secret = try options.readBool() } else { try options.skipField() }
                }
            case 9 << 3: field.oneof = Int(try reader.readInt32())
            case 10 << 3 | 2: field.jsonName = try reader.readString()
            case 17 << 3: proto3Optional = try reader.readBool()
            default: try reader.skipField()
            }
        }
        if field.jsonName.isEmpty { field.jsonName = Self.lowerCamelCase(field.name) }
        field.tracksPresence = field.oneof != nil
        if proto3Optional { field.oneof = nil }
        return field
    }

    private mutating func readEnum(_ bytes: UnsafeRawBufferPointer, scope: String) throws(ProtoWireError) {
        var enumeration = Enumeration(fullName: "", nameByNumber: [:], numberByName: [:])
        var reader = ProtoReader(bytes)
        while let tag = try reader.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 2: enumeration.fullName = scope + (try reader.readString())
            case 2 << 3 | 2:
                var value = ProtoReader(try reader.readLengthDelimited())
                var name = ""
                var number: Int32 = 0
                while let field = try value.nextTag() {
                    switch field.rawValue {
                    case 1 << 3 | 2: name = try value.readString()
                    case 2 << 3: number = try value.readInt32()
                    default: try value.skipField()
                    }
                }
                // With allow_alias the first name of a number is the one JSON writes.
                if enumeration.nameByNumber[number] == nil { enumeration.nameByNumber[number] = name }
                enumeration.numberByName[name] = number
            default: try reader.skipField()
            }
        }
        guard enums[enumeration.fullName] == nil else { throw ProtoWireError("enum \(enumeration.fullName) is defined twice") }
        enums[enumeration.fullName] = enumeration
    }

    /// protoc's JSON name: underscores dropped, the letter after each capitalised.
    static func lowerCamelCase(_ name: String) -> String {
        var out = ""
        var upper = false
        for character in name {
            if character == "_" {
                upper = true
            } else if upper {
                out += character.uppercased()
                upper = false
            } else {
                out.append(character)
            }
        }
        return out
    }
}
