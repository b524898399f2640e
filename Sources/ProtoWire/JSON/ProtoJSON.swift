// The canonical proto3 JSON mapping (https://protobuf.dev/programming-guides/json/), driven by
// the file descriptors generated code embeds: one mapping for every generated message, with no
// per-message code. It converts between wire bytes and JSON text, so a message is encoded with
// its generated codec first (ProtoJSONCoder.json(_:)); JSON is for logs, tools and people, not
// for the hot path.

/// Converts messages between the protobuf wire format and the canonical proto3 JSON mapping.
///
/// ```swift
/// let coder = try ProtoJSONCoder(files: [CsiProtoFile.descriptor])
/// let json = try coder.json(request)                        // {"volumeId":"pv-1",...}
/// let back = try coder.decode(NodeStageVolumeRequest.self, fromJSON: json)
/// ```
///
/// Writing: lowerCamelCase names (or the `.proto` names with
/// ``Options/preservingProtoFieldNames``), 64-bit integers as strings, enums by name, bytes as
/// base64, maps as objects, wrappers as their value, `Timestamp` as RFC 3339 and `Duration` as
/// seconds with an `s`; fields at their default are left out unless their presence is tracked.
/// Reading accepts both names of a field, numbers for enums, numbers or strings for integers,
/// and standard or URL-safe base64. An unknown field is an error naming it and its message,
/// unless ``Options/ignoringUnknownFields``.
public struct ProtoJSONCoder: Sendable {
    /// How a message is written or read.
    public struct Options: Sendable {
        /// Writes the `.proto` field names (`volume_id`) instead of their JSON names (`volumeId`).
        public var preservingProtoFieldNames: Bool
        /// Writes `"***stripped***"` in place of the value of every field marked `csi_secret`,
        /// at any depth, the way kubernetes-csi's protosanitizer prints requests.
        public var strippingSecrets: Bool
        /// Skips unknown JSON fields and unknown enum names instead of failing.
        public var ignoringUnknownFields: Bool

        /// Options; by default JSON names, secrets written as they are, unknown fields rejected.
        public init(preservingProtoFieldNames: Bool = false, strippingSecrets: Bool = false, ignoringUnknownFields: Bool = false) {
            self.preservingProtoFieldNames = preservingProtoFieldNames
            self.strippingSecrets = strippingSecrets
            self.ignoringUnknownFields = ignoringUnknownFields
        }
    }

    /// The messages and enums this coder knows.
    public let schema: ProtoSchema

    /// What a secret field's value is replaced with when ``Options/strippingSecrets`` is set.
    public static let strippedSecret = "***stripped***"

    /// A coder for the messages of `files` (and of the well-known files).
    public init(files: [ProtoFileDescriptor]) throws(ProtoJSONError) {
        schema = try ProtoSchema(files: WellKnownProtoFiles.all + files)
    }

    /// A coder over a schema read before.
    public init(schema: ProtoSchema) { self.schema = schema }

    /// The JSON text of a generated message.
    public func json<Message: ProtoMessage>(_ message: Message, options: Options = Options()) throws(ProtoJSONError) -> String {
        try json(fromWire: message.serializedBytes(), messageType: Message.protoMessageName, options: options)
    }

    /// A generated message read from JSON text.
    public func decode<Message: ProtoMessage>(
        _: Message.Type, fromJSON text: String, options: Options = Options()
    ) throws(ProtoJSONError) -> Message {
        let bytes = try wire(fromJSON: text, messageType: Message.protoMessageName, options: options)
        do {
            return try Message(serializedBytes: bytes)
        } catch {
            throw ProtoJSONError("\(Message.protoMessageName) does not decode from the JSON's wire form: \(error)")
        }
    }

    /// The JSON text of the message of type `messageType` (fully qualified, for example
    /// `csi.v1.CreateVolumeRequest`) encoded in `bytes`.
    ///
    /// - Throws: ``ProtoJSONError`` when the type is unknown or the bytes are malformed.
    public func json(fromWire bytes: [UInt8], messageType: String, options: Options = Options()) throws(ProtoJSONError) -> String {
        guard schema.messages[messageType] != nil || WellKnown(messageType) != nil else {
            throw ProtoJSONError("message type \(messageType) is not known")
        }
        var out = ""
        let writer = JSONWriter(schema: schema, options: options)
        try withBytes(bytes) { (buffer) throws(ProtoJSONError) in
            try writer.writeMessage(buffer, type: messageType, into: &out, depth: 0)
        }
        return out
    }

    /// The wire bytes of the message of type `messageType` written as JSON `text`.
    ///
    /// - Throws: ``ProtoJSONError`` with the offset for malformed JSON, an unknown field (naming
    ///   it), a value of the wrong kind or out of range.
    public func wire(fromJSON text: String, messageType: String, options: Options = Options()) throws(ProtoJSONError) -> [UInt8] {
        guard schema.messages[messageType] != nil || WellKnown(messageType) != nil else {
            throw ProtoJSONError("message type \(messageType) is not known")
        }
        let value = try JSONParser.parse(text)
        var out: [UInt8] = []
        let reader = JSONReader(schema: schema, options: options)
        if case .null = value.kind { return out }
        try reader.readMessage(value, type: messageType, into: &out, depth: 0)
        return out
    }
}

/// The well-known types whose JSON form is not an object of their fields.
enum WellKnown: Sendable {
    case timestamp, duration, empty, fieldMask
    case wrapper(ProtoSchema.FieldType)
    case unsupported

