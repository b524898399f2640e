// .proto files as protoc describes them (serialized google.protobuf.FileDescriptorProto), and a
// registry that answers the questions gRPC server reflection asks: which file has this name,
// which file defines this symbol or extension, which files does a file need.
//
// The registry keeps only the serialized files. Symbols are found by walking a file's
// descriptor when asked, comparing names in place: tens of microseconds per lookup, next to no
// allocation, and no memory between lookups.

/// One `.proto` file: its path, the paths it imports, and its `google.protobuf.FileDescriptorProto`
/// as protoc handed it to the code generator, without `source_code_info`.
///
/// `protoc-gen-protowire` emits one per generated file as `<File>ProtoFile.descriptor`;
/// ``WellKnownProtoFiles`` has the well-known files generated code imports.
public struct ProtoFileDescriptor: Sendable, Hashable {
    /// The file's path as protoc saw it, for example `csi.proto` or `google/protobuf/wrappers.proto`.
    public let name: String
    /// The paths of the files it imports, in declaration order.
    public let dependencies: [String]
    /// The serialized `FileDescriptorProto`.
    public let serializedBytes: [UInt8]

    /// A file described by `serializedBytes`; `name` and `dependencies` must agree with it
    /// (``ProtoDescriptorRegistry`` checks).
    public init(name: String, dependencies: [String], serializedBytes: [UInt8]) {
        self.name = name
        self.dependencies = dependencies
        self.serializedBytes = serializedBytes
    }
}

/// The descriptors of the well-known files that generated code may import, so that a registry
/// can serve a file together with everything it depends on.
public enum WellKnownProtoFiles {
    /// `google/protobuf/descriptor.proto`, `timestamp.proto`, `wrappers.proto`, `duration.proto`
    /// and `empty.proto`.
    public static let all: [ProtoFileDescriptor] = [
        DescriptorProtoFile.descriptor, TimestampProtoFile.descriptor, WrappersProtoFile.descriptor,
        DurationProtoFile.descriptor, EmptyProtoFile.descriptor,
    ]
}

/// Why files could not be registered with a ``ProtoDescriptorRegistry``.
public struct ProtoDescriptorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public var code: Code
    /// What was expected and what was found, naming the file (and symbol).
    public var message: String
    /// The decoding error, for ``Code/malformed``.
    public var underlying: ProtoWireError?

    /// Creates an error.
    public init(code: Code, message: String, underlying: ProtoWireError? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// The message, with the decoding error when there is one.
    public var description: String { underlying.map { "\(message): \($0)" } ?? message }

    /// The kind of a ``ProtoDescriptorError``; a struct so kinds can be added without breaking users.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable { case malformed, mismatch, duplicateFile, duplicateSymbol, missingDependency }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The bytes are not a valid `FileDescriptorProto`.
        public static let malformed = Code(.malformed)
        /// The descriptor's name or dependencies differ from what the bytes say.
        public static let mismatch = Code(.mismatch)
        /// Another file with the same name but different contents is registered.
        public static let duplicateFile = Code(.duplicateFile)
        /// Two files define the same fully qualified symbol.
        public static let duplicateSymbol = Code(.duplicateSymbol)
        /// A file imports one that is neither registered nor well-known.
        public static let missingDependency = Code(.missingDependency)

        /// A short name, for example `missingDependency`.
        public var description: String {
            switch base {
            case .malformed: "malformed"
            case .mismatch: "mismatch"
            case .duplicateFile: "duplicateFile"
            case .duplicateSymbol: "duplicateSymbol"
            case .missingDependency: "missingDependency"
            }
        }
    }
}

/// A set of `.proto` files, closed under imports, with the lookups gRPC server reflection needs.
///
/// ```swift
/// var registry = ProtoDescriptorRegistry()
/// try registry.register([CsiProtoFile.descriptor])   // well-known imports are added
/// registry.file(containingSymbol: "csi.v1.Controller")?.name   // "csi.proto"
/// ```
public struct ProtoDescriptorRegistry: Sendable {
    /// The registered files, in the order they were added (well-known imports after their importer's batch).
    public private(set) var files: [ProtoFileDescriptor] = []
    private var indexByName: [String: Int] = [:]

    /// An empty registry.
    public init() {}

    /// A registry holding `files` and the well-known files they import.
    /// - Throws: ``ProtoDescriptorError`` as ``register(_:)`` does.
    public init(_ files: [ProtoFileDescriptor]) throws(ProtoDescriptorError) {
        try register(files)
    }

