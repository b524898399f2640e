// How proto names become Swift names.

enum Naming {
    /// Words printed in capitals inside a lowerCamelCase name (`volume_id` -> `volumeID`),
    /// after swift-protobuf's rule; a leading initialism stays lower-case (`id`, `url_path` -> `urlPath`).
    static let initialisms: Set<String> = ["id", "url", "http", "https"]

    /// Swift keywords that need backticks as identifiers.
    static let keywords: Set<String> = [
        "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init",
        "inout", "internal", "let", "open", "operator", "private", "precedencegroup", "protocol", "public",
        "rethrows", "static", "struct", "subscript", "typealias", "var", "break", "case", "catch", "continue",
        "default", "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return",
        "throw", "switch", "where", "while", "as", "false", "is", "nil", "self", "Self", "super", "throws",
        "true", "try", "Any", "Type", "Protocol", "await", "async", "some", "any", "package", "consume",
        "copy", "borrowing", "consuming", "discard", "each",
    ]

    /// Members every generated message has; a field with one of these names gets a `_p` suffix.
    static let reservedMembers: Set<String> = [
        "unknownFields", "description", "debugDescription", "hashValue", "protoEncodedSize",
        "protoSecretValueCount", "protoSecretFieldNames", "protoMessageName", "serializedBytes",
    ]

    /// Splits `snake_case`, `UPPER_SNAKE` or `camelCase` into lower-case words.
    static func words(_ name: String) -> [String] {
        var result: [String] = []
        var current = ""
        var previousWasLower = false
        for ch in name {
            if ch == "_" {
                if !current.isEmpty { result.append(current) }
                current = ""
                previousWasLower = false
                continue
            }
            if ch.isUppercase && previousWasLower && !current.isEmpty {
                result.append(current)
                current = ""
            }
            previousWasLower = ch.isLowercase || ch.isNumber
            current += ch.lowercased()
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    /// `volume_id` -> `volumeID`, `node_id` -> `nodeID`, `id` -> `id`, `fs_type` -> `fsType`.
    static func lowerCamel(_ name: String) -> String {
        let parts = words(name)
        guard !parts.isEmpty else { return "_" }
        var result = parts[0]
        for word in parts.dropFirst() {
            if initialisms.contains(word) {
                result += word.uppercased()
            } else {
                result += word.prefix(1).uppercased() + word.dropFirst()
            }
        }
        if let first = result.first, first.isNumber { result = "_" + result }
        return result
    }

    /// `access_type` -> `AccessType`.
    static func upperCamel(_ name: String) -> String {
        let parts = words(name)
        var result = ""
        for word in parts {
            result += initialisms.contains(word) ? word.uppercased() : word.prefix(1).uppercased() + word.dropFirst()
        }
        if let first = result.first, first.isNumber { result = "_" + result }
        return result.isEmpty ? "_" : result
    }

    /// A method name as a Swift function: `NodeGetInfo` -> `nodeGetInfo`, `GetInfo` -> `getInfo`.
    static func methodName(_ name: String) -> String {
        let chars = Array(name)
        var index = 0
        while index < chars.count, chars[index].isUppercase { index += 1 }
        // Keep the last capital of a leading run when a lower-case letter follows (`RPCCall` -> `rpcCall`).
        if index > 1, index < chars.count, chars[index].isLowercase { index -= 1 }
        if index == 0 { return escape(name) }
        return escape(String(chars[..<index]).lowercased() + String(chars[index...]))
    }

    /// A field's Swift property name.
    static func fieldName(_ protoName: String) -> String {
        let name = lowerCamel(protoName)
        if reservedMembers.contains(name) { return name + "_p" }
        return name
    }

    /// A type name component; `Type`, `Protocol`, `Self` and `Any` get a suffix.
    static func typeName(_ protoName: String, isEnum: Bool) -> String {
        switch protoName {
        case "Type", "Protocol", "Self", "Any": return protoName + (isEnum ? "Enum" : "Message")
        default: return protoName
        }
    }

    /// Backticks for keywords.
    static func escape(_ identifier: String) -> String {
        keywords.contains(identifier) ? "`\(identifier)`" : identifier
    }

    /// An enum value's case name: the enum's own prefix stripped (`MODE_FOO` in `Mode` -> `foo`).
    static func enumCaseName(_ valueName: String, enumName: String) -> String {
        let prefix = words(enumName).joined(separator: "_").uppercased() + "_"
        var name = valueName
        if name.uppercased().hasPrefix(prefix), name.count > prefix.count {
            let rest = String(name.dropFirst(prefix.count))
            if let first = rest.first, !first.isNumber { name = rest }
        }
        return lowerCamel(name)
    }
}