    init?(_ name: String) {
        switch name {
        case "google.protobuf.Timestamp": self = .timestamp
        case "google.protobuf.Duration": self = .duration
        case "google.protobuf.Empty": self = .empty
        case "google.protobuf.FieldMask": self = .fieldMask
        case "google.protobuf.DoubleValue": self = .wrapper(.double)
        case "google.protobuf.FloatValue": self = .wrapper(.float)
        case "google.protobuf.Int64Value": self = .wrapper(.int64)
        case "google.protobuf.UInt64Value": self = .wrapper(.uint64)
        case "google.protobuf.Int32Value": self = .wrapper(.int32)
        case "google.protobuf.UInt32Value": self = .wrapper(.uint32)
        case "google.protobuf.BoolValue": self = .wrapper(.bool)
        case "google.protobuf.StringValue": self = .wrapper(.string)
        case "google.protobuf.BytesValue": self = .wrapper(.bytes)
        case "google.protobuf.Any", "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
            self = .unsupported
        default: return nil
        }
    }
}

/// One value of a field as found on the wire.
private enum RawValue {
    case varint(UInt64)
    case fixed32(UInt32)
    case fixed64(UInt64)
    case bytes(UnsafeRawBufferPointer)
}

// MARK: - Wire to JSON

private struct JSONWriter {
    let schema: ProtoSchema
    let options: ProtoJSONCoder.Options

    init(schema: ProtoSchema, options: ProtoJSONCoder.Options) {
        self.schema = schema
        self.options = options
    }

    func writeMessage(_ bytes: UnsafeRawBufferPointer, type: String, into out: inout String, depth: Int) throws(ProtoJSONError) {
        guard depth < ProtoReader.maximumDepth else { throw ProtoJSONError("\(type): messages nested deeper than \(ProtoReader.maximumDepth)") }
        if let wellKnown = WellKnown(type) {
            try writeWellKnown(wellKnown, bytes, type: type, into: &out)
            return
        }
        guard let message = schema.messages[type] else { throw ProtoJSONError("message type \(type) is not known") }
        var values = [[RawValue]](repeating: [], count: message.fields.count)
        var lastOneofMember = [Int: Int]()
        try wireError(type) { () throws(ProtoWireError) in
            var reader = ProtoReader(bytes)
            while let tag = try reader.nextTag() {
                guard let index = message.fieldIndexByNumber[Int(tag.fieldNumber.rawValue)] else {
                    try reader.skipField()
                    continue
                }
                let field = message.fields[index]
                let value: RawValue
                switch tag.wireType {
                case .varint: value = .varint(try reader.readVarint())
                case .fixed32: value = .fixed32(try reader.readFixed32())
                case .fixed64: value = .fixed64(try reader.readFixed64())
                case .lengthDelimited: value = .bytes(try reader.readLengthDelimited())
                case .startGroup, .endGroup:
                    try reader.skipField()
                    continue
                }
                guard Self.accepts(field, value) else { continue }  // a mismatched wire type is an unknown field
                if let oneof = field.oneof {
                    if let previous = lastOneofMember[oneof], previous != index { values[previous] = [] }
                    lastOneofMember[oneof] = index
                }
                values[index].append(value)
            }
        }
        out += "{"
        var first = true
        for (index, field) in message.fields.enumerated() where !values[index].isEmpty {
            var text = ""
            guard try writeField(field, values[index], message: message, into: &text, depth: depth) else { continue }
            if !first { out += "," }
            first = false
            StringLiteral.append(options.preservingProtoFieldNames ? field.name : field.jsonName, style: .json, to: &out)
            out += ":"
            out += text
        }
        out += "}"
    }

    /// Whether a wire value can belong to `field`: the wire type of its type, or a packed run.
    private static func accepts(_ field: ProtoSchema.Field, _ value: RawValue) -> Bool {
        switch (field.type, value) {
        case (.string, .bytes), (.bytes, .bytes), (.message, .bytes): return true
        case (.string, _), (.bytes, _), (.message, _), (.group, _): return false
        case (_, .bytes): return field.repeated
        case (.double, .fixed64), (.fixed64, .fixed64), (.sfixed64, .fixed64): return true
        case (.float, .fixed32), (.fixed32, .fixed32), (.sfixed32, .fixed32): return true
        case (.int64, .varint), (.uint64, .varint), (.int32, .varint), (.bool, .varint), (.uint32, .varint),
            (.enumeration, .varint), (.sint32, .varint), (.sint64, .varint):
            return true
        default: return false
        }
    }

