// Turns resolved descriptors into Swift source.
internal import ProtoWire

/// Why code could not be generated (reported to protoc as the response's error).
public struct GeneratorError: Error, CustomStringConvertible {
    /// What was wrong, naming the proto element.
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Options from protoc's `--protowire_opt` (comma-separated `key=value`).
public struct GeneratorOptions: Sendable {
    /// Proto package -> Swift namespace enum (`Namespace.pluginregistration=PluginRegistration`).
    public var namespaces: [String: String] = [:]
    /// Whether to emit gRPC service code (`Services=false` emits messages only and imports only ProtoWire).
    public var services = true
    /// Whether to emit messages and services (`Messages=false` emits only the file's descriptor).
    public var messages = true
    /// The Swift module the output is compiled into (`Module=ProtoWire` leaves out `import ProtoWire`).
    public var module = ""

    /// Parses `Namespace.<proto package>=<SwiftName>`, `Services=true|false`, `Messages=true|false` and
    /// `Module=<SwiftModule>` items; unknown keys are errors.
    public init(parameter: String) throws(GeneratorError) {
        for item in parameter.split(separator: ",") where !item.isEmpty {
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { throw GeneratorError("parameter '\(item)': expected key=value") }
            if pair[0].hasPrefix("Namespace.") {
                namespaces[String(pair[0].dropFirst("Namespace.".count))] = pair[1]
            } else if pair[0] == "Services", pair[1] == "true" || pair[1] == "false" {
                services = pair[1] == "true"
            } else if pair[0] == "Messages", pair[1] == "true" || pair[1] == "false" {
                messages = pair[1] == "true"
            } else if pair[0] == "Module", !pair[1].isEmpty {
                module = pair[1]
            } else {
                throw GeneratorError(
                    "parameter '\(item)': unknown key or value (known: Namespace.<package>=<SwiftName>, Services=true|false, Messages=true|false, Module=<SwiftModule>)"
                )
            }
        }
    }
}

/// What the generator knows about one proto type, keyed by its full name (`.csi.v1.Volume`).
struct TypeInfo {
    enum Kind { case message, enumeration, wrapper, timestamp }
    var kind: Kind
    /// The Swift name, qualified from the module's top level (`VolumeCapability.AccessMode`).
    var swiftName: String
    var isMapEntry = false
    var mapKey: FieldDescriptor?
    var mapValue: FieldDescriptor?
    /// For enums: the Swift case of the first value.
    var firstCase: String?
}

/// Generates Swift for every file in a `CodeGeneratorRequest`.
public struct Generator {
    var types: [String: TypeInfo] = [:]
    /// Singular message fields (`.pkg.Message#number`) on a cycle of singular message fields:
    /// stored in a `ProtoBox` (or as an `indirect` oneof case) so the structs have finite size.
    var boxedFields: Set<String> = []
    /// The file that defines each type (`.google.protobuf.Any` -> `google/protobuf/any.proto`).
    var typeFiles: [String: String] = [:]
    /// The files this run generates.
    var generating: Set<String> = []
    let options: GeneratorOptions

    /// The well-known types ProtoWire provides, so that a file importing them compiles without
    /// generating them: Swift name by full proto name (wrappers map to optionals, see ``wrappers``).
    static let wellKnownMessages: [String: String] = [
        ".google.protobuf.Timestamp": "Timestamp", ".google.protobuf.Duration": "ProtoDuration",
        ".google.protobuf.Empty": "ProtoEmpty",
    ]

    static let wrappers: [String: String] = [
        ".google.protobuf.DoubleValue": "Double", ".google.protobuf.FloatValue": "Float",
        ".google.protobuf.Int64Value": "Int64", ".google.protobuf.UInt64Value": "UInt64",
        ".google.protobuf.Int32Value": "Int32", ".google.protobuf.UInt32Value": "UInt32",
        ".google.protobuf.BoolValue": "Bool", ".google.protobuf.StringValue": "String",
        ".google.protobuf.BytesValue": "ProtoBytes",
    ]

