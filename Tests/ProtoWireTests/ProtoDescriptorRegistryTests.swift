import CSI
import Foundation
import ProtoWire
import TestSupport
import Testing

/// A minimal `FileDescriptorProto`: name, package, imports and empty messages.
func fileDescriptorBytes(_ name: String, package: String, dependencies: [String] = [], messages: [String] = []) -> [UInt8] {
    func string(_ field: Int, _ value: String, into out: inout [UInt8]) {
        appendTag(FieldNumber(field)!, .lengthDelimited, to: &out)
        appendVarint(UInt64(value.utf8.count), to: &out)
        out += Array(value.utf8)
    }
    var out: [UInt8] = []
    string(1, name, into: &out)
    string(2, package, into: &out)
    for dependency in dependencies { string(3, dependency, into: &out) }
    for message in messages {
        var body: [UInt8] = []
        string(1, message, into: &body)
        appendTag(FieldNumber(4)!, .lengthDelimited, to: &out)
        appendVarint(UInt64(body.count), to: &out)
        out += body
    }
    return out
}

func fileDescriptor(_ name: String, package: String, dependencies: [String] = [], messages: [String] = []) -> ProtoFileDescriptor {
    ProtoFileDescriptor(
        name: name, dependencies: dependencies,
        serializedBytes: fileDescriptorBytes(name, package: package, dependencies: dependencies, messages: messages))
}

@Suite struct ProtoDescriptorRegistryTests {
    let registry: ProtoDescriptorRegistry

    init() throws {
        registry = try ProtoDescriptorRegistry([CsiProtoFile.descriptor])
    }

