// Generates message structs: storage, memberwise init, size, back-to-front write, merge, description.
internal import ProtoWire

/// How one field is generated.
struct FieldPlan {
    enum Shape {
        /// A singular field; `presence` means it is stored as an optional.
        case singular(presence: Bool)
        case repeated(packed: Bool)
        case map(key: ValuePlan, value: ValuePlan)
        case oneof(index: Int)
    }
    var proto: FieldDescriptor
    /// The property name, escaped if needed.
    var name: String
    /// The property name without backticks, for labels and text.
    var plainName: String
    var shape: Shape
    var value: ValuePlan
    var comment: String?
    /// Stored out of line (`ProtoBox`) or as an `indirect` oneof case: the field is on a cycle.
    var boxed = false

    var number: UInt32 { UInt32(proto.number) }
    func tag(_ wireType: UInt32) -> UInt32 { number << 3 | wireType }
    var tag: UInt32 {
        if case .repeated(true) = shape { return tag(2) }
        return tag(value.wireType)
    }
    func tagSize(_ t: UInt32) -> Int { sizeOfVarint(UInt64(t)) }

    /// The stored property's type.
    var storageType: String {
        switch shape {
        case .singular(let presence): presence ? value.swiftType + "?" : value.swiftType
        case .repeated: "[\(value.swiftType)]"
        case .map(let k, let v): "[\(k.swiftType): \(v.swiftType)]"
        case .oneof: fatalError("oneof members are stored in their enum")
        }
    }

    var storageDefault: String {
        switch shape {
        case .singular(let presence): presence ? "nil" : value.defaultLiteral
        case .repeated: "[]"
        case .map(let k, let v): "[\(k.swiftType): \(v.swiftType)]()"
        case .oneof: "nil"
        }
    }
}

/// How one value of a field's type is read, written and sized.
struct ValuePlan {
    enum Kind {
        case scalar(FieldDescriptor.Kind)
        case enumeration, message, wrapper
    }
    var kind: Kind
    var swiftType: String

    var wireType: UInt32 {
        switch kind {
        case .enumeration: 0
        case .message, .wrapper: 2
        case .scalar(let k):
            switch k {
            case .double, .fixed64, .sfixed64: 1
            case .float, .fixed32, .sfixed32: 5
            case .string, .bytes, .message, .group: 2
            default: 0
            }
        }
    }

    var packable: Bool {
        switch kind {
        case .enumeration: true
        case .message, .wrapper: false
        case .scalar(let k): k != .string && k != .bytes && k != .message && k != .group
        }
    }

    var fixedWidth: Int? {
        guard case .scalar(let k) = kind else { return nil }
        switch k {
        case .double, .fixed64, .sfixed64: return 8
        case .float, .fixed32, .sfixed32: return 4
        case .bool: return 1
        default: return nil
        }
    }

    private var scalarSuffix: String {
        guard case .scalar(let k) = kind else { return "" }
        switch k {
        case .double: return "Double"
        case .float: return "Float"
        case .int64: return "Int64"
        case .uint64: return "UInt64"
        case .int32: return "Int32"
        case .fixed64: return "Fixed64"
        case .fixed32: return "Fixed32"
        case .bool: return "Bool"
        case .string: return "String"
        case .bytes: return "Bytes"
        case .uint32: return "UInt32"
        case .sfixed32: return "SFixed32"
        case .sfixed64: return "SFixed64"
        case .sint32: return "SInt32"
        case .sint64: return "SInt64"
        case .enumeration, .message, .group: return ""
        }
    }

    /// An expression reading one value (messages and wrappers: a fresh value).
    func read(_ r: String) -> String {
        switch kind {
        case .enumeration: "\(swiftType)(rawValue: try \(r).readEnum())"
        case .message: "try \(r).readMessage(\(swiftType).self)"
        case .wrapper: "try \(r).readWrapper(\(swiftType)?.none)"
        case .scalar: "try \(r).read\(scalarSuffix)()"
        }
    }

    /// A statement writing one value (without its tag).
    func write(_ w: String, _ v: String) -> String {
        switch kind {
        case .enumeration: "\(w).writeEnum(\(v).rawValue)"
        case .message: "\(w).writeMessage(\(v))"
        case .wrapper: "\(w).writeWrapper(\(v))"
        case .scalar: "\(w).write\(scalarSuffix)(\(v))"
        }
    }

