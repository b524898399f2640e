/// Double-quoted string literals, as ``ProtoJSONCoder`` (JSON), ``ProtoTextBuilder`` (Swift) and
/// Platform's JSON printer write them.
package enum StringLiteral {
    /// How characters other than `"`, `\`, newline, carriage return and tab (which both write as
    /// `\"`, `\\`, `\n`, `\r` and `\t`) are escaped.
    package enum Style: Sendable {
        /// JSON: backspace and form feed as `\b` and `\f`; other control characters, DEL, and U+2028
        /// and U+2029 (so the text is safe inside JavaScript as well) as `\u` and four hex digits.
        case json
        /// Swift: control characters and DEL as `\u{…}`.
        case swift
    }

    /// Appends `string` quoted and escaped in `style`.
    package static func append(_ string: String, style: Style, to out: inout String) {
        out += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}" where style == .json: out += "\\b"
            case "\u{0C}" where style == .json: out += "\\f"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    switch style {
                    case .json: out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    case .swift: out += "\\u{" + hex + "}"
                    }
                } else if style == .json && (scalar == "\u{2028}" || scalar == "\u{2029}") {
                    out += "\\u" + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