    /// Adds `files` (in any order) and the well-known files they import.
    ///
    /// A file already registered with the same contents is skipped. Nothing is added when
    /// any file fails. Each new file's top-level structure is read here; what lies deeper is
    /// read by the lookups, which skip a file they cannot read.
    /// - Throws: ``ProtoDescriptorError``: a file is malformed or disagrees with its name or
    ///   dependencies, a different file of the same name is registered, two files define one
    ///   package-level symbol, or an import is missing.
    public mutating func register(_ newFiles: [ProtoFileDescriptor]) throws(ProtoDescriptorError) {
        var next = self
        var added: [ProtoFileDescriptor] = []
        for file in newFiles {
            if try next.insert(file) { added.append(file) }
        }
        // Imports: registered, part of this batch, or well-known (added here).
        var pending = added
        while let file = pending.popLast() {
            for dependency in file.dependencies where next.indexByName[dependency] == nil {
                guard let known = WellKnownProtoFiles.all.first(where: { $0.name == dependency }) else {
                    throw ProtoDescriptorError(
                        code: .missingDependency,
                        message: "\(file.name) imports \(dependency), which is neither registered nor a well-known file")
                }
                _ = try next.insert(known)
                added.append(known)
                pending.append(known)
            }
        }
        // Every package-level symbol defined once across all files (nested names live inside
        // those, so they cannot collide unless their parents do).
        if !added.isEmpty {
            var owner: [String: String] = [:]
            for file in next.files {
                for symbol in try Self.packageLevelSymbols(of: file) {
                    if let other = owner.updateValue(file.name, forKey: symbol), other != file.name {
                        throw ProtoDescriptorError(
                            code: .duplicateSymbol, message: "\(symbol) is defined in both \(other) and \(file.name)")
                    }
                }
            }
        }
        self = next
    }

    /// Appends `file` unless the same file is there; returns whether it was appended.
    private mutating func insert(_ file: ProtoFileDescriptor) throws(ProtoDescriptorError) -> Bool {
        if let index = indexByName[file.name] {
            guard files[index] == file else {
                throw ProtoDescriptorError(
                    code: .duplicateFile, message: "\(file.name) is registered twice with different contents")
            }
            return false
        }
        indexByName[file.name] = files.count
        files.append(file)
        return true
    }

    /// The file registered under `name` (its path as protoc saw it).
    public func file(named name: String) -> ProtoFileDescriptor? {
        indexByName[name].map { files[$0] }
    }

    /// The file defining `symbol`: a message, field, oneof, enum, enum value, service, method or
    /// extension, by its fully qualified name (`csi.v1.CreateVolumeRequest.name`; a leading `.` is allowed).
    public func file(containingSymbol symbol: String) -> ProtoFileDescriptor? {
        resolve(symbol).map { files[$0.file] }
    }

    /// The kind of `symbol` (see ``file(containingSymbol:)``), if a registered file defines it.
    public func symbolKind(_ symbol: String) -> ProtoSymbolKind? {
        resolve(symbol)?.kind
    }

    /// The file declaring extension `number` of the message `type` (fully qualified).
    public func file(containingExtension number: Int32, of type: String) -> ProtoFileDescriptor? {
        let extendee = "." + Self.unqualified(type)
        return files.first { Self.extensionNumbers(of: extendee, in: $0).contains(number) }
    }

    /// The extension numbers the registered files declare for the message `type` (fully
    /// qualified), ascending; nil when no registered file defines such a message.
    public func extensionNumbers(of type: String) -> [Int32]? {
        guard resolve(type)?.kind == .message else { return nil }
        let extendee = "." + Self.unqualified(type)
        return files.flatMap { Self.extensionNumbers(of: extendee, in: $0) }.sorted()
    }

    /// `file` followed by every file it imports, directly or not, each once, breadth first.
    public func withDependencies(_ file: ProtoFileDescriptor) -> [ProtoFileDescriptor] {
        var result = [file]
        var seen: Set<String> = [file.name]
        var index = 0
        while index < result.count {
            for dependency in result[index].dependencies where seen.insert(dependency).inserted {
                if let found = self.file(named: dependency) { result.append(found) }
            }
            index += 1
        }
        return result
    }

    private static func unqualified(_ name: String) -> String {
        name.hasPrefix(".") ? String(name.dropFirst()) : name
    }

    // MARK: Walking FileDescriptorProto
    //
    // Field numbers from google/protobuf/descriptor.proto: FileDescriptorProto name 1, package 2,
    // dependency 3, message_type 4, enum_type 5, service 6, extension 7; DescriptorProto name 1,
    // field 2, nested_type 3, enum_type 4, extension 6, oneof_decl 8; EnumDescriptorProto value 2;
    // ServiceDescriptorProto method 2; FieldDescriptorProto name 1, extendee 2, number 3.
    // Names are compared in place, so a lookup allocates next to nothing.