    /// An expression for one value's size (without its tag).
    func size(_ v: String) -> String {
        switch kind {
        case .enumeration: return "ProtoSize.int32(\(v).rawValue)"
        case .message: return "ProtoSize.message(\(v))"
        case .wrapper: return "ProtoSize.wrapper(\(v))"
        case .scalar(let k):
            switch k {
            case .double, .fixed64, .sfixed64: return "8"
            case .float, .fixed32, .sfixed32: return "4"
            case .bool: return "1"
            case .string: return "ProtoSize.string(\(v))"
            case .bytes: return "ProtoSize.bytes(\(v))"
            case .int32: return "ProtoSize.int32(\(v))"
            case .int64: return "ProtoSize.int64(\(v))"
            case .uint32: return "ProtoSize.uint32(\(v))"
            case .uint64: return "ProtoSize.uint64(\(v))"
            case .sint32: return "ProtoSize.sint32(\(v))"
            case .sint64: return "ProtoSize.sint64(\(v))"
            case .enumeration, .message, .group: return "0"
            }
        }
    }

    /// A condition that is true when `v` is not the default (proto3 fields without presence).
    func isSet(_ v: String) -> String {
        switch kind {
        case .enumeration: return "\(v).rawValue != 0"
        case .message, .wrapper: return "\(v) != nil"
        case .scalar(let k):
            switch k {
            case .string, .bytes: return "!\(v).isEmpty"
            case .bool: return v
            case .double, .float: return "\(v).bitPattern != 0"
            default: return "\(v) != 0"
            }
        }
    }

    var defaultLiteral: String {
        switch kind {
        case .enumeration: return "\(swiftType)()"
        case .message, .wrapper: return "nil"
        case .scalar(let k):
            switch k {
            case .string: return "\"\""
            case .bytes: return "[]"
            case .bool: return "false"
            default: return "0"
            }
        }
    }
}

extension Generator {
    func valuePlan(_ field: FieldDescriptor, context: String) throws(GeneratorError) -> ValuePlan {
        switch field.kind {
        case .group:
            throw GeneratorError("\(context).\(field.name): groups are not supported")
        case .message, .enumeration:
            let info = try lookup(field.typeName, for: "\(context).\(field.name)")
            switch info.kind {
            case .enumeration: return ValuePlan(kind: .enumeration, swiftType: info.swiftName)
            case .wrapper: return ValuePlan(kind: .wrapper, swiftType: info.swiftName)
            case .message, .timestamp: return ValuePlan(kind: .message, swiftType: info.swiftName)
            }
        default:
            let swiftType: String
            switch field.kind {
            case .double: swiftType = "Double"
            case .float: swiftType = "Float"
            case .int64, .sfixed64, .sint64: swiftType = "Int64"
            case .uint64, .fixed64: swiftType = "UInt64"
            case .int32, .sfixed32, .sint32: swiftType = "Int32"
            case .uint32, .fixed32: swiftType = "UInt32"
            case .bool: swiftType = "Bool"
            case .string: swiftType = "String"
            default: swiftType = "[UInt8]"
            }
            return ValuePlan(kind: .scalar(field.kind), swiftType: swiftType)
        }
    }