    /// Runs the plugin on an encoded `CodeGeneratorRequest` and returns an encoded response.
    public static func run(request bytes: [UInt8]) -> [UInt8] {
        var response = CodeGeneratorResponse()
        do {
            let request = try bytes.withUnsafeBytes { raw throws(ProtoWireError) in try CodeGeneratorRequest(raw) }
            let options = try GeneratorOptions(parameter: request.parameter)
            var generator = Generator(options: options)
            generator.register(request.protoFile)
            generator.generating = Set(request.fileToGenerate)
            var declaredNamespaces: Set<String> = []
            for name in request.fileToGenerate {
                guard let file = request.protoFile.first(where: { $0.name == name }) else {
                    throw GeneratorError("\(name): not among the request's files")
                }
                if options.messages { try generator.checkWellKnownImports(of: file) }
                let declareNamespace = options.namespaces[file.package].map { declaredNamespaces.insert($0).inserted } ?? false
                let content =
                    options.messages
                    ? try generator.generate(file, declareNamespace: declareNamespace)
                    : try generator.generateDescriptorOnly(file, declareNamespace: declareNamespace)
                response.files.append(.init(name: outputName(for: name), content: content))
            }
        } catch let error as GeneratorError {
            response.error = error.description
        } catch {
            response.error = "cannot read the CodeGeneratorRequest: \(error)"
        }
        return response.serializedBytes()
    }

    /// `csi/v1/csi.proto` -> `csi.pb.swift` (files land flat in the output directory).
    static func outputName(for protoPath: String) -> String {
        var base = String(protoPath.split(separator: "/").last ?? Substring(protoPath))
        if base.hasSuffix(".proto") { base.removeLast(".proto".count) }
        return base + ".pb.swift"
    }

    init(options: GeneratorOptions) { self.options = options }

    // MARK: Symbol table

    mutating func register(_ files: [FileDescriptor]) {
        for file in files {
            let protoPrefix = file.package.isEmpty ? "" : "." + file.package
            let swiftPrefix = options.namespaces[file.package].map { $0 + "." } ?? ""
            let before = Set(types.keys)
            for message in file.messageType { register(message, protoPrefix: protoPrefix, swiftPrefix: swiftPrefix) }
            for e in file.enumType { register(e, protoPrefix: protoPrefix, swiftPrefix: swiftPrefix) }
            for name in types.keys where !before.contains(name) { typeFiles[name] = file.name }
        }
        // The well-known types with a native mapping win over any generated form.
        for (name, swift) in Generator.wellKnownMessages {
            types[name] = TypeInfo(kind: name == ".google.protobuf.Timestamp" ? .timestamp : .message, swiftName: swift)
        }
        for (name, swift) in Generator.wrappers { types[name] = TypeInfo(kind: .wrapper, swiftName: swift) }
        findCycles(files)
    }

    /// Marks the singular message fields that lie on a cycle of inline (singular) message fields.
    mutating func findCycles(_ files: [FileDescriptor]) {
        var edges: [String: [(field: Int32, target: String)]] = [:]
        func walk(_ message: MessageDescriptor, _ full: String) {
            for field in message.field where field.kind == .message && field.label != .repeated {
                if let info = types[field.typeName], info.kind == .message { edges[full, default: []].append((field.number, field.typeName)) }
            }
            for nested in message.nestedType { walk(nested, full + "." + nested.name) }
        }
        for file in files {
            let prefix = file.package.isEmpty ? "" : "." + file.package
            for message in file.messageType { walk(message, prefix + "." + message.name) }
        }
        func reaches(_ from: String, _ to: String) -> Bool {
            var seen: Set<String> = [from]
            var stack = [from]
            while let node = stack.popLast() {
                if node == to { return true }
                for edge in edges[node] ?? [] where seen.insert(edge.target).inserted { stack.append(edge.target) }
            }
            return false
        }
        for (source, list) in edges {
            for edge in list where reaches(edge.target, source) { boxedFields.insert("\(source)#\(edge.field)") }
        }
    }

