// .proto files as protoc describes them (serialized google.protobuf.FileDescriptorProto), and a
// registry that answers the questions gRPC server reflection asks: which file has this name,
// which file defines this symbol or extension, which files does a file need.
//
// The registry keeps only the serialized files. Symbols are found by walking a file's
// descriptor when asked (field numbers from google/protobuf/descriptor.proto), which costs tens
// of microseconds per lookup and no memory between lookups.

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
    /// `google/protobuf/descriptor.proto`, `timestamp.proto` and `wrappers.proto`.
    public static let all: [ProtoFileDescriptor] = [
        DescriptorProtoFile.descriptor, TimestampProtoFile.descriptor, WrappersProtoFile.descriptor,
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
    /// any file fails.
    /// - Throws: ``ProtoDescriptorError``: a file is malformed or disagrees with its name or
    ///   dependencies, a different file of the same name is registered, two files define one
    ///   symbol, or an import is missing.
    public mutating func register(_ newFiles: [ProtoFileDescriptor]) throws(ProtoDescriptorError) {
        var next = self
        var added: [FileSummary] = []
        for file in newFiles {
            if try next.insert(file) { added.append(try Self.summary(of: file)) }
        }
        // Imports: registered, part of this batch, or well-known (added here).
        var pending = added.map(\.file)
        while let file = pending.popLast() {
            for dependency in file.dependencies where next.indexByName[dependency] == nil {
                guard let known = WellKnownProtoFiles.all.first(where: { $0.name == dependency }) else {
                    throw ProtoDescriptorError(
                        code: .missingDependency,
                        message: "\(file.name) imports \(dependency), which is neither registered nor a well-known file")
                }
                _ = try next.insert(known)
                added.append(try Self.summary(of: known))
                pending.append(known)
            }
        }
        // Every symbol defined once across all files.
        if !added.isEmpty {
            var owner: [String: String] = [:]
            for file in next.files {
                let summary: FileSummary
                if let known = added.first(where: { $0.file.name == file.name }) {
                    summary = known
                } else {
                    summary = try Self.summary(of: file)
                }
                for symbol in summary.symbols {
                    if let other = owner.updateValue(file.name, forKey: symbol.name), other != file.name {
                        throw ProtoDescriptorError(
                            code: .duplicateSymbol, message: "\(symbol.name) is defined in both \(other) and \(file.name)")
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
        kindOf(symbol).map { files[$0.file] }
    }

    /// The kind of `symbol` (see ``file(containingSymbol:)``), if a registered file defines it.
    public func symbolKind(_ symbol: String) -> ProtoSymbolKind? {
        kindOf(symbol)?.kind
    }

    /// The file declaring extension `number` of the message `type` (fully qualified).
    public func file(containingExtension number: Int32, of type: String) -> ProtoFileDescriptor? {
        let type = Self.unqualified(type)
        for file in files {
            guard let summary = try? Self.summary(of: file) else { continue }
            if summary.extensions.contains(where: { $0.extendee == type && $0.number == number }) { return file }
        }
        return nil
    }

    /// The extension numbers the registered files declare for the message `type` (fully
    /// qualified), ascending; nil when no registered file defines such a message.
    public func extensionNumbers(of type: String) -> [Int32]? {
        let type = Self.unqualified(type)
        guard kindOf(type)?.kind == .message else { return nil }
        var numbers: [Int32] = []
        for file in files {
            guard let summary = try? Self.summary(of: file) else { continue }
            numbers += summary.extensions.filter { $0.extendee == type }.map(\.number)
        }
        return numbers.sorted()
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

    private func kindOf(_ symbol: String) -> (file: Int, kind: ProtoSymbolKind)? {
        let symbol = Self.unqualified(symbol)
        for (index, file) in files.enumerated() {
            guard let summary = try? Self.summary(of: file) else { continue }
            if !summary.package.isEmpty && !symbol.hasPrefix(summary.package + ".") { continue }
            if let found = summary.symbols.first(where: { $0.name == symbol }) { return (index, found.kind) }
        }
        return nil
    }

    private static func unqualified(_ name: String) -> String {
        name.hasPrefix(".") ? String(name.dropFirst()) : name
    }

    // MARK: Reading FileDescriptorProto

    /// What one file defines.
    struct FileSummary {
        var file: ProtoFileDescriptor
        var package = ""
        var symbols: [(name: String, kind: ProtoSymbolKind)] = []
        var extensions: [(extendee: String, number: Int32)] = []
    }

    /// Reads `file`'s descriptor and checks it against its name and dependencies.
    static func summary(of file: ProtoFileDescriptor) throws(ProtoDescriptorError) -> FileSummary {
        var summary = FileSummary(file: file)
        var name = ""
        var dependencies: [String] = []
        let failure = file.serializedBytes.withUnsafeBytes { raw -> ProtoWireError? in
            do throws(ProtoWireError) {
                var r = ProtoReader(raw)
                var messages: [UnsafeRawBufferPointer] = []
                var enums: [UnsafeRawBufferPointer] = []
                var services: [UnsafeRawBufferPointer] = []
                var extensions: [UnsafeRawBufferPointer] = []
                while let tag = try r.nextTag() {
                    switch tag.rawValue {
                    case 1 << 3 | 2: name = try r.readString()
                    case 2 << 3 | 2: summary.package = try r.readString()
                    case 3 << 3 | 2: dependencies.append(try r.readString())
                    case 4 << 3 | 2: messages.append(try r.readLengthDelimited())
                    case 5 << 3 | 2: enums.append(try r.readLengthDelimited())
                    case 6 << 3 | 2: services.append(try r.readLengthDelimited())
                    case 7 << 3 | 2: extensions.append(try r.readLengthDelimited())
                    default: try r.skipField()
                    }
                }
                // Package-level names come after the package, which may follow them on the wire.
                let scope = summary.package
                for bytes in messages { try readMessage(bytes, scope: scope, depth: 0, into: &summary) }
                for bytes in enums { try readEnum(bytes, scope: scope, into: &summary) }
                for bytes in services { try readService(bytes, scope: scope, into: &summary) }
                for bytes in extensions { try readExtension(bytes, scope: scope, into: &summary) }
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
        return summary
    }

    private static func join(_ scope: String, _ name: String) -> String {
        scope.isEmpty ? name : scope + "." + name
    }

    /// The `name` (field 1) of a descriptor message.
    private static func readName(_ bytes: UnsafeRawBufferPointer) throws(ProtoWireError) -> String {
        var r = ProtoReader(bytes)
        while let tag = try r.nextTag() {
            if tag.rawValue == 1 << 3 | 2 { return try r.readString() }
            try r.skipField()
        }
        return ""
    }

    /// `DescriptorProto`: the message, its fields, oneofs, extensions, nested messages and enums.
    private static func readMessage(
        _ bytes: UnsafeRawBufferPointer, scope: String, depth: Int, into summary: inout FileSummary
    ) throws(ProtoWireError) {
        guard depth < ProtoReader.maximumDepth else {
            throw ProtoWireError(code: .tooDeep, fieldNumber: 3, offset: nil, "message types nest deeper than \(ProtoReader.maximumDepth) levels")
        }
        let full = join(scope, try readName(bytes))
        summary.symbols.append((full, .message))
        var r = ProtoReader(bytes)
        while let tag = try r.nextTag() {
            switch tag.rawValue {
            case 2 << 3 | 2: summary.symbols.append((join(full, try readName(try r.readLengthDelimited())), .field))
            case 3 << 3 | 2: try readMessage(try r.readLengthDelimited(), scope: full, depth: depth + 1, into: &summary)
            case 4 << 3 | 2: try readEnum(try r.readLengthDelimited(), scope: full, into: &summary)
            case 6 << 3 | 2: try readExtension(try r.readLengthDelimited(), scope: full, into: &summary)
            case 8 << 3 | 2: summary.symbols.append((join(full, try readName(try r.readLengthDelimited())), .oneof))
            default: try r.skipField()
            }
        }
    }

    /// `EnumDescriptorProto`: the enum, and its values, which are scoped beside the enum (C++ rules).
    private static func readEnum(_ bytes: UnsafeRawBufferPointer, scope: String, into summary: inout FileSummary) throws(ProtoWireError) {
        summary.symbols.append((join(scope, try readName(bytes)), .enumeration))
        var r = ProtoReader(bytes)
        while let tag = try r.nextTag() {
            if tag.rawValue == 2 << 3 | 2 {
                summary.symbols.append((join(scope, try readName(try r.readLengthDelimited())), .enumValue))
            } else {
                try r.skipField()
            }
        }
    }

    /// `ServiceDescriptorProto`: the service and its methods.
    private static func readService(_ bytes: UnsafeRawBufferPointer, scope: String, into summary: inout FileSummary) throws(ProtoWireError) {
        let full = join(scope, try readName(bytes))
        summary.symbols.append((full, .service))
        var r = ProtoReader(bytes)
        while let tag = try r.nextTag() {
            if tag.rawValue == 2 << 3 | 2 {
                summary.symbols.append((join(full, try readName(try r.readLengthDelimited())), .method))
            } else {
                try r.skipField()
            }
        }
    }

    /// An extension `FieldDescriptorProto`: its name, number and extended type.
    private static func readExtension(_ bytes: UnsafeRawBufferPointer, scope: String, into summary: inout FileSummary) throws(ProtoWireError) {
        var r = ProtoReader(bytes)
        var name = ""
        var extendee = ""
        var number: Int32 = 0
        while let tag = try r.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 2: name = try r.readString()
            case 2 << 3 | 2: extendee = try r.readString()
            case 3 << 3 | 0: number = try r.readInt32()
            default: try r.skipField()
            }
        }
        summary.symbols.append((join(scope, name), .extension))
        summary.extensions.append((unqualified(extendee), number))
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
