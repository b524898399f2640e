// A small JSON reader and writer for the proto3 JSON mapping (ProtoJSON.swift): RFC 8259 text,
// parsed into a tree that remembers where each value starts, so that errors can name the offset.

/// Why JSON could not be read, or could not be mapped to or from a protobuf message.
///
/// The message names the offending field, message type or value; ``offset`` is the byte offset
/// in the JSON text when the error concerns JSON input.
public struct ProtoJSONError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    /// The byte offset in the JSON text, when the error is about JSON input.
    public var offset: Int?

    /// An error with a message and, for JSON input, the offset it concerns.
    public init(_ message: String, offset: Int? = nil) {
        self.message = message
        self.offset = offset
    }

    /// The message, followed by the offset when there is one.
    public var description: String { offset.map { "\(message) (at offset \($0))" } ?? message }
}

/// A parsed JSON value with the offset where it starts.
struct JSONValue: Sendable {
    enum Kind: Sendable {
        case null
        case bool(Bool)
        /// The number's text as written, checked against the JSON grammar.
        case number(String)
        case string(String)
        case array([JSONValue])
        /// Members in the order written; duplicate names are kept (the mapping rejects them).
        case object([(name: String, nameOffset: Int, value: JSONValue)])
    }
    var kind: Kind
    var offset: Int

    var typeName: String {
        switch kind {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A recursive-descent JSON parser over UTF-8 bytes. It never traps on bad input: every
/// failure is a ``ProtoJSONError`` with the offset.
struct JSONParser {
    /// How deeply arrays and objects may nest (the protobuf reader's limit, plus room for maps).
    static let maximumDepth = 200

    private let bytes: [UInt8]
    private var position = 0

    /// Parses `text` as one JSON value with nothing but whitespace after it.
    static func parse(_ text: String) throws(ProtoJSONError) -> JSONValue {
        var parser = JSONParser(bytes: Array(text.utf8))
        return try parser.parseDocument()
    }

    /// Parses UTF-8 `bytes` as one JSON value.
    static func parse(bytes: [UInt8]) throws(ProtoJSONError) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        return try parser.parseDocument()
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private mutating func parseDocument() throws(ProtoJSONError) -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
        if String(validating: bytes, as: UTF8.self) == nil {
            throw ProtoJSONError("the JSON text is not valid UTF-8", offset: firstInvalidUTF8())
        }
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard position == bytes.count else {
            throw ProtoJSONError("unexpected \(describe(position)) after the JSON value", offset: position)
        }
        return value
    }

    /// The offset of the first byte that does not start a valid UTF-8 scalar.
    private func firstInvalidUTF8() -> Int {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput, .error: return offset
            }
        }
    }

    private func describe(_ offset: Int) -> String {
        guard offset < bytes.count else { return "end of input" }
        let byte = bytes[offset]
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + String(byte, radix: 16)
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(ProtoJSONError) -> JSONValue {
        guard position < bytes.count else { throw ProtoJSONError("the JSON text ends where a value was expected", offset: position) }
        let start = position
        switch bytes[position] {
        case UInt8(ascii: "{"):
            guard depth < Self.maximumDepth else { throw ProtoJSONError("JSON nested deeper than \(Self.maximumDepth) levels", offset: start) }
            return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["):
            guard depth < Self.maximumDepth else { throw ProtoJSONError("JSON nested deeper than \(Self.maximumDepth) levels", offset: start) }
            return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""):
            return JSONValue(kind: .string(try parseString()), offset: start)
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return JSONValue(kind: .bool(true), offset: start)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return JSONValue(kind: .bool(false), offset: start)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return JSONValue(kind: .null, offset: start)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return JSONValue(kind: .number(try parseNumber()), offset: start)
        default:
            throw ProtoJSONError("unexpected \(describe(position)) where a JSON value was expected", offset: position)
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(ProtoJSONError) {
        let start = position
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw ProtoJSONError("expected \(literal)", offset: start) }
        for index in 0..<count where bytes[position + index] != literal.utf8Start[index] {
            throw ProtoJSONError("expected \(literal)", offset: start)
        }
        position += count
    }

    private mutating func parseObject(depth: Int) throws(ProtoJSONError) -> JSONValue {
        let start = position
        position += 1
        var members: [(name: String, nameOffset: Int, value: JSONValue)] = []
        skipWhitespace()
        if position < bytes.count && bytes[position] == UInt8(ascii: "}") {
            position += 1
            return JSONValue(kind: .object(members), offset: start)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                throw ProtoJSONError("expected a member name in double quotes, found \(describe(position))", offset: position)
            }
            let nameOffset = position
            let name = try parseString()
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
                throw ProtoJSONError("expected ':' after the member name \"\(name)\", found \(describe(position))", offset: position)
            }
            position += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append((name, nameOffset, value))
            skipWhitespace()
            guard position < bytes.count else { throw ProtoJSONError("the JSON text ends inside an object", offset: position) }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            if bytes[position] == UInt8(ascii: "}") {
                position += 1
                return JSONValue(kind: .object(members), offset: start)
            }
            throw ProtoJSONError("expected ',' or '}' in an object, found \(describe(position))", offset: position)
        }
    }