    mutating func register(_ message: MessageDescriptor, protoPrefix: String, swiftPrefix: String) {
        let full = protoPrefix + "." + message.name
        let swift = swiftPrefix + Naming.typeName(message.name, isEnum: false)
        var info = TypeInfo(kind: .message, swiftName: swift, isMapEntry: message.isMapEntry)
        if message.isMapEntry {
            info.mapKey = message.field.first { $0.number == 1 }
            info.mapValue = message.field.first { $0.number == 2 }
        }
        types[full] = info
        for nested in message.nestedType { register(nested, protoPrefix: full, swiftPrefix: swift + ".") }
        for e in message.enumType { register(e, protoPrefix: full, swiftPrefix: swift + ".") }
    }

    mutating func register(_ e: EnumDescriptor, protoPrefix: String, swiftPrefix: String) {
        let first = e.values.first.map { Naming.enumCaseName($0.name, enumName: e.name) }
        types[protoPrefix + "." + e.name] = TypeInfo(
            kind: .enumeration, swiftName: swiftPrefix + Naming.typeName(e.name, isEnum: true), firstCase: first)
    }

    /// Refuses a file that uses a type of a `google/protobuf/` file that this run does not generate
    /// and ProtoWire does not provide (Any, Struct, FieldMask, …): its Swift would not compile.
    func checkWellKnownImports(of file: FileDescriptor) throws(GeneratorError) {
        func check(_ typeName: String, _ context: String) throws(GeneratorError) {
            guard !typeName.isEmpty, types[typeName]?.kind != .wrapper, Generator.wellKnownMessages[typeName] == nil,
                let defining = typeFiles[typeName], defining.hasPrefix("google/protobuf/"), !generating.contains(defining)
            else { return }
            throw GeneratorError(
                "\(file.name): \(context) uses \(typeName.dropFirst()) from the import \(defining), which ProtoWire does not "
                    + "provide (it provides google.protobuf.Timestamp, Duration, Empty and the wrapper types); generate "
                    + "\(defining) in the same run, with a Namespace.google.protobuf option, or use another type")
        }
        func walk(_ message: MessageDescriptor, _ full: String) throws(GeneratorError) {
            for field in message.field { try check(field.typeName, "\(full).\(field.name)") }
            for nested in message.nestedType { try walk(nested, full + "." + nested.name) }
        }
        let prefix = file.package.isEmpty ? "" : file.package + "."
        for message in file.messageType { try walk(message, prefix + message.name) }
        if options.services {
            for service in file.service {
                for m in service.methods {
                    try check(m.inputType, "\(prefix)\(service.name)/\(m.name)")
                    try check(m.outputType, "\(prefix)\(service.name)/\(m.name)")
                }
            }
        }
    }

    func lookup(_ typeName: String, for context: String) throws(GeneratorError) -> TypeInfo {
        guard let info = types[typeName] else {
            throw GeneratorError(
                "\(context): type \(typeName) is not supported (only messages and enums of the given files, google.protobuf.Timestamp, Duration, Empty and the wrapper types)"
            )
        }
        return info
    }

    // MARK: Files

    /// The comment lines every generated file starts with.
    static func writeHeader(of file: FileDescriptor, into out: inout SwiftWriter) {
        out.line("// Generated by protoc-gen-protowire from \(file.name) (package \(file.package.isEmpty ? "<none>" : file.package)).")
        out.line("// Do not edit: change the .proto file and run scripts/generate.sh.")
    }