    /// The index of the file defining `symbol`, and what the symbol is.
    private func resolve(_ symbol: String) -> (file: Int, kind: ProtoSymbolKind)? {
        let symbol = Self.unqualified(symbol)
        for (index, file) in files.enumerated() {
            let kind = file.serializedBytes.withUnsafeBytes { raw -> ProtoSymbolKind? in
                try? Self.resolve(symbol, inFile: raw)
            }
            if let kind { return (index, kind) }
        }
        return nil
    }

    private static func resolve(_ symbol: String, inFile file: UnsafeRawBufferPointer) throws(ProtoWireError) -> ProtoSymbolKind? {
        var rest = Substring(symbol)
        if let package = try first(2, in: file, where: { _ throws(ProtoWireError) in true }), package.count > 0 {
            let utf8 = rest.utf8
            guard utf8.count > package.count, utf8.starts(with: package) else { return nil }
            let dot = utf8.index(utf8.startIndex, offsetBy: package.count)
            guard utf8[dot] == UInt8(ascii: ".") else { return nil }
            rest = rest[utf8.index(after: dot)...]
        }
        let components = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard let head = components.first, !components.contains(where: \.isEmpty) else { return nil }
        let last = components.count == 1
        if let message = try first(4, in: file, where: { m throws(ProtoWireError) in try named(m, head) }) {
            return last ? .message : try resolve(components.dropFirst(), inMessage: message, depth: 1)
        }
        if let service = try first(6, in: file, where: { s throws(ProtoWireError) in try named(s, head) }) {
            if last { return .service }
            guard components.count == 2 else { return nil }
            let method = components[components.startIndex + 1]
            return try first(2, in: service, where: { m throws(ProtoWireError) in try named(m, method) }) != nil ? .method : nil
        }
        guard last else { return nil }
        return try resolveLeaf(head, enumsField: 5, extensionsField: 7, in: file)
    }

    /// A name directly inside a message (or nested deeper, through its nested messages).
    private static func resolve(
        _ components: ArraySlice<Substring>, inMessage message: UnsafeRawBufferPointer, depth: Int
    ) throws(ProtoWireError) -> ProtoSymbolKind? {
        guard depth < ProtoReader.maximumDepth, let head = components.first else { return nil }
        let last = components.count == 1
        if let nested = try first(3, in: message, where: { m throws(ProtoWireError) in try named(m, head) }) {
            return last ? .message : try resolve(components.dropFirst(), inMessage: nested, depth: depth + 1)
        }
        guard last else { return nil }
        if try first(2, in: message, where: { f throws(ProtoWireError) in try named(f, head) }) != nil { return .field }
        if try first(8, in: message, where: { o throws(ProtoWireError) in try named(o, head) }) != nil { return .oneof }
        return try resolveLeaf(head, enumsField: 4, extensionsField: 6, in: message)
    }

    /// An enum, an enum value (named beside its enum) or an extension declared in `scope`.
    private static func resolveLeaf(
        _ name: Substring, enumsField: UInt32, extensionsField: UInt32, in scope: UnsafeRawBufferPointer
    ) throws(ProtoWireError) -> ProtoSymbolKind? {
        var kind: ProtoSymbolKind? = nil
        _ = try first(enumsField, in: scope) { e throws(ProtoWireError) in
            if try named(e, name) {
                kind = .enumeration
            } else if try first(2, in: e, where: { v throws(ProtoWireError) in try named(v, name) }) != nil {
                kind = .enumValue
            }
            return kind != nil
        }
        if kind == nil, try first(extensionsField, in: scope, where: { x throws(ProtoWireError) in try named(x, name) }) != nil {
            kind = .extension
        }
        return kind
    }

    /// The numbers of the extensions of `extendee` (`.pkg.Message`) declared anywhere in `file`.
    private static func extensionNumbers(of extendee: String, in file: ProtoFileDescriptor) -> [Int32] {
        var numbers: [Int32] = []
        func scan(_ scope: UnsafeRawBufferPointer, extensionsField: UInt32, messagesField: UInt32, depth: Int) throws(ProtoWireError) {
            guard depth < ProtoReader.maximumDepth else { return }
            _ = try first(extensionsField, in: scope) { x throws(ProtoWireError) in
                if let target = try first(2, in: x, where: { _ throws(ProtoWireError) in true }),
                    target.elementsEqual(extendee.utf8)
                {
                    numbers.append(try number(of: x))
                }
                return false
            }
            _ = try first(messagesField, in: scope) { m throws(ProtoWireError) in
                try scan(m, extensionsField: 6, messagesField: 3, depth: depth + 1)
                return false
            }
        }
        file.serializedBytes.withUnsafeBytes { raw in
            do throws(ProtoWireError) { try scan(raw, extensionsField: 7, messagesField: 4, depth: 0) } catch { numbers = [] }
        }
        return numbers
    }