    /// Writes a field's value; returns false when the field is to be left out (a default).
    private func writeField(
        _ field: ProtoSchema.Field, _ values: [RawValue], message: ProtoSchema.Message, into out: inout String, depth: Int
    ) throws(ProtoJSONError) -> Bool {
        let context = "\(message.fullName).\(field.name)"
        if field.repeated, field.type == .message, let entry = schema.messages[field.typeName], entry.isMapEntry {
            if options.strippingSecrets && field.secret {
                StringLiteral.append(ProtoJSONCoder.strippedSecret, style: .json, to: &out)
                return true
            }
            try writeMap(entry, values, context: context, into: &out, depth: depth)
            return true
        }
        if options.strippingSecrets && field.secret {
            StringLiteral.append(ProtoJSONCoder.strippedSecret, style: .json, to: &out)
            return true
        }
        if field.repeated {
            let elements = try unpack(field, values, context: context)
            out += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { out += "," }
                try writeValue(field.type, typeName: field.typeName, element, context: context, into: &out, depth: depth)
            }
            out += "]"
            return true
        }
        if field.type == .message {
            // Every occurrence of a singular message merges into one: their bytes, concatenated.
            var joined: [UInt8] = []
            for case .bytes(let part) in values { joined += part }
            try withBytes(joined) { (buffer) throws(ProtoJSONError) in
                try writeMessage(buffer, type: field.typeName, into: &out, depth: depth + 1)
            }
            return true
        }
        let last = values[values.count - 1]
        if !field.tracksPresence && Self.isDefault(last, field.type) { return false }
        try writeValue(field.type, typeName: field.typeName, last, context: context, into: &out, depth: depth)
        return true
    }

    /// The elements of a repeated field, packed runs expanded.
    private func unpack(_ field: ProtoSchema.Field, _ values: [RawValue], context: String) throws(ProtoJSONError) -> [RawValue] {
        var elements: [RawValue] = []
        for value in values {
            guard case .bytes(let run) = value, field.type != .string, field.type != .bytes, field.type != .message else {
                elements.append(value)
                continue
            }
            try wireError(context) { () throws(ProtoWireError) in
                var reader = ProtoReader(run)
                while !reader.isAtEnd {
                    switch field.type {
                    case .double, .fixed64, .sfixed64: elements.append(.fixed64(try reader.readFixed64()))
                    case .float, .fixed32, .sfixed32: elements.append(.fixed32(try reader.readFixed32()))
                    default: elements.append(.varint(try reader.readVarint()))
                    }
                }
            }
        }
        return elements
    }

    private static func isDefault(_ value: RawValue, _ type: ProtoSchema.FieldType) -> Bool {
        switch value {
        case .varint(let raw): return raw == 0
        // -0.0 is not the default: its bit pattern is not zero.
        case .fixed32(let raw): return raw == 0
        case .fixed64(let raw): return raw == 0
        case .bytes(let bytes): return bytes.isEmpty
        }
    }

    private func writeMap(
        _ entry: ProtoSchema.Message, _ values: [RawValue], context: String, into out: inout String, depth: Int
    ) throws(ProtoJSONError) {
        guard let keyIndex = entry.fieldIndexByNumber[1], let valueIndex = entry.fieldIndexByNumber[2] else {
            throw ProtoJSONError("\(context): the map entry \(entry.fullName) lacks its key or value field")
        }
        let keyField = entry.fields[keyIndex]
        let valueField = entry.fields[valueIndex]
        var entries: [String: String] = [:]
        for case .bytes(let bytes) in values {
            var key: RawValue?
            var value: [RawValue] = []
            try wireError(context) { () throws(ProtoWireError) in
                var reader = ProtoReader(bytes)
                while let tag = try reader.nextTag() {
                    let raw: RawValue
                    switch tag.wireType {
                    case .varint: raw = .varint(try reader.readVarint())
                    case .fixed32: raw = .fixed32(try reader.readFixed32())
                    case .fixed64: raw = .fixed64(try reader.readFixed64())
                    case .lengthDelimited: raw = .bytes(try reader.readLengthDelimited())
                    case .startGroup, .endGroup:
                        try reader.skipField()
                        continue
                    }
                    switch tag.fieldNumber.rawValue {
                    case 1 where Self.accepts(keyField, raw): key = raw
                    case 2 where Self.accepts(valueField, raw): value.append(raw)
                    default: break
                    }
                }
            }
            var keyText = ""
            try writeValue(keyField.type, typeName: "", key ?? Self.zero(keyField.type), context: context, into: &keyText, depth: depth)
            if !keyText.hasPrefix("\"") { keyText = "\"" + keyText + "\"" }
            var valueText = ""
            if valueField.type == .message {
                var joined: [UInt8] = []
                for case .bytes(let part) in value { joined += part }
                try withBytes(joined) { (buffer) throws(ProtoJSONError) in
                    try writeMessage(buffer, type: valueField.typeName, into: &valueText, depth: depth + 1)
                }
            } else {
                try writeValue(
                    valueField.type, typeName: valueField.typeName, value.last ?? Self.zero(valueField.type), context: context,
                    into: &valueText, depth: depth)
            }
            entries[keyText] = valueText
        }
        out += "{"
        for (index, key) in entries.keys.sorted().enumerated() {
            if index > 0 { out += "," }
            out += key
            out += ":"
            out += entries[key]!
        }
        out += "}"
    }

    private static func zero(_ type: ProtoSchema.FieldType) -> RawValue {
        switch type {
        case .double, .fixed64, .sfixed64: .fixed64(0)
        case .float, .fixed32, .sfixed32: .fixed32(0)
        case .string, .bytes, .message, .group: .bytes(UnsafeRawBufferPointer(start: nil, count: 0))
        default: .varint(0)
        }
    }

    private func writeValue(
        _ type: ProtoSchema.FieldType, typeName: String, _ value: RawValue, context: String, into out: inout String, depth: Int
    ) throws(ProtoJSONError) {
        switch (type, value) {
        case (.int32, .varint(let raw)): out += String(Int32(truncatingIfNeeded: raw))
        case (.sint32, .varint(let raw)): out += String(decodeZigZag(UInt32(truncatingIfNeeded: raw)))
        case (.uint32, .varint(let raw)): out += String(UInt32(truncatingIfNeeded: raw))
        case (.int64, .varint(let raw)): out += "\"\(Int64(bitPattern: raw))\""
        case (.sint64, .varint(let raw)): out += "\"\(decodeZigZag(raw))\""
        case (.uint64, .varint(let raw)): out += "\"\(raw)\""
        case (.bool, .varint(let raw)): out += raw != 0 ? "true" : "false"
        case (.fixed32, .fixed32(let raw)): out += String(raw)
        case (.sfixed32, .fixed32(let raw)): out += String(Int32(bitPattern: raw))
        case (.fixed64, .fixed64(let raw)): out += "\"\(raw)\""
        case (.sfixed64, .fixed64(let raw)): out += "\"\(Int64(bitPattern: raw))\""
        case (.float, .fixed32(let raw)): Self.appendFloatingPoint(Float(bitPattern: raw), to: &out)
        case (.double, .fixed64(let raw)): Self.appendFloatingPoint(Double(bitPattern: raw), to: &out)
        case (.enumeration, .varint(let raw)):
            let number = Int32(truncatingIfNeeded: raw)
            if let name = schema.enums[typeName]?.nameByNumber[number] {
                StringLiteral.append(name, style: .json, to: &out)
            } else {
                out += String(number)
            }
        case (.string, .bytes(let bytes)):
            guard let text = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
                throw ProtoJSONError("\(context): the string is not valid UTF-8")
            }
            StringLiteral.append(text, style: .json, to: &out)
        case (.bytes, .bytes(let bytes)):
            out += "\""
            Base64.append(bytes, to: &out)
            out += "\""
        case (.message, .bytes(let bytes)):
            try writeMessage(bytes, type: typeName, into: &out, depth: depth + 1)
        default:
            throw ProtoJSONError("\(context): a value of type \(type) has the wrong wire type")
        }
    }

    static func appendFloatingPoint<Value: BinaryFloatingPoint & LosslessStringConvertible>(_ value: Value, to out: inout String) {
        if value.isNaN {
            out += "\"NaN\""
        } else if value.isInfinite {
            out += value < 0 ? "\"-Infinity\"" : "\"Infinity\""
        } else {
            out += value.description
        }
    }

    private func writeWellKnown(_ kind: WellKnown, _ bytes: UnsafeRawBufferPointer, type: String, into out: inout String) throws(ProtoJSONError) {
        var fields: [UInt32: RawValue] = [:]
        var paths: [String] = []
        try wireError(type) { () throws(ProtoWireError) in
            var reader = ProtoReader(bytes)
            while let tag = try reader.nextTag() {
                switch tag.wireType {
                case .varint: fields[tag.fieldNumber.rawValue] = .varint(try reader.readVarint())
                case .fixed32: fields[tag.fieldNumber.rawValue] = .fixed32(try reader.readFixed32())
                case .fixed64: fields[tag.fieldNumber.rawValue] = .fixed64(try reader.readFixed64())
                case .lengthDelimited:
                    let body = try reader.readLengthDelimited()
                    fields[tag.fieldNumber.rawValue] = .bytes(body)
                    if tag.fieldNumber.rawValue == 1, case .fieldMask = kind {
                        guard let path = String(validating: body.bindMemory(to: UInt8.self), as: UTF8.self) else {
                            throw ProtoWireError("a FieldMask path is not valid UTF-8")
                        }
                        paths.append(path)
                    }
                case .startGroup, .endGroup: try reader.skipField()
                }
            }
        }
        func integer(_ number: UInt32) -> Int64 {
            if case .varint(let raw)? = fields[number] { return Int64(bitPattern: raw) }
            return 0
        }
        switch kind {
        case .timestamp:
            let seconds = integer(1)
            let nanos = Int32(truncatingIfNeeded: integer(2))
            guard let text = TimeText.timestamp(seconds: seconds, nanos: nanos) else {
                throw ProtoJSONError("\(type) \(seconds) s \(nanos) ns is outside 0001-01-01T00:00:00Z...9999-12-31T23:59:59Z")
            }
            out += "\"" + text + "\""
        case .duration:
            let seconds = integer(1)
            let nanos = Int32(truncatingIfNeeded: integer(2))
            guard let text = TimeText.duration(seconds: seconds, nanos: nanos) else {
                throw ProtoJSONError("\(type) \(seconds) s \(nanos) ns is out of range or has mixed signs")
            }
            out += "\"" + text + "\""
        case .empty:
            out += "{}"
        case .fieldMask:
            var text = ""
            for (index, path) in paths.enumerated() {
                if index > 0 { text += "," }
                guard let camel = FieldMaskPath.camelCase(path) else {
                    throw ProtoJSONError("\(type): the path \"\(path)\" has no JSON form")
                }
                text += camel
            }
            StringLiteral.append(text, style: .json, to: &out)
        case .wrapper(let valueType):
            let field = ProtoSchema.Field(
                name: "value", jsonName: "value", number: 1, type: valueType, repeated: false, typeName: "", oneof: nil,
                tracksPresence: true, secret: false)
            let value = fields[1].flatMap { Self.accepts(field, $0) ? $0 : nil } ?? Self.zero(valueType)
            try writeValue(valueType, typeName: "", value, context: type, into: &out, depth: 0)
        case .unsupported:
            throw ProtoJSONError("\(type) has no JSON form in this mapping")
        }
    }

    private func wireError(_ context: String, _ body: () throws(ProtoWireError) -> Void) throws(ProtoJSONError) {
        do {
            try body()
        } catch {
            throw ProtoJSONError("\(context): malformed wire data: \(error)")
        }
    }
}