    /// A blank line, then the empty enum that holds the Swift types of `file`'s package.
    static func writeNamespace(_ namespace: String, of file: FileDescriptor, into out: inout SwiftWriter) {
        out.line()
        out.line("/// The types of the protobuf package `\(file.package)`.")
        out.line("public enum \(namespace): Sendable {}")
    }

    func generate(_ file: FileDescriptor, declareNamespace: Bool) throws(GeneratorError) -> String {
        var out = SwiftWriter()
        let comments = CommentIndex(file.locations)
        Self.writeHeader(of: file, into: &out)
        out.line()
        if options.module != "ProtoWire" { out.line("public import ProtoWire") }
        let services = options.services ? file.service : []
        if !services.isEmpty { out.line("public import RPCCore") }
        let namespace = options.namespaces[file.package]
        let protoPrefix = file.package.isEmpty ? "" : "." + file.package
        if let namespace {
            if declareNamespace { Self.writeNamespace(namespace, of: file, into: &out) }
            out.line()
            out.line("extension \(namespace) {")
            out.indent += 1
        }
        var first = true
        for (index, e) in file.enumType.enumerated() {
            if !first { out.line() }
            first = false
            out.line()
            try generateEnum(e, fullName: protoPrefix + "." + e.name, comment: comments[[5, Int32(index)]], into: &out)
        }
        for (index, message) in file.messageType.enumerated() {
            out.line()
            try generateMessage(
                message, fullName: protoPrefix + "." + message.name, path: [4, Int32(index)], comments: comments,
                syntax: file.syntax, into: &out)
        }
        // Every message of the file, nested ones included, for tools that decode by name.
        var all: [String] = []
        func collect(_ message: MessageDescriptor, _ full: String) {
            guard !message.isMapEntry, let info = types[full] else { return }
            all.append(info.swiftName)
            for nested in message.nestedType { collect(nested, full + "." + nested.name) }
        }
        for message in file.messageType { collect(message, protoPrefix + "." + message.name) }
        let fileEnum = Self.fileEnumName(file)
        out.line()
        out.doc("The contents of `\(file.name)`.")
        out.line("public enum \(fileEnum) {")
        out.indent += 1
        out.line("/// Every message type the file defines (nested ones included), for decoding by name.")
        out.line("public static let messageTypes: [any ProtoCodable.Type] = [")
        for name in all { out.line("    \(name).self,") }
        out.line("]")
        out.indent -= 1
        out.line("}")
        if namespace != nil {
            out.indent -= 1
            out.line("}")
        }
        for (index, service) in services.enumerated() {
            out.line()
            try generateService(
                service, package: file.package, namespace: namespace, path: [6, Int32(index)], comments: comments,
                into: &out)
        }
        try generateFileDescriptor(file, declaringEnum: false, into: &out)
        return out.text
    }

    // MARK: Enums