    /// The first length-delimited field `number` of `bytes` for which `match` holds.
    private static func first(
        _ number: UInt32, in bytes: UnsafeRawBufferPointer,
        where match: (UnsafeRawBufferPointer) throws(ProtoWireError) -> Bool
    ) throws(ProtoWireError) -> UnsafeRawBufferPointer? {
        var r = ProtoReader(bytes)
        while let tag = try r.nextTag() {
            if tag.rawValue == number << 3 | 2 {
                let value = try r.readLengthDelimited()
                if try match(value) { return value }
            } else {
                try r.skipField()
            }
        }
        return nil
    }

    /// Whether the descriptor message `bytes` has `name` (field 1).
    private static func named(_ bytes: UnsafeRawBufferPointer, _ name: Substring) throws(ProtoWireError) -> Bool {
        try first(1, in: bytes, where: { _ throws(ProtoWireError) in true })?.elementsEqual(name.utf8) ?? name.isEmpty
    }

    /// The `number` (field 3) of a `FieldDescriptorProto`.
    private static func number(of field: UnsafeRawBufferPointer) throws(ProtoWireError) -> Int32 {
        var r = ProtoReader(field)
        var value: Int32 = 0
        while let tag = try r.nextTag() {
            if tag.rawValue == 3 << 3 | 0 { value = try r.readInt32() } else { try r.skipField() }
        }
        return value
    }

    /// Reads `file`'s top level, checks it against its name and dependencies, and returns the
    /// fully qualified names it defines at package level (messages, enums, top-level enum
    /// values, services, extensions).
    static func packageLevelSymbols(of file: ProtoFileDescriptor) throws(ProtoDescriptorError) -> [String] {
        var name = ""
        var package = ""
        var dependencies: [String] = []
        var names: [String] = []
        let failure = file.serializedBytes.withUnsafeBytes { raw -> ProtoWireError? in
            do throws(ProtoWireError) {
                var r = ProtoReader(raw)
                while let tag = try r.nextTag() {
                    switch tag.rawValue {
                    case 1 << 3 | 2: name = try r.readString()
                    case 2 << 3 | 2: package = try r.readString()
                    case 3 << 3 | 2: dependencies.append(try r.readString())
                    case 4 << 3 | 2, 6 << 3 | 2, 7 << 3 | 2: names.append(try nameString(try r.readLengthDelimited()))
                    case 5 << 3 | 2:
                        let e = try r.readLengthDelimited()
                        names.append(try nameString(e))
                        _ = try first(2, in: e) { v throws(ProtoWireError) in
                            names.append(try nameString(v))
                            return false
                        }
                    default: try r.skipField()
                    }
                }
                return nil
            } catch {
                return error
            }
        }
        if let failure {
            throw ProtoDescriptorError(
                code: .malformed, message: "the descriptor of \(file.name) is not a valid FileDescriptorProto", underlying: failure)
        }
        guard name == file.name, dependencies == file.dependencies else {
            throw ProtoDescriptorError(
                code: .mismatch,
                message:
                    "\(file.name): expected a descriptor named \(file.name) importing \(file.dependencies), found one named \(name) importing \(dependencies)"
            )
        }
        return package.isEmpty ? names : names.map { package + "." + $0 }
    }

    /// The `name` (field 1) of a descriptor message, validated as UTF-8.
    private static func nameString(_ bytes: UnsafeRawBufferPointer) throws(ProtoWireError) -> String {
        var r = ProtoReader(bytes)
        var name = ""
        while let tag = try r.nextTag() {
            if tag.rawValue == 1 << 3 | 2 { name = try r.readString() } else { try r.skipField() }
        }
        return name
    }
}

/// What a fully qualified protobuf name stands for.
public enum ProtoSymbolKind: Sendable, Hashable {
    /// A message type (nested ones included).
    case message
    /// A field of a message.
    case field
    /// A oneof of a message.
    case oneof
    /// An enum type.
    case enumeration
    /// An enum value (named beside its enum).
    case enumValue
    /// A service.
    case service
    /// A method of a service.
    case method
    /// An extension field.
    case `extension`
}