// MARK: - JSON to wire

private struct JSONReader {
    let schema: ProtoSchema
    let options: ProtoJSONCoder.Options

    func readMessage(_ value: JSONValue, type: String, into out: inout [UInt8], depth: Int) throws(ProtoJSONError) {
        guard depth < ProtoReader.maximumDepth else {
            throw ProtoJSONError("\(type): messages nested deeper than \(ProtoReader.maximumDepth)", offset: value.offset)
        }
        if let wellKnown = WellKnown(type) {
            try readWellKnown(wellKnown, value, type: type, into: &out)
            return
        }
        guard let message = schema.messages[type] else { throw ProtoJSONError("message type \(type) is not known") }
        guard case .object(let members) = value.kind else {
            throw ProtoJSONError("\(type) must be a JSON object, not \(value.typeName)", offset: value.offset)
        }
        var seen = Set<Int>()
        var oneofSeen = [Int: String]()
        for member in members {
            guard let index = message.fieldIndexByName[member.name] else {
                if options.ignoringUnknownFields { continue }
                throw ProtoJSONError("unknown field \"\(member.name)\" in \(type)", offset: member.nameOffset)
            }
            let field = message.fields[index]
            guard seen.insert(index).inserted else {
                throw ProtoJSONError("field \"\(field.name)\" of \(type) is given twice", offset: member.nameOffset)
            }
            if case .null = member.value.kind, field.typeName != "google.protobuf.Value" { continue }
            if let oneof = field.oneof {
                if let other = oneofSeen[oneof] {
                    throw ProtoJSONError(
                        "fields \"\(other)\" and \"\(field.name)\" of \(type) are both set, but they are in one oneof (\(message.oneofNames[oneof]))",
                        offset: member.nameOffset)
                }
                oneofSeen[oneof] = field.name
            }
            try readField(field, member.value, message: message, into: &out, depth: depth)
        }
    }