    func generateEnum(_ e: EnumDescriptor, fullName: String, comment: String?, into out: inout SwiftWriter) throws(GeneratorError) {
        let info = try lookup(fullName, for: fullName)
        let name = String(info.swiftName.split(separator: ".").last!)
        var seen: Set<Int32> = []
        var cases: [(name: String, number: Int32)] = []
        for value in e.values where seen.insert(value.number).inserted {
            cases.append((Naming.enumCaseName(value.name, enumName: e.name), value.number))
        }
        guard let firstCase = cases.first else { throw GeneratorError("\(fullName): enum without values") }
        out.doc(comment ?? "The protobuf enum `\(fullName.dropFirst())`.")
        out.line("public enum \(name): RawRepresentable, Hashable, Sendable, CustomStringConvertible {")
        out.indent += 1
        for (caseName, number) in cases {
            out.line("/// `\(e.values.first { $0.number == number }!.name)` (\(number)).")
            out.line("case \(Naming.escape(caseName))")
        }
        out.line("/// A value this version does not know; kept so it survives re-encoding (open enum).")
        out.line("case unrecognized(Int32)")
        out.line()
        out.line("/// The default: `\(firstCase.name)`.")
        out.line("public init() { self = .\(Naming.escape(firstCase.name)) }")
        out.line()
        out.line("/// The case for a wire value; unknown values become ``unrecognized(_:)``.")
        out.line("public init(rawValue: Int32) {")
        out.line("    switch rawValue {")
        for (caseName, number) in cases { out.line("    case \(number): self = .\(Naming.escape(caseName))") }
        out.line("    default: self = .unrecognized(rawValue)")
        out.line("    }")
        out.line("}")
        out.line()
        out.line("/// The wire value.")
        out.line("public var rawValue: Int32 {")
        out.line("    switch self {")
        for (caseName, number) in cases { out.line("    case .\(Naming.escape(caseName)): \(number)") }
        out.line("    case .unrecognized(let value): value")
        out.line("    }")
        out.line("}")
        out.line()
        out.line("/// The cases this version knows, in declaration order.")
        out.line("public static let knownCases: [\(name)] = [\(cases.map { "." + Naming.escape($0.name) }.joined(separator: ", "))]")
        out.line()
        out.line("/// The case name, for example `.\(firstCase.name)`, or `unrecognized(n)`.")
        out.line("public var description: String {")
        out.line("    switch self {")
        for (caseName, _) in cases { out.line("    case .\(Naming.escape(caseName)): \".\(caseName)\"") }
        out.line("    case .unrecognized(let value): \"unrecognized(\\(value))\"")
        out.line("    }")
        out.line("}")
        out.line()
        out.line("/// Equal when the wire values are (`.unrecognized(1)` equals the case numbered 1).")
        out.line("public static func == (a: \(name), b: \(name)) -> Bool { a.rawValue == b.rawValue }")
        out.line("/// Hashes the wire value.")
        out.line("public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }")
        out.indent -= 1
        out.line("}")
    }

    // MARK: Services

