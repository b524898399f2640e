/// Builds the one-line text form generated messages use for `description`:
/// `TypeName(field: value, other: "text", secret: <redacted>)`, listing only fields
/// that are set (non-default).
///
/// Strings are quoted and escaped, bytes print as hex, maps in key order.
public struct ProtoTextBuilder {
    private var text: String
    private var first = true

    /// Starts the text for a message named `typeName`.
    public init(_ typeName: String) { text = typeName + "(" }

    /// Adds a field.
    public mutating func add<Value>(_ name: String, _ value: Value) {
        separator(name)
        ProtoTextBuilder.append(value, to: &text)
    }

    /// Adds a secret field whose value is never printed.
    public mutating func redacted(_ name: String) {
        separator(name)
        text += "<redacted>"
    }

    /// Adds the unknown fields, by size only.
    public mutating func add(unknown fields: UnknownFields) {
        guard !fields.isEmpty else { return }
        separator("unknownFields")
        text += "<\(fields.bytes.count) bytes>"
    }

    /// The finished text.
    public var result: String { text + ")" }

    private mutating func separator(_ name: String) {
        if !first { text += ", " }
        first = false
        text += name
        text += ": "
    }

    static func append<Value>(_ value: Value, to text: inout String) {
        switch value {
        case let string as String: StringLiteral.append(string, style: .swift, to: &text)
        case let bytes as [UInt8]: appendHex(bytes, to: &text)
        case let bytes as ProtoBytes: appendHex(bytes.bytes, to: &text)
        case let map as any ProtoTextMap: map.appendText(to: &text)
        case let list as any ProtoTextList: list.appendText(to: &text)
        default: text += String(describing: value)
        }
    }

    static func appendHex(_ bytes: [UInt8], to text: inout String) {
        let digits = Array("0123456789abcdef".unicodeScalars)
        text += "0x"
        if bytes.isEmpty { text += "\"\"" }
        for byte in bytes {
            text.unicodeScalars.append(digits[Int(byte >> 4)])
            text.unicodeScalars.append(digits[Int(byte & 15)])
        }
    }
}

/// Lets ``ProtoTextBuilder`` print dictionaries of any key and value type, in key order.
protocol ProtoTextMap {
    func appendText(to text: inout String)
}

extension Dictionary: ProtoTextMap where Key: Comparable {
    func appendText(to text: inout String) {
        if isEmpty {
            text += "[:]"
            return
        }
        text += "["
        for (index, key) in keys.sorted().enumerated() {
            if index > 0 { text += ", " }
            ProtoTextBuilder.append(key, to: &text)
            text += ": "
            ProtoTextBuilder.append(self[key].unsafelyUnwrapped, to: &text)
        }
        text += "]"
    }
}

/// Lets ``ProtoTextBuilder`` print arrays element by element.
protocol ProtoTextList {
    func appendText(to text: inout String)
}

extension Array: ProtoTextList {
    func appendText(to text: inout String) {
        text += "["
        for (index, element) in enumerated() {
            if index > 0 { text += ", " }
            ProtoTextBuilder.append(element, to: &text)
        }
        text += "]"
    }
}

extension ProtoTextBuilder {
    /// The text form of one value: strings quoted, bytes in hex, messages by their description.
    public static func text<Value>(_ value: Value) -> String {
        var text = ""
        append(value, to: &text)
        return text
    }
}