    private func readField(
        _ field: ProtoSchema.Field, _ value: JSONValue, message: ProtoSchema.Message, into out: inout [UInt8], depth: Int
    ) throws(ProtoJSONError) {
        let context = "\(message.fullName).\(field.name)"
        let number = FieldNumber(field.number)!
        if field.repeated, field.type == .message, let entry = schema.messages[field.typeName], entry.isMapEntry {
            try readMap(field, entry, value, context: context, into: &out, depth: depth)
            return
        }
        if field.repeated {
            guard case .array(let elements) = value.kind else {
                throw ProtoJSONError("\(context) is repeated and must be a JSON array, not \(value.typeName)", offset: value.offset)
            }
            if Self.isPackable(field.type) {
                var run: [UInt8] = []
                for element in elements {
                    guard try readScalar(field.type, typeName: field.typeName, element, context: context, into: &run) else { continue }
                }
                if !elements.isEmpty {
                    appendTag(number, .lengthDelimited, to: &out)
                    appendVarint(UInt64(run.count), to: &out)
                    out += run
                }
                return
            }
            for element in elements {
                if case .null = element.kind {
                    throw ProtoJSONError("\(context) cannot hold null", offset: element.offset)
                }
                try readSingle(field, number, element, context: context, into: &out, depth: depth)
            }
            return
        }
        try readSingle(field, number, value, context: context, into: &out, depth: depth, omitDefault: !field.tracksPresence)
    }

    private static func isPackable(_ type: ProtoSchema.FieldType) -> Bool {
        switch type {
        case .string, .bytes, .message, .group: false
        default: true
        }
    }

    private static func wireType(_ type: ProtoSchema.FieldType) -> WireType {
        switch type {
        case .double, .fixed64, .sfixed64: .fixed64
        case .float, .fixed32, .sfixed32: .fixed32
        case .string, .bytes, .message: .lengthDelimited
        case .group: .startGroup
        default: .varint
        }
    }

    /// Writes one value of a field with its tag.
    private func readSingle(
        _ field: ProtoSchema.Field, _ number: FieldNumber, _ value: JSONValue, context: String, into out: inout [UInt8], depth: Int,
        omitDefault: Bool = false
    ) throws(ProtoJSONError) {
        if field.type == .message {
            var body: [UInt8] = []
            try readMessage(value, type: field.typeName, into: &body, depth: depth + 1)
            appendTag(number, .lengthDelimited, to: &out)
            appendVarint(UInt64(body.count), to: &out)
            out += body
            return
        }
        var body: [UInt8] = []
        guard try readScalar(field.type, typeName: field.typeName, value, context: context, into: &body) else { return }
        if omitDefault && body.allSatisfy({ $0 == 0 }) && (Self.wireType(field.type) != .lengthDelimited || body == [0]) {
            return
        }
        appendTag(number, Self.wireType(field.type), to: &out)
        out += body
    }

    private func readMap(
        _ field: ProtoSchema.Field, _ entry: ProtoSchema.Message, _ value: JSONValue, context: String, into out: inout [UInt8],
        depth: Int
    ) throws(ProtoJSONError) {
        guard case .object(let members) = value.kind else {
            throw ProtoJSONError("\(context) is a map and must be a JSON object, not \(value.typeName)", offset: value.offset)
        }
        guard let keyIndex = entry.fieldIndexByNumber[1], let valueIndex = entry.fieldIndexByNumber[2] else {
            throw ProtoJSONError("\(context): the map entry \(entry.fullName) lacks its key or value field")
        }
        let keyField = entry.fields[keyIndex]
        let valueField = entry.fields[valueIndex]
        var keys = Set<String>()
        for member in members {
            guard keys.insert(member.name).inserted else {
                throw ProtoJSONError("\(context): the map key \"\(member.name)\" is given twice", offset: member.nameOffset)
            }
            if case .null = member.value.kind {
                throw ProtoJSONError("\(context): the value of map key \"\(member.name)\" is null", offset: member.value.offset)
            }
            let keyValue: JSONValue
            switch keyField.type {
            case .string:
                keyValue = JSONValue(kind: .string(member.name), offset: member.nameOffset)
            case .bool:
                guard member.name == "true" || member.name == "false" else {
                    throw ProtoJSONError("\(context): the map key \"\(member.name)\" is not true or false", offset: member.nameOffset)
                }
                keyValue = JSONValue(kind: .bool(member.name == "true"), offset: member.nameOffset)
            default:
                keyValue = JSONValue(kind: .string(member.name), offset: member.nameOffset)
            }
            var body: [UInt8] = []
            appendTag(FieldNumber(1)!, Self.wireType(keyField.type), to: &body)
            _ = try readScalar(keyField.type, typeName: "", keyValue, context: context + " (key)", into: &body)
            let valueNumber = FieldNumber(2)!
            try readSingle(valueField, valueNumber, member.value, context: context + "[\"\(member.name)\"]", into: &body, depth: depth)
            appendTag(FieldNumber(field.number)!, .lengthDelimited, to: &out)
            appendVarint(UInt64(body.count), to: &out)
            out += body
        }
    }