    func generateService(
        _ service: ServiceDescriptor, package: String, namespace: String?, path: [Int32], comments: CommentIndex,
        into out: inout SwiftWriter
    ) throws(GeneratorError) {
        let fullService = package.isEmpty ? service.name : package + "." + service.name
        let base = Naming.typeName(service.name, isEnum: false)
        let qualifier = namespace.map { $0 + "." } ?? ""
        if let namespace {
            out.line("extension \(namespace) {")
            out.indent += 1
        }
        struct M {
            var name: String
            var function: String
            var kind: String
            var input: String
            var output: String
            var comment: String?
        }
        var methods: [M] = []
        for (index, m) in service.methods.enumerated() {
            let kind =
                switch (m.clientStreaming, m.serverStreaming) {
                case (false, false): "unary"
                case (false, true): "serverStreaming"
                case (true, false): "clientStreaming"
                case (true, true): "bidirectionalStreaming"
                }
            methods.append(
                M(
                    name: m.name, function: Naming.methodName(m.name), kind: kind,
                    input: try lookup(m.inputType, for: "\(fullService)/\(m.name)").swiftName,
                    output: try lookup(m.outputType, for: "\(fullService)/\(m.name)").swiftName,
                    comment: comments[path + [2, Int32(index)]]))
        }
        let serviceComment = comments[path]

        out.doc("The methods of the gRPC service `\(fullService)`.")
        out.line("public enum \(base)Methods {")
        out.indent += 1
        for m in methods {
            out.line("/// `/\(fullService)/\(m.name)` (\(m.kind)).")
            out.line(
                "public static let \(m.function) = GRPCMethodDescriptor(service: \"\(fullService)\", method: \"\(m.name)\", kind: .\(m.kind))"
            )
        }
        out.line("/// Every method of the service, in declaration order.")
        out.line("public static let all: [GRPCMethodDescriptor] = [\(methods.map(\.function).joined(separator: ", "))]")
        out.indent -= 1
        out.line("}")
        out.line()

        out.doc([
            serviceComment,
            "The server side of `\(fullService)`: implement the methods you serve, then register the service with a `GRPCRouter`. "
                + "A method left out answers UNIMPLEMENTED.",
        ])
        out.line("public protocol \(base)Service: GRPCServiceRegistrable {")
        out.indent += 1
        for m in methods {
            out.doc(m.comment ?? "Handles `/\(fullService)/\(m.name)`.")
            switch m.kind {
            case "unary":
                out.line("func \(m.function)(_ request: \(m.input), context: ServerContext) async throws -> \(m.output)")
            case "serverStreaming":
                out.line(
                    "func \(m.function)(_ request: \(m.input), responses: ResponseStreamWriter<\(m.output)>, context: ServerContext) async throws"
                )
            case "clientStreaming":
                out.line("func \(m.function)(_ requests: RequestStream<\(m.input)>, context: ServerContext) async throws -> \(m.output)")
            default:
                out.line(
                    "func \(m.function)(_ requests: RequestStream<\(m.input)>, responses: ResponseStreamWriter<\(m.output)>, context: ServerContext) async throws"
                )
            }
        }
        out.indent -= 1
        out.line("}")
        out.line()
        out.doc("A client for `\(fullService)` over a `GRPCClientTransport` (H2's `GRPCChannel`).")
        out.line("public struct \(base)Client: Sendable {")
        out.indent += 1
        out.line("/// The channel calls go through.")
        out.line("public let channel: any GRPCClientTransport")
        out.line("/// A client whose calls go through `channel`.")
        out.line("public init(channel: any GRPCClientTransport) { self.channel = channel }")
        for m in methods {
            out.line()
            out.doc(m.comment ?? "Calls `/\(fullService)/\(m.name)`.")
            switch m.kind {
            case "unary":
                out.line(
                    "public func \(m.function)(_ request: \(m.input) = .init(), options: CallOptions = .init()) async throws -> \(m.output) {"
                )
                out.line("    try await channel.unary(\(base)Methods.\(m.function), request: request, options: options)")
            case "serverStreaming":
                out.line(
                    "public func \(m.function)(_ request: \(m.input) = .init(), options: CallOptions = .init()) -> AsyncThrowingStream<\(m.output), any Error> {"
                )
                out.line("    channel.serverStreaming(\(base)Methods.\(m.function), request: request, options: options)")
            case "clientStreaming":
                out.line(
                    "public func \(m.function)(_ requests: AsyncStream<\(m.input)>, options: CallOptions = .init()) async throws -> \(m.output) {"
                )
                out.line("    try await channel.clientStreaming(\(base)Methods.\(m.function), requests: requests, options: options)")
            default:
                out.line(
                    "public func \(m.function)(_ requests: AsyncStream<\(m.input)>, options: CallOptions = .init()) -> AsyncThrowingStream<\(m.output), any Error> {"
                )
                out.line("    channel.bidirectionalStreaming(\(base)Methods.\(m.function), requests: requests, options: options)")
            }
            out.line("}")
        }
        out.indent -= 1
        out.line("}")
        if namespace != nil {
            out.indent -= 1
            out.line("}")
        }
        out.line()
        out.line("extension \(qualifier)\(base)Service {")
        out.indent += 1
        for m in methods {
            let path = "/\(fullService)/\(m.name)"
            out.line("/// Answers `\(path)` with UNIMPLEMENTED; implement it to serve the method.")
            switch m.kind {
            case "unary":
                out.line("public func \(m.function)(_ request: \(m.input), context: ServerContext) async throws -> \(m.output) {")
            case "serverStreaming":
                out.line(
                    "public func \(m.function)(_ request: \(m.input), responses: ResponseStreamWriter<\(m.output)>, context: ServerContext) async throws {"
                )
            case "clientStreaming":
                out.line(
                    "public func \(m.function)(_ requests: RequestStream<\(m.input)>, context: ServerContext) async throws -> \(m.output) {"
                )
            default:
                out.line(
                    "public func \(m.function)(_ requests: RequestStream<\(m.input)>, responses: ResponseStreamWriter<\(m.output)>, context: ServerContext) async throws {"
                )
            }
            out.line("    throw RPCError(code: .unimplemented, message: \"\(path) is not implemented\")")
            out.line("}")
            out.line()
        }
        out.line("/// Registers every method of `\(fullService)` with `router`.")
        out.line("public func register(with router: inout GRPCRouter) {")
        out.indent += 1
        for m in methods {
            switch m.kind {
            case "unary":
                out.line(
                    "router.registerUnary(\(qualifier)\(base)Methods.\(m.function)) { (request: \(m.input), context: ServerContext) async throws -> \(m.output) in"
                )
                out.line("    try await self.\(m.function)(request, context: context)")
            case "serverStreaming":
                out.line(
                    "router.registerServerStreaming(\(qualifier)\(base)Methods.\(m.function)) { (request: \(m.input), responses: ResponseStreamWriter<\(m.output)>, context: ServerContext) async throws in"
                )
                out.line("    try await self.\(m.function)(request, responses: responses, context: context)")
            case "clientStreaming":
                out.line(
                    "router.registerClientStreaming(\(qualifier)\(base)Methods.\(m.function)) { (requests: RequestStream<\(m.input)>, context: ServerContext) async throws -> \(m.output) in"
                )
                out.line("    try await self.\(m.function)(requests, context: context)")
            default:
                out.line(
                    "router.registerBidirectionalStreaming(\(qualifier)\(base)Methods.\(m.function)) { (requests: RequestStream<\(m.input)>, responses: ResponseStreamWriter<\(m.output)>, context: ServerContext) async throws in"
                )
                out.line("    try await self.\(m.function)(requests, responses: responses, context: context)")
            }
            out.line("}")
        }
        out.indent -= 1
        out.line("}")
        out.indent -= 1
        out.line("}")

    }
}

extension String {
    func replacingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}

/// Proto comments by element path (SourceCodeInfo), for doc comments.
struct CommentIndex {
    var byPath: [[Int32]: String] = [:]