    @Test func addsTheWellKnownImports() {
        #expect(
            registry.files.map(\.name) == [
                "csi.proto", "google/protobuf/descriptor.proto", "google/protobuf/timestamp.proto",
                "google/protobuf/wrappers.proto",
            ])
        #expect(CsiProtoFile.descriptor.dependencies == [
            "google/protobuf/descriptor.proto", "google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto",
        ])
        #expect(registry.file(named: "google/protobuf/wrappers.proto") == WrappersProtoFile.descriptor)
        #expect(registry.file(named: "wrappers.proto") == nil)
    }

    @Test(arguments: [
        ("csi.v1.Controller", ProtoSymbolKind.service),
        ("csi.v1.Controller.CreateVolume", .method),
        ("csi.v1.CreateVolumeRequest", .message),
        (".csi.v1.CreateVolumeRequest", .message),
        ("csi.v1.CreateVolumeRequest.name", .field),
        ("csi.v1.CreateVolumeRequest.ParametersEntry", .message),
        ("csi.v1.VolumeCapability.AccessMode", .message),
        ("csi.v1.VolumeCapability.AccessMode.Mode", .enumeration),
        ("csi.v1.VolumeCapability.AccessMode.SINGLE_NODE_WRITER", .enumValue),
        ("csi.v1.VolumeCapability.access_type", .oneof),
        ("csi.v1.PluginCapability.Service.Type", .enumeration),
        ("csi.v1.csi_secret", .extension),
    ])
    func findsCSISymbols(_ symbol: String, _ kind: ProtoSymbolKind) {
        #expect(registry.file(containingSymbol: symbol)?.name == "csi.proto")
        #expect(registry.symbolKind(symbol) == kind)
    }

    @Test func findsWellKnownSymbolsInTheirOwnFiles() {
        #expect(registry.file(containingSymbol: "google.protobuf.Int64Value")?.name == "google/protobuf/wrappers.proto")
        #expect(registry.file(containingSymbol: "google.protobuf.Timestamp.seconds")?.name == "google/protobuf/timestamp.proto")
        #expect(registry.file(containingSymbol: "google.protobuf.FieldDescriptorProto.TYPE_INT32")?.name == "google/protobuf/descriptor.proto")
    }

    @Test(arguments: [
        "csi.v1.NoSuchMessage", "csi.v1.CreateVolumeRequest.no_such_field", "csi.v1", "csi", "", ".",
        "csi.v1.VolumeCapability.AccessMode.Mode.SINGLE_NODE_WRITER",  // values live beside their enum
        "CreateVolumeRequest",
    ])
    func unknownSymbolsAreNotFound(_ symbol: String) {
        #expect(registry.file(containingSymbol: symbol) == nil)
        #expect(registry.symbolKind(symbol) == nil)
    }

    @Test func extensionNumbersOfAType() {
        #expect(registry.extensionNumbers(of: "google.protobuf.FieldOptions") == [1059, 1060])
        #expect(registry.extensionNumbers(of: ".google.protobuf.MethodOptions") == [1060])
        #expect(registry.extensionNumbers(of: "csi.v1.Volume") == [])
        #expect(registry.extensionNumbers(of: "csi.v1.NoSuchMessage") == nil)
        #expect(registry.extensionNumbers(of: "csi.v1.Controller") == nil)  // a service, not a message
    }

    @Test func fileContainingAnExtension() {
        #expect(registry.file(containingExtension: 1059, of: "google.protobuf.FieldOptions")?.name == "csi.proto")
        #expect(registry.file(containingExtension: 1060, of: ".google.protobuf.ServiceOptions")?.name == "csi.proto")
        #expect(registry.file(containingExtension: 1059, of: "google.protobuf.MethodOptions") == nil)
        #expect(registry.file(containingExtension: 1, of: "csi.v1.Volume") == nil)
    }

    @Test func dependenciesComeBreadthFirstOnce() throws {
        let a = fileDescriptor("a.proto", package: "a", dependencies: ["b.proto", "c.proto"], messages: ["A"])
        let b = fileDescriptor("b.proto", package: "b", dependencies: ["c.proto"], messages: ["B"])
        let c = fileDescriptor("c.proto", package: "c", dependencies: ["google/protobuf/wrappers.proto"], messages: ["C"])
        let registry = try ProtoDescriptorRegistry([a, b, c])  // any order within one batch
        #expect(registry.withDependencies(a).map(\.name) == ["a.proto", "b.proto", "c.proto", "google/protobuf/wrappers.proto"])
        #expect(registry.withDependencies(b).map(\.name) == ["b.proto", "c.proto", "google/protobuf/wrappers.proto"])
        #expect(registry.file(containingSymbol: "c.C") == c)
    }

    @Test func registeringTheSameFileTwiceIsANoOp() throws {
        var registry = self.registry
        try registry.register([CsiProtoFile.descriptor, WrappersProtoFile.descriptor])
        #expect(registry.files.count == 4)
    }

    @Test func missingImportIsAnError() {
        let file = fileDescriptor("a.proto", package: "a", dependencies: ["nowhere/b.proto"])
        let error = #expect(throws: ProtoDescriptorError.self) { try ProtoDescriptorRegistry([file]) }
        #expect(error?.code == .missingDependency)
        #expect(error?.message.contains("a.proto imports nowhere/b.proto") == true)
    }

    @Test func symbolDefinedTwiceIsAnError() {
        var registry = self.registry
        let file = fileDescriptor("other.proto", package: "csi.v1", messages: ["Snapshot"])
        let error = #expect(throws: ProtoDescriptorError.self) { try registry.register([file]) }
        #expect(error?.code == .duplicateSymbol)
        #expect(error?.message == "csi.v1.Snapshot is defined in both csi.proto and other.proto")
        #expect(registry.files.count == 4)  // nothing added
    }

    @Test func differentFileUnderATakenNameIsAnError() {
        var registry = self.registry
        let file = fileDescriptor("csi.proto", package: "elsewhere")
        let error = #expect(throws: ProtoDescriptorError.self) { try registry.register([file]) }
        #expect(error?.code == .duplicateFile)
    }

    @Test func descriptorMustAgreeWithItsBytes() {
        let bytes = fileDescriptorBytes("a.proto", package: "a")
        let renamed = ProtoFileDescriptor(name: "b.proto", dependencies: [], serializedBytes: bytes)
        let error = #expect(throws: ProtoDescriptorError.self) { try ProtoDescriptorRegistry([renamed]) }
        #expect(error?.code == .mismatch)
        let truncated = ProtoFileDescriptor(name: "a.proto", dependencies: [], serializedBytes: Array(bytes.dropLast()))
        let malformed = #expect(throws: ProtoDescriptorError.self) { try ProtoDescriptorRegistry([truncated]) }
        #expect(malformed?.code == .malformed)
        #expect(malformed?.underlying?.code == .lengthOutOfBounds)
    }

    /// The embedded descriptors are protoc's own, without source info: decoded by protoc they
    /// read exactly like the descriptor set protoc writes for the same files.
    @Test(.enabled(if: haveProtoc), .ownThread, arguments: [
        ("Sources/CSI/Protos", "csi.proto"),
        ("Sources/CSI/Protos", "pluginregistration.proto"),
        ("/usr/include", "google/protobuf/descriptor.proto"),
        ("/usr/include", "google/protobuf/timestamp.proto"),
        ("/usr/include", "google/protobuf/wrappers.proto"),
        ("/usr/include", "google/protobuf/duration.proto"),
        ("/usr/include", "google/protobuf/empty.proto"),
    ])
    func embeddedDescriptorIsProtocs(_ directory: String, _ name: String) throws {
        let all =
            [CsiProtoFile.descriptor, PluginRegistration.PluginregistrationProtoFile.descriptor]
            + WellKnownProtoFiles.all
        let file = try #require(all.first { $0.name == name })
        try expectDescriptorIsProtocs(file, in: directory)
    }
}