    /// Writes a scalar's wire value (without a tag). Returns false for an unknown enum name
    /// skipped under ``ProtoJSONCoder/Options/ignoringUnknownFields``.
    private func readScalar(
        _ type: ProtoSchema.FieldType, typeName: String, _ value: JSONValue, context: String, into out: inout [UInt8]
    ) throws(ProtoJSONError) -> Bool {
        func fail(_ expected: String) -> ProtoJSONError {
            ProtoJSONError("\(context) must be \(expected), not \(value.typeName)", offset: value.offset)
        }
        switch type {
        case .int32, .sint32, .sfixed32:
            let number = try integer(value, context: context, minimum: Int64(Int32.min), maximum: Int64(Int32.max))
            let int32 = Int32(number)
            switch type {
            case .sint32: appendVarint(UInt64(encodeZigZag(int32)), to: &out)
            case .sfixed32: appendFixed32(UInt32(bitPattern: int32), to: &out)
            default: appendVarint(UInt64(bitPattern: Int64(int32)), to: &out)
            }
        case .uint32, .fixed32:
            let number = try unsignedInteger(value, context: context, maximum: UInt64(UInt32.max))
            if type == .fixed32 { appendFixed32(UInt32(number), to: &out) } else { appendVarint(number, to: &out) }
        case .int64, .sint64, .sfixed64:
            let number = try integer(value, context: context, minimum: Int64.min, maximum: Int64.max)
            switch type {
            case .sint64: appendVarint(encodeZigZag(number), to: &out)
            case .sfixed64: appendFixed64(UInt64(bitPattern: number), to: &out)
            default: appendVarint(UInt64(bitPattern: number), to: &out)
            }
        case .uint64, .fixed64:
            let number = try unsignedInteger(value, context: context, maximum: UInt64.max)
            if type == .fixed64 { appendFixed64(number, to: &out) } else { appendVarint(number, to: &out) }
        case .float:
            let number = try floatingPoint(value, context: context)
            guard number.isNaN || number.isInfinite || abs(number) <= Double(Float.greatestFiniteMagnitude) else {
                throw ProtoJSONError("\(context): \(number) is out of range for a float", offset: value.offset)
            }
            appendFixed32(Float(number).bitPattern, to: &out)
        case .double:
            appendFixed64(try floatingPoint(value, context: context).bitPattern, to: &out)
        case .bool:
            guard case .bool(let flag) = value.kind else { throw fail("true or false") }
            appendVarint(flag ? 1 : 0, to: &out)
        case .string:
            guard case .string(let text) = value.kind else { throw fail("a string") }
            appendVarint(UInt64(text.utf8.count), to: &out)
            out += text.utf8
        case .bytes:
            guard case .string(let text) = value.kind else { throw fail("a base64 string") }
            guard let bytes = Base64.decode(text) else {
                throw ProtoJSONError("\(context) is not valid base64", offset: value.offset)
            }
            appendVarint(UInt64(bytes.count), to: &out)
            out += bytes
        case .enumeration:
            let number: Int32
            switch value.kind {
            case .string(let name):
                guard let known = schema.enums[typeName]?.numberByName[name] else {
                    if options.ignoringUnknownFields { return false }
                    throw ProtoJSONError("\(context): \"\(name)\" is not a value of \(typeName)", offset: value.offset)
                }
                number = known
            case .number:
                number = Int32(try integer(value, context: context, minimum: Int64(Int32.min), maximum: Int64(Int32.max)))
            default:
                throw fail("an enum name or number")
            }
            appendVarint(UInt64(bitPattern: Int64(number)), to: &out)
        case .message, .group:
            throw ProtoJSONError("\(context): a message is not a scalar", offset: value.offset)
        }
        return true
    }

    private func integer(_ value: JSONValue, context: String, minimum: Int64, maximum: Int64) throws(ProtoJSONError) -> Int64 {
        let text: String
        switch value.kind {
        case .number(let number): text = number
        case .string(let string): text = string
        default: throw ProtoJSONError("\(context) must be an integer, not \(value.typeName)", offset: value.offset)
        }
        if let exact = Int64(text) ?? (Self.isJSONNumber(text) ? Double(text).flatMap({ Int64(exactly: $0) }) : nil),
            exact >= minimum, exact <= maximum
        {
            return exact
        }
        throw ProtoJSONError("\(context): \(text) is not an integer in \(minimum)...\(maximum)", offset: value.offset)
    }

    private func unsignedInteger(_ value: JSONValue, context: String, maximum: UInt64) throws(ProtoJSONError) -> UInt64 {
        let text: String
        switch value.kind {
        case .number(let number): text = number
        case .string(let string): text = string
        default: throw ProtoJSONError("\(context) must be an integer, not \(value.typeName)", offset: value.offset)
        }
        if let exact = UInt64(text) ?? (Self.isJSONNumber(text) ? Double(text).flatMap({ UInt64(exactly: $0) }) : nil),
            exact <= maximum
        {
            return exact
        }
        throw ProtoJSONError("\(context): \(text) is not an integer in 0...\(maximum)", offset: value.offset)
    }