    init(_ locations: [SourceLocation]) {
        for location in locations {
            var text = location.leadingComments
            if !location.trailingComments.isEmpty {
                text += (text.isEmpty ? "" : "\n") + location.trailingComments
            }
            if !text.isEmpty { byPath[location.path] = text }
        }
    }

    subscript(path: [Int32]) -> String? { byPath[path] }
}

/// Accumulates indented lines of Swift.
struct SwiftWriter {
    var text = ""
    var indent = 0

    mutating func line(_ s: String = "") {
        if s.isEmpty {
            text += "\n"
            return
        }
        text += String(repeating: "    ", count: indent) + s + "\n"
    }

    /// Writes a `///` doc comment from proto comment text.
    mutating func doc(_ comment: String) { doc([comment]) }

    /// Writes a `///` doc comment from several paragraphs (nil ones skipped), separated by blank lines.
    mutating func doc(_ paragraphs: [String?]) {
        var all: [String] = []
        for paragraph in paragraphs {
            guard let paragraph else { continue }
            var lines = paragraph.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                var l = String(line)
                while l.last == " " || l.last == "\t" { l.removeLast() }
                return l
            }
            while lines.first?.isEmpty == true { lines.removeFirst() }
            while lines.last?.isEmpty == true { lines.removeLast() }
            if lines.isEmpty { continue }
            // Strip the single space protoc keeps after `//`.
            if lines.allSatisfy({ $0.isEmpty || $0.hasPrefix(" ") }) {
                lines = lines.map { $0.isEmpty ? $0 : String($0.dropFirst()) }
            }
            if !all.isEmpty { all.append("") }
            all += lines
        }
        for l in all { line(l.isEmpty ? "///" : "/// " + l) }
    }
}