    func generateMessage(
        _ message: MessageDescriptor, fullName: String, path: [Int32], comments: CommentIndex, syntax: String,
        into out: inout SwiftWriter
    ) throws(GeneratorError) {
        let info = try lookup(fullName, for: fullName)
        let swiftName = info.swiftName
        let name = String(swiftName.split(separator: ".").last!)
        let proto3 = syntax == "proto3"
        let context = String(fullName.dropFirst())

        // Oneofs that are real (not the synthetic ones of proto3 `optional`).
        var realOneofs = Set<Int>()
        for field in message.field where field.oneofIndex != nil && !field.proto3Optional {
            realOneofs.insert(Int(field.oneofIndex!))
        }

        var plans: [FieldPlan] = []
        for (index, field) in message.field.enumerated() {
            let fieldName = Naming.fieldName(field.name)
            let value = try valuePlan(field, context: context)
            var shape: FieldPlan.Shape
            if let oneof = field.oneofIndex, realOneofs.contains(Int(oneof)) {
                shape = .oneof(index: Int(oneof))
            } else if field.label == .repeated {
                if field.kind == .message, let entry = types[field.typeName], entry.isMapEntry {
                    guard let k = entry.mapKey, let v = entry.mapValue else {
                        throw GeneratorError("\(context).\(field.name): map entry without key or value")
                    }
                    shape = .map(key: try valuePlan(k, context: context), value: try valuePlan(v, context: context))
                } else {
                    shape = .repeated(packed: value.packable && (field.packedOption ?? proto3))
                }
            } else {
                let presence: Bool =
                    switch value.kind {
                    case .message, .wrapper: true
                    default: proto3 ? field.proto3Optional : true
                    }
                shape = .singular(presence: presence)
            }
            if case .map = shape {
            } else if case .repeated = shape {
            } else if case .wrapper = value.kind {
                // stored as Value?
            }
            plans.append(
                FieldPlan(
                    proto: field, name: Naming.escape(fieldName), plainName: fieldName, shape: shape, value: value,
                    comment: comments[path + [2, Int32(index)]], boxed: boxedFields.contains("\(fullName)#\(field.number)")))
        }

        // Names of the oneof enums, avoiding clashes with nested types and referenced types.
        var taken = Set(message.nestedType.map { Naming.typeName($0.name, isEnum: false) })
        taken.formUnion(message.enumType.map { Naming.typeName($0.name, isEnum: true) })
        taken.insert(name)
        for plan in plans {
            if let first = plan.value.swiftType.split(separator: ".").first { taken.insert(String(first)) }
        }
        var oneofTypeNames: [Int: String] = [:]
        var oneofPropertyNames: [Int: String] = [:]
        for index in realOneofs.sorted() {
            let protoName = message.oneofDecl[index]
            var typeName = Naming.upperCamel(protoName)
            if taken.contains(typeName) || Naming.keywords.contains(typeName) || typeName == "Type" { typeName += "OneOf" }
            taken.insert(typeName)
            oneofTypeNames[index] = typeName
            oneofPropertyNames[index] = Naming.fieldName(protoName)
        }

        let secretPlans = plans.filter { $0.proto.isSecret }

        out.doc(comments[path] ?? "The protobuf message `\(context)`.")
        out.line("public struct \(name): ProtoCodable, CustomStringConvertible, CustomDebugStringConvertible {")
        out.indent += 1
        out.line("/// The fully qualified protobuf name.")
        out.line("public static let protoMessageName = \"\(context)\"")
        if !secretPlans.isEmpty {
            out.line("/// The fields marked `csi_secret`: printed as `<redacted>`, never logged.")
            out.line(
                "public static let protoSecretFieldNames: [String] = [\(secretPlans.sorted { $0.number < $1.number }.map { "\"\($0.proto.name)\"" }.joined(separator: ", "))]"
            )
        }
        out.line()

        // Storage.
        for plan in plans {
            if case .oneof = plan.shape { continue }
            out.doc([plan.comment, "Field \(plan.number) `\(plan.proto.name)`\(plan.proto.isSecret ? " (secret)" : "")."])
            if plan.boxed {
                out.line("public var \(plan.name): \(plan.storageType) {")
                out.line("    get { self._\(plan.plainName)?.value }")
                out.line("    set { self._\(plan.plainName) = newValue.map(ProtoBox.init) }")
                out.line("}")
                out.line("private var _\(plan.plainName): ProtoBox<\(plan.value.swiftType)>? = nil")
            } else {
                out.line("public var \(plan.name): \(plan.storageType) = \(plan.storageDefault)")
            }
        }
        for index in realOneofs.sorted() {
            let members = plans.filter { if case .oneof(index) = $0.shape { true } else { false } }
            out.doc([
                comments[path + [8, Int32(index)]],
                "The oneof `\(message.oneofDecl[index])`: at most one of \(members.map { "`\($0.plainName)`" }.joined(separator: ", ")).",
            ])
            out.line("public var \(Naming.escape(oneofPropertyNames[index]!)): \(oneofTypeNames[index]!)? = nil")
        }
        out.line("/// Fields this version does not know, kept as raw bytes and re-emitted unchanged.")
        out.line("public var unknownFields = UnknownFields()")
        out.line()

        // Oneof accessors.
        for plan in plans {
            guard case .oneof(let index) = plan.shape else { continue }
            let prop = Naming.escape(oneofPropertyNames[index]!)
            out.doc([
                plan.comment,
                "Field \(plan.number) `\(plan.proto.name)` of the oneof `\(message.oneofDecl[index])`: the value when that case is set; setting it selects the case (nil clears the oneof).",
            ])
            out.line("public var \(plan.name): \(plan.value.swiftType)? {")
            out.line("    get { if case .\(plan.name)(let value)? = self.\(prop) { value } else { nil } }")
            out.line("    set { self.\(prop) = newValue.map { .\(plan.name)($0) } }")
            out.line("}")
            out.line()
        }

        // Initializers.
        out.line("/// A message with every field at its default.")
        out.line("public init() {}")
        let initParams =
            plans.compactMap { plan -> String? in
                if case .oneof = plan.shape { return nil }
                return "\(plan.name): \(plan.storageType) = \(plan.storageDefault)"
            } + realOneofs.sorted().map { "\(Naming.escape(oneofPropertyNames[$0]!)): \(oneofTypeNames[$0]!)? = nil" }
        if !initParams.isEmpty {
            out.line()
            out.line("/// A message with the given fields; the rest at their defaults.")
            out.line("public init(")
            for (i, p) in initParams.enumerated() { out.line("    " + p + (i == initParams.count - 1 ? "" : ",")) }
            out.line(") {")
            for plan in plans {
                if case .oneof = plan.shape { continue }
                out.line("    self.\(plan.name) = \(plan.name)")
            }
            for index in realOneofs.sorted() {
                let p = Naming.escape(oneofPropertyNames[index]!)
                out.line("    self.\(p) = \(p)")
            }
            out.line("}")
        }
        out.line()

        if !secretPlans.isEmpty {
            out.line("/// How many secret values this message carries (map entries and set fields).")
            out.line("public var protoSecretValueCount: Int {")
            out.line("    var count = 0")
            for plan in secretPlans {
                switch plan.shape {
                case .map, .repeated: out.line("    count &+= self.\(plan.name).count")
                case .singular(let presence):
                    out.line("    if \(presence ? "self.\(plan.name) != nil" : plan.value.isSet("self.\(plan.name)")) { count &+= 1 }")
                case .oneof:
                    out.line("    if self.\(plan.name) != nil { count &+= 1 }")
                }
            }
            out.line("    return count")
            out.line("}")
            out.line()
        }

        generateSize(plans, oneofs: oneofPropertyNames, into: &out)
        out.line()
        generateWrite(plans, oneofs: oneofPropertyNames, into: &out)
        out.line()
        generateMerge(plans, oneofs: oneofPropertyNames, into: &out)
        out.line()

        // Description.
        out.line("/// A one-line text form; secret fields print as `<redacted>`.")
        out.line("public var description: String {")
        out.indent += 1
        out.line("var text = ProtoTextBuilder(\"\(swiftName)\")")
        var describedOneofs = Set<Int>()
        for plan in plans.sorted(by: { $0.number < $1.number }) {
            let ref = "self.\(plan.name)"
            switch plan.shape {
            case .oneof(let index):
                guard describedOneofs.insert(index).inserted else { continue }
                let prop = Naming.escape(oneofPropertyNames[index]!)
                let secret = plans.contains { if case .oneof(index) = $0.shape { $0.proto.isSecret } else { false } }
                if secret {
                    out.line("if self.\(prop) != nil { text.redacted(\"\(oneofPropertyNames[index]!)\") }")
                } else {
                    out.line("if let value = self.\(prop) { text.add(\"\(oneofPropertyNames[index]!)\", value) }")
                }
            case .map, .repeated:
                out.line(
                    "if !\(ref).isEmpty { \(plan.proto.isSecret ? "text.redacted(\"\(plan.plainName)\")" : "text.add(\"\(plan.plainName)\", \(ref))") }"
                )
            case .singular(let presence):
                if presence {
                    out.line(
                        "if let value = \(ref) { \(plan.proto.isSecret ? "_ = value; text.redacted(\"\(plan.plainName)\")" : "text.add(\"\(plan.plainName)\", value)") }"
                    )
                } else {
                    out.line(
                        "if \(plan.value.isSet(ref)) { \(plan.proto.isSecret ? "text.redacted(\"\(plan.plainName)\")" : "text.add(\"\(plan.plainName)\", \(ref))") }"
                    )
                }
            }
        }
        out.line("text.add(unknown: self.unknownFields)")
        out.line("return text.result")
        out.indent -= 1
        out.line("}")
        out.line()
        out.line("/// Same as ``description``: secret fields stay redacted.")
        out.line("public var debugDescription: String { description }")

        // Oneof enums.
        for index in realOneofs.sorted() {
            let members = plans.filter { if case .oneof(index) = $0.shape { true } else { false } }
            out.line()
            out.doc("The cases of the oneof `\(message.oneofDecl[index])`.")
            out.line("public enum \(oneofTypeNames[index]!): Hashable, Sendable, CustomStringConvertible {")
            out.indent += 1
            for m in members {
                out.doc([m.comment, "Field \(m.number) `\(m.proto.name)`."])
                out.line("\(m.boxed ? "indirect " : "")case \(m.name)(\(m.value.swiftType))")
            }
            out.line()
            out.line("/// `case(value)`; secret cases print as `<redacted>`.")
            out.line("public var description: String {")
            out.line("    switch self {")
            for m in members {
                if m.proto.isSecret {
                    out.line("    case .\(m.name): \"\(m.plainName)(<redacted>)\"")
                } else {
                    out.line("    case .\(m.name)(let value): \"\(m.plainName)(\\(ProtoTextBuilder.text(value)))\"")
                }
            }
            out.line("    }")
            out.line("}")
            out.indent -= 1
            out.line("}")
        }

        // Nested types.
        for (index, e) in message.enumType.enumerated() {
            out.line()
            try generateEnum(e, fullName: fullName + "." + e.name, comment: comments[path + [4, Int32(index)]], into: &out)
        }
        for (index, nested) in message.nestedType.enumerated() where !nested.isMapEntry {
            out.line()
            try generateMessage(
                nested, fullName: fullName + "." + nested.name, path: path + [3, Int32(index)], comments: comments,
                syntax: syntax, into: &out)
        }
        out.indent -= 1
        out.line("}")
    }

    // MARK: Size

    func generateSize(_ plans: [FieldPlan], oneofs: [Int: String], into out: inout SwiftWriter) {
        out.line("/// The exact encoded size; nested messages are sized once, bottom-up.")
        out.line("public var protoEncodedSize: Int {")
        out.indent += 1
        if plans.isEmpty {
            out.line("self.unknownFields.bytes.count")
            out.indent -= 1
            out.line("}")
            return
        }
        out.line("var size = self.unknownFields.bytes.count")
        var sizedOneofs = Set<Int>()
        for plan in plans {
            let ref = "self.\(plan.name)"
            let tagSize = plan.tagSize(plan.tag)
            switch plan.shape {
            case .singular(let presence):
                if presence {
                    let valueSize = plan.value.size("value")
                    let binding = valueSize.contains("value") ? "let value = \(ref)" : "\(ref) != nil"
                    out.line("if \(binding) { size &+= \(tagSize) &+ \(valueSize) }")
                } else {
                    out.line("if \(plan.value.isSet(ref)) { size &+= \(tagSize) &+ \(plan.value.size(ref)) }")
                }
            case .repeated(let packed):
                if packed {
                    if let width = plan.value.fixedWidth {
                        out.line("if !\(ref).isEmpty { size &+= \(tagSize) &+ ProtoSize.lengthDelimited(\(ref).count &* \(width)) }")
                    } else {
                        out.line("if !\(ref).isEmpty {")
                        out.line("    var body = 0")
                        out.line("    for value in \(ref) { body &+= \(plan.value.size("value")) }")
                        out.line("    size &+= \(tagSize) &+ ProtoSize.lengthDelimited(body)")
                        out.line("}")
                    }
                } else if let width = plan.value.fixedWidth {
                    out.line("size &+= \(ref).count &* \(tagSize + width)")
                } else {
                    out.line("for value in \(ref) { size &+= \(tagSize) &+ \(plan.value.size("value")) }")
                }
            case .map(let key, let value):
                let keyTagSize = sizeOfVarint(UInt64(1 << 3 | key.wireType))
                let valueTagSize = sizeOfVarint(UInt64(2 << 3 | value.wireType))
                let keySize = key.size("key")
                let valueSize = value.size("value")
                let keyName = keySize.contains("key") ? "key" : "_"
                let valueName = valueSize.contains("value") ? "value" : "_"
                out.line("for (\(keyName), \(valueName)) in \(ref) {")
                out.line("    size &+= \(tagSize) &+ ProtoSize.lengthDelimited(\(keyTagSize + valueTagSize) &+ \(keySize) &+ \(valueSize))")
                out.line("}")
            case .oneof(let index):
                guard sizedOneofs.insert(index).inserted else { continue }
                let members = plans.filter { if case .oneof(index) = $0.shape { true } else { false } }
                out.line("switch self.\(Naming.escape(oneofs[index]!)) {")
                for m in members {
                    let valueSize = m.value.size("value")
                    let pattern = valueSize.contains("value") ? ".\(m.name)(let value)?" : ".\(m.name)?"
                    out.line("case \(pattern): size &+= \(m.tagSize(m.tag)) &+ \(valueSize)")
                }
                out.line("case nil: break")
                out.line("}")
            }
        }
        out.line("return size")
        out.indent -= 1
        out.line("}")
    }

    // MARK: Write (back to front: unknown fields, then fields from the highest number down)

    func generateWrite(_ plans: [FieldPlan], oneofs: [Int: String], into out: inout SwiftWriter) {
        out.line("/// Writes the message back to front (see `ProtoWriter`).")
        out.line("public func protoWrite(to writer: inout ProtoWriter) {")
        out.indent += 1
        out.line("writer.writeUnknown(self.unknownFields)")
        for plan in plans.sorted(by: { $0.number > $1.number }) {
            let ref = "self.\(plan.name)"
            let tag = String(format: plan.tag)
            switch plan.shape {
            case .singular(let presence):
                if presence {
                    out.line("if let value = \(ref) {")
                    out.line("    \(plan.value.write("writer", "value"))")
                } else {
                    out.line("if \(plan.value.isSet(ref)) {")
                    out.line("    \(plan.value.write("writer", ref))")
                }
                out.line("    writer.writeTag(\(tag))")
                out.line("}")
            case .repeated(let packed):
                if packed {
                    out.line("if !\(ref).isEmpty {")
                    out.line("    let end = writer.offset")
                    out.line("    for value in \(ref).reversed() { \(plan.value.write("writer", "value")) }")
                    out.line("    writer.writeLength(since: end)")
                    out.line("    writer.writeTag(\(tag))")
                    out.line("}")
                } else {
                    out.line("for value in \(ref).reversed() {")
                    out.line("    \(plan.value.write("writer", "value"))")
                    out.line("    writer.writeTag(\(tag))")
                    out.line("}")
                }
            case .map(let key, let value):
                out.line("writer.writeMapEntries(\(ref)) { writer, key, value in")
                out.line("    let end = writer.offset")
                out.line("    \(value.write("writer", "value"))")
                out.line("    writer.writeTag(\(String(format: 2 << 3 | value.wireType)))")
                out.line("    \(key.write("writer", "key"))")
                out.line("    writer.writeTag(\(String(format: 1 << 3 | key.wireType)))")
                out.line("    writer.writeLength(since: end)")
                out.line("    writer.writeTag(\(tag))")
                out.line("}")
            case .oneof(let index):
                out.line("if case .\(plan.name)(let value)? = self.\(Naming.escape(oneofs[index]!)) {")
                out.line("    \(plan.value.write("writer", "value"))")
                out.line("    writer.writeTag(\(tag))")
                out.line("}")
            }
        }
        out.indent -= 1
        out.line("}")
    }

    // MARK: Merge

    func generateMerge(_ plans: [FieldPlan], oneofs: [Int: String], into out: inout SwiftWriter) {
        out.line("/// Merges fields read from `reader` (scalars and oneofs last-wins, repeated fields append, messages merge).")
        out.line("public mutating func protoMerge(from reader: inout ProtoReader) throws(ProtoWireError) {")
        out.indent += 1
        out.line("while let tag = try reader.nextTag() {")
        out.indent += 1
        out.line("switch tag.rawValue {")
        for plan in plans.sorted(by: { $0.number < $1.number }) {
            let ref = "self.\(plan.name)"
            switch plan.shape {
            case .singular:
                out.line("case \(String(format: plan.tag(plan.value.wireType))):")
                switch plan.value.kind {
                case .message: out.line("    try reader.mergeMessage(into: &\(ref))")
                case .wrapper: out.line("    \(ref) = try reader.readWrapper(\(ref))")
                default: out.line("    \(ref) = \(plan.value.read("reader"))")
                }
            case .repeated:
                out.line("case \(String(format: plan.tag(plan.value.wireType))):")
                if plan.value.wireType == 2 {
                    // Size the array for the whole run of this field at once instead of regrowing.
                    out.line("    if \(ref).isEmpty { \(ref).reserveCapacity(reader.countFieldRun()) }")
                }
                out.line("    \(ref).append(\(plan.value.read("reader")))")
                if plan.value.packable {
                    out.line("case \(String(format: plan.tag(2))):")
                    out.line("    var packed = try reader.enterPacked()")
                    if let width = plan.value.fixedWidth {
                        out.line("    \(ref).reserveCapacity(\(ref).count &+ (try packed.countFixed(width: \(width))))")
                    } else {
                        out.line("    \(ref).reserveCapacity(\(ref).count &+ packed.countVarints())")
                    }
                    out.line("    while !packed.isAtEnd { \(ref).append(\(plan.value.read("packed"))) }")
                }
            case .map(let key, let value):
                // A run of entries is decoded into temporary memory and added to the dictionary at
                // once (see ProtoReader.readMapEntries); equal keys: the last one wins.
                out.line("case \(String(format: plan.tag(2))):")
                out.line("    try reader.readMapEntries(into: &\(ref)) { entry throws(ProtoWireError) in")
                out.line("        var key: \(key.swiftType) = \(key.defaultLiteral)")
                let isMessage: Bool
                switch value.kind {
                case .message, .wrapper: isMessage = true
                default: isMessage = false
                }
                out.line("        var value: \(value.swiftType)\(isMessage ? "?" : "") = \(value.defaultLiteral)")
                out.line("        while let entryTag = try entry.nextTag() {")
                out.line("            switch entryTag.rawValue {")
                out.line("            case \(String(format: 1 << 3 | key.wireType)): key = \(key.read("entry"))")
                switch value.kind {
                case .message: out.line("            case \(String(format: 2 << 3 | value.wireType)): try entry.mergeMessage(into: &value)")
                case .wrapper: out.line("            case \(String(format: 2 << 3 | value.wireType)): value = try entry.readWrapper(value)")
                default: out.line("            case \(String(format: 2 << 3 | value.wireType)): value = \(value.read("entry"))")
                }
                out.line("            default: try entry.skipField()")
                out.line("            }")
                out.line("        }")
                switch value.kind {
                case .message: out.line("        return (key, value ?? \(value.swiftType)())")
                case .wrapper: out.line("        return (key, value ?? \(value.swiftType).protoDefault)")
                default: out.line("        return (key, value)")
                }
                out.line("    }")
            case .oneof(let index):
                let prop = "self.\(Naming.escape(oneofs[index]!))"
                out.line("case \(String(format: plan.tag(plan.value.wireType))):")
                switch plan.value.kind {
                case .message:
                    // A repeated occurrence merges into the case's value; the oneof is cleared while
                    // merging so that the value's storage stays uniquely referenced.
                    out.line("    if case .\(plan.name)(var value)? = \(prop) {")
                    out.line("        \(prop) = nil")
                    out.line("        try reader.readMessage(into: &value)")
                    out.line("        \(prop) = .\(plan.name)(value)")
                    out.line("    } else {")
                    out.line("        \(prop) = .\(plan.name)(try reader.readMessage(\(plan.value.swiftType).self))")
                    out.line("    }")
                case .wrapper:
                    out.line("    var current: \(plan.value.swiftType)? = nil")
                    out.line("    if case .\(plan.name)(let existing)? = \(prop) { current = existing }")
                    out.line("    \(prop) = .\(plan.name)(try reader.readWrapper(current))")
                default:
                    out.line("    \(prop) = .\(plan.name)(\(plan.value.read("reader")))")
                }
            }
        }
        out.line("default:")
        out.line("    try reader.skipField(into: &self.unknownFields)")
        out.line("}")
        out.indent -= 1
        out.line("}")
        out.indent -= 1
        out.line("}")
    }
}

extension String {
    /// A tag constant in hex, as generated code writes it.
    init(format tag: UInt32) { self = "0x" + String(tag, radix: 16) }
}