    private func floatingPoint(_ value: JSONValue, context: String) throws(ProtoJSONError) -> Double {
        switch value.kind {
        case .number(let text):
            if let number = Double(text), number.isFinite { return number }
            throw ProtoJSONError("\(context): \(text) is out of range for a double", offset: value.offset)
        case .string(let text):
            switch text {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default:
                if Self.isJSONNumber(text), let number = Double(text), number.isFinite { return number }
                throw ProtoJSONError("\(context): \"\(text)\" is not a number", offset: value.offset)
            }
        default:
            throw ProtoJSONError("\(context) must be a number, not \(value.typeName)", offset: value.offset)
        }
    }

    /// Whether `text` follows JSON's number grammar (so "0x10", " 1" or "inf" in a string are refused).
    private static func isJSONNumber(_ text: String) -> Bool {
        guard case .number? = (try? JSONParser.parse(text))?.kind else { return false }
        return text.utf8.first != 0x20 && text.utf8.last != 0x20
    }

    private func readWellKnown(_ kind: WellKnown, _ value: JSONValue, type: String, into out: inout [UInt8]) throws(ProtoJSONError) {
        switch kind {
        case .timestamp:
            guard case .string(let text) = value.kind else {
                throw ProtoJSONError("\(type) must be an RFC 3339 string, not \(value.typeName)", offset: value.offset)
            }
            guard let (seconds, nanos) = TimeText.parseTimestamp(text) else {
                throw ProtoJSONError("\(type): \"\(text)\" is not an RFC 3339 time in 0001...9999", offset: value.offset)
            }
            Self.appendSecondsAndNanos(seconds, nanos, to: &out)
        case .duration:
            guard case .string(let text) = value.kind else {
                throw ProtoJSONError("\(type) must be a string such as \"1.5s\", not \(value.typeName)", offset: value.offset)
            }
            guard let (seconds, nanos) = TimeText.parseDuration(text) else {
                throw ProtoJSONError("\(type): \"\(text)\" is not a duration such as \"1.5s\" within ±315576000000s", offset: value.offset)
            }
            Self.appendSecondsAndNanos(seconds, nanos, to: &out)
        case .empty:
            guard case .object(let members) = value.kind else {
                throw ProtoJSONError("\(type) must be {}, not \(value.typeName)", offset: value.offset)
            }
            if let member = members.first, !options.ignoringUnknownFields {
                throw ProtoJSONError("unknown field \"\(member.name)\" in \(type)", offset: member.nameOffset)
            }
        case .fieldMask:
            guard case .string(let text) = value.kind else {
                throw ProtoJSONError("\(type) must be a string of comma-separated paths, not \(value.typeName)", offset: value.offset)
            }
            for path in text.split(separator: ",", omittingEmptySubsequences: true) {
                guard let snake = FieldMaskPath.snakeCase(String(path)) else {
                    throw ProtoJSONError("\(type): the path \"\(path)\" is not a lowerCamelCase path", offset: value.offset)
                }
                appendTag(FieldNumber(1)!, .lengthDelimited, to: &out)
                appendVarint(UInt64(snake.utf8.count), to: &out)
                out += snake.utf8
            }
        case .wrapper(let valueType):
            var body: [UInt8] = []
            _ = try readScalar(valueType, typeName: "", value, context: type, into: &body)
            // The value field is written even at its default: the wrapper's presence is the point.
            appendTag(FieldNumber(1)!, Self.wireType(valueType), to: &out)
            out += body
        case .unsupported:
            throw ProtoJSONError("\(type) has no JSON form in this mapping", offset: value.offset)
        }
    }

    private static func appendSecondsAndNanos(_ seconds: Int64, _ nanos: Int32, to out: inout [UInt8]) {
        if seconds != 0 {
            appendTag(FieldNumber(1)!, .varint, to: &out)
            appendVarint(UInt64(bitPattern: seconds), to: &out)
        }
        if nanos != 0 {
            appendTag(FieldNumber(2)!, .varint, to: &out)
            appendVarint(UInt64(bitPattern: Int64(nanos)), to: &out)
        }
    }
}

/// `Array.withUnsafeBytes` with a typed error.
func withBytes<Result>(
    _ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(ProtoJSONError) -> Result
) throws(ProtoJSONError) -> Result {
    let outcome: Swift.Result<Result, ProtoJSONError> = bytes.withUnsafeBytes { raw in
        do throws(ProtoJSONError) {
            return .success(try body(raw))
        } catch {
            return .failure(error)
        }
    }
    return try outcome.get()
}

private func appendFixed32(_ value: UInt32, to out: inout [UInt8]) {
    for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
}

private func appendFixed64(_ value: UInt64, to out: inout [UInt8]) {
    for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
}

// MARK: - Base64, times, field mask paths

enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Appends standard base64 with padding, as the JSON mapping writes bytes.
    static func append(_ bytes: UnsafeRawBufferPointer, to out: inout String) {
        var text: [UInt8] = []
        text.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { text.append(alphabet[Int(chunk >> UInt32(shift) & 63)]) }
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            let chunk = UInt32(bytes[index]) << 16 | (rest == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
            text.append(alphabet[Int(chunk >> 18 & 63)])
            text.append(alphabet[Int(chunk >> 12 & 63)])
            text.append(rest == 2 ? alphabet[Int(chunk >> 6 & 63)] : UInt8(ascii: "="))
            text.append(UInt8(ascii: "="))
        }
        out += String(decoding: text, as: UTF8.self)
    }

    /// Decodes standard or URL-safe base64, padded or not; nil when the text is not base64.
    static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        var padding = 0
        for byte in text.utf8 {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): value = 63
            case UInt8(ascii: "="):
                padding += 1
                continue
            default: return nil
            }
            guard padding == 0 else { return nil }  // nothing after padding
            values.append(value)
        }
        guard values.count % 4 != 1, padding <= 2, padding == 0 || (values.count + padding) % 4 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 3 / 4)
        var index = 0
        while index + 4 <= values.count {
            let chunk = UInt32(values[index]) << 18 | UInt32(values[index + 1]) << 12 | UInt32(values[index + 2]) << 6 | UInt32(values[index + 3])
            bytes += [UInt8(chunk >> 16 & 255), UInt8(chunk >> 8 & 255), UInt8(chunk & 255)]
            index += 4
        }
        let rest = values.count - index
        if rest >= 2 {
            let chunk = UInt32(values[index]) << 18 | UInt32(values[index + 1]) << 12 | (rest == 3 ? UInt32(values[index + 2]) << 6 : 0)
            bytes.append(UInt8(chunk >> 16 & 255))
            if rest == 3 { bytes.append(UInt8(chunk >> 8 & 255)) }
        }
        return bytes
    }
}