    private mutating func parseArray(depth: Int) throws(ProtoJSONError) -> JSONValue {
        let start = position
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if position < bytes.count && bytes[position] == UInt8(ascii: "]") {
            position += 1
            return JSONValue(kind: .array(elements), offset: start)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard position < bytes.count else { throw ProtoJSONError("the JSON text ends inside an array", offset: position) }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            if bytes[position] == UInt8(ascii: "]") {
                position += 1
                return JSONValue(kind: .array(elements), offset: start)
            }
            throw ProtoJSONError("expected ',' or ']' in an array, found \(describe(position))", offset: position)
        }
    }

    private mutating func parseNumber() throws(ProtoJSONError) -> String {
        let start = position
        func digits(_ parser: inout JSONParser) -> Int {
            let from = parser.position
            while parser.position < parser.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(parser.bytes[parser.position]) {
                parser.position += 1
            }
            return parser.position - from
        }
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard position < bytes.count else { throw ProtoJSONError("a number ends after '-'", offset: start) }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else if digits(&self) == 0 {
            throw ProtoJSONError("a number needs a digit after '-'", offset: start)
        }
        if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits(&self) > 0 else { throw ProtoJSONError("a number needs digits after '.'", offset: start) }
        }
        if position < bytes.count && (bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E")) {
            position += 1
            if position < bytes.count && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")) { position += 1 }
            guard digits(&self) > 0 else { throw ProtoJSONError("a number needs digits in its exponent", offset: start) }
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private mutating func parseString() throws(ProtoJSONError) -> String {
        let start = position
        position += 1
        var scalars = String.UnicodeScalarView()
        var runStart = position
        func flush(_ parser: JSONParser, _ runStart: Int, into scalars: inout String.UnicodeScalarView) {
            if parser.position > runStart {
                scalars.append(contentsOf: String(decoding: parser.bytes[runStart..<parser.position], as: UTF8.self).unicodeScalars)
            }
        }
        while true {
            guard position < bytes.count else { throw ProtoJSONError("a string is not closed", offset: start) }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                flush(self, runStart, into: &scalars)
                position += 1
                return String(scalars)
            }
            if byte < 0x20 {
                throw ProtoJSONError("a control character (0x\(String(byte, radix: 16))) inside a string must be escaped", offset: position)
            }
            if byte != UInt8(ascii: "\\") {
                position += 1
                continue
            }
            flush(self, runStart, into: &scalars)
            let escape = position
            position += 1
            guard position < bytes.count else { throw ProtoJSONError("a string ends inside an escape", offset: escape) }
            let code = bytes[position]
            position += 1
            switch code {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                let high = try hex4(escape)
                if (0xD800..<0xDC00).contains(high) {
                    guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                        throw ProtoJSONError("a high surrogate \\u\(String(high, radix: 16)) is not followed by a low one", offset: escape)
                    }
                    position += 2
                    let low = try hex4(escape)
                    guard (0xDC00..<0xE000).contains(low) else {
                        throw ProtoJSONError("a high surrogate \\u\(String(high, radix: 16)) is not followed by a low one", offset: escape)
                    }
                    scalars.append(Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))!)
                } else if (0xDC00..<0xE000).contains(high) {
                    throw ProtoJSONError("a lone low surrogate \\u\(String(high, radix: 16))", offset: escape)
                } else {
                    scalars.append(Unicode.Scalar(high)!)
                }
            default:
                throw ProtoJSONError("an unknown escape \\\(Character(Unicode.Scalar(code)))", offset: escape)
            }
            runStart = position
        }
    }

    private mutating func hex4(_ escape: Int) throws(ProtoJSONError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw ProtoJSONError("a \\u escape needs four hex digits", offset: escape) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw ProtoJSONError("a \\u escape needs four hex digits", offset: escape)
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }
}