/// RFC 3339 timestamps and protobuf durations as the JSON mapping writes them.
enum TimeText {
    /// Seconds from 0001-01-01T00:00:00Z and to 9999-12-31T23:59:59Z, relative to the Unix epoch.
    static let minimumSeconds: Int64 = -62_135_596_800
    static let maximumSeconds: Int64 = 253_402_300_799
    static let maximumDurationSeconds: Int64 = 315_576_000_000

    static func timestamp(seconds: Int64, nanos: Int32) -> String? {
        guard seconds >= minimumSeconds, seconds <= maximumSeconds, nanos >= 0, nanos < 1_000_000_000 else { return nil }
        var days = seconds / 86_400
        var rest = seconds % 86_400
        if rest < 0 {
            rest += 86_400
            days -= 1
        }
        let (year, month, day) = civil(fromDays: days)
        var text = pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2)
        text += "T" + pad(rest / 3600, 2) + ":" + pad(rest / 60 % 60, 2) + ":" + pad(rest % 60, 2)
        text += fraction(nanos) + "Z"
        return text
    }

    static func duration(seconds: Int64, nanos: Int32) -> String? {
        guard abs(seconds) <= maximumDurationSeconds, abs(nanos) < 1_000_000_000,
            seconds == 0 || nanos == 0 || (seconds < 0) == (nanos < 0)
        else { return nil }
        let negative = seconds < 0 || nanos < 0
        return (negative ? "-" : "") + String(abs(seconds)) + fraction(abs(nanos)) + "s"
    }

    /// 0, 3, 6 or 9 fractional digits, as few as hold the value.
    private static func fraction(_ nanos: Int32) -> String {
        guard nanos != 0 else { return "" }
        if nanos % 1_000_000 == 0 { return "." + pad(Int64(nanos / 1_000_000), 3) }
        if nanos % 1000 == 0 { return "." + pad(Int64(nanos / 1000), 6) }
        return "." + pad(Int64(nanos), 9)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    /// The proleptic Gregorian date of a day count from 1970-01-01.
    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`; lower-case `t` and `z` are accepted too.
    static func parseTimestamp(_ text: String) -> (Int64, Int32)? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ width: Int) -> Int64? {
            guard index + width <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[index..<(index + width)] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            index += width
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2), expect("Tt"),
            let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2)
        else { return nil }
        guard year >= 1, (1...12).contains(month), day >= 1, hour < 24, minute < 60, second < 60 else { return nil }
        let monthDays: [Int64] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        guard day <= monthDays[Int(month - 1)] + (month == 2 && leap ? 1 : 0) else { return nil }
        var nanos: Int64 = 0
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                guard digits < 9 else { return nil }
                nanos = nanos * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<9 { nanos *= 10 }
        }
        var offset: Int64 = 0
        if expect("Zz") {
        } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign: Int64 = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            guard let hours = number(2), expect(":"), let minutes = number(2), hours < 24, minutes < 60 else { return nil }
            offset = sign * (hours * 3600 + minutes * 60)
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let seconds = days(fromCivil: year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        guard seconds >= minimumSeconds, seconds <= maximumSeconds else { return nil }
        return (seconds, Int32(nanos))
    }

    /// `[-]S[.f{1,9}]s`.
    static func parseDuration(_ text: String) -> (Int64, Int32)? {
        guard text.hasSuffix("s") else { return nil }
        var body = Substring(text.dropLast())
        let negative = body.hasPrefix("-")
        if negative { body = body.dropFirst() }
        let parts = body.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.allSatisfy(\.isASCII), whole.allSatisfy(\.isNumber),
            let seconds = Int64(whole), seconds <= maximumDurationSeconds
        else { return nil }
        var nanos: Int64 = 0
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
                let value = Int64(digits)
            else { return nil }
            nanos = value
            for _ in digits.count..<9 { nanos *= 10 }
        }
        return negative ? (-seconds, Int32(-nanos)) : (seconds, Int32(nanos))
    }
}

/// FieldMask paths: `snake_case.paths` on the wire, `lowerCamelCase.paths` in JSON.
enum FieldMaskPath {
    static func camelCase(_ path: String) -> String? {
        var out = ""
        var upper = false
        for character in path {
            if character == "_" {
                guard !upper else { return nil }
                upper = true
                continue
            }
            if character.isUppercase { return nil }
            if upper {
                guard character.isLowercase else { return nil }
                out += character.uppercased()
                upper = false
            } else {
                out.append(character)
            }
        }
        return upper ? nil : out
    }

    static func snakeCase(_ path: String) -> String? {
        var out = ""
        for character in path {
            if character == "_" { return nil }
            if character.isUppercase {
                out += "_" + character.lowercased()
            } else {
                out.append(character)
            }
        }
        return out
    }
}
