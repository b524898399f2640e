import Foundation
import ProtoWire
import ProtoWireGenerator
import TestSupport
import Testing

/// Regenerates the committed Swift in-process (protoc parses, ProtoWireGenerator generates)
/// and fails when it differs from what is committed: run `bash scripts/generate.sh` then.
@Suite struct GeneratedCodeIsCurrentTests {
    static let sets: [(protos: String, generated: String, options: String, file: String)] = [
        ("Sources/CSI/Protos", "Sources/CSI/Generated", "Namespace.pluginregistration=PluginRegistration", "csi.proto"),
        ("Sources/CSI/Protos", "Sources/CSI/Generated", "Namespace.pluginregistration=PluginRegistration", "pluginregistration.proto"),
        ("Tests/ProtoWireTests/Protos", "Tests/ProtoWireTests/Generated", "Namespace.protowire.test=TestProtos", "codec_test.proto"),
        ("Tests/ProtoWireTests/Protos", "Tests/ProtoWireTests/Generated", "Namespace.protowire.test=TestProtos", "wellknown_test.proto"),
        ("Sources/H2/Protos", "Sources/H2/Generated", h2Options, "health.proto"),
        ("Sources/H2/Protos", "Sources/H2/Generated", h2Options, "reflection.proto"),
        ("Sources/H2/Protos", "Sources/H2/Generated", "Messages=false", "reflection_v1alpha.proto"),
        ("/usr/include", "Sources/ProtoWire/Generated", wellKnownOptions, "google/protobuf/descriptor.proto"),
        ("/usr/include", "Sources/ProtoWire/Generated", wellKnownOptions, "google/protobuf/timestamp.proto"),
        ("/usr/include", "Sources/ProtoWire/Generated", wellKnownOptions, "google/protobuf/wrappers.proto"),
        ("/usr/include", "Sources/ProtoWire/Generated", wellKnownOptions, "google/protobuf/duration.proto"),
        ("/usr/include", "Sources/ProtoWire/Generated", wellKnownOptions, "google/protobuf/empty.proto"),
    ]
    static let h2Options = "Services=false,Namespace.grpc.health.v1=GRPCHealth,Namespace.grpc.reflection.v1=GRPCReflection"
    static let wellKnownOptions = "Messages=false,Module=ProtoWire"

    @Test(.enabled(if: haveProtoc), .ownThread, arguments: 0..<sets.count)
    func committedGeneratedCodeIsCurrent(_ index: Int) throws {
        let set = Self.sets[index]
        let (files, failure) = try generateInProcess([set.file], includes: protoIncludes(set.protos), options: set.options)
        #expect(failure == nil)
        #expect(files.count == 1)
        for (name, content) in files {
            let path = packageRoot + "/" + set.generated + "/" + name
            let committed = try String(contentsOfFile: path, encoding: .utf8)
            let current = committed == content
            #expect(current, "\(set.generated)/\(name) is stale: run 'bash scripts/generate.sh' and commit the result")
        }
    }
}

/// Runs protoc to parse `files` (with imports and comments), then the generator in-process;
/// returns the generated files by name and the generator's error, if any.
func generateInProcess(_ protoFiles: [String], includes: [String], options: String) throws -> ([String: String], String?) {
    let descriptorSet = try runProtoc(
        ["--descriptor_set_out=/dev/stdout", "--include_imports", "--include_source_info"] + includes + protoFiles, input: [])
    // FileDescriptorSet.file (1) -> CodeGeneratorRequest.proto_file (15).
    var request: [UInt8] = []
    for file in protoFiles {
        appendTag(FieldNumber(1)!, .lengthDelimited, to: &request)
        appendVarint(UInt64(file.utf8.count), to: &request)
        request += Array(file.utf8)
    }
    appendTag(FieldNumber(2)!, .lengthDelimited, to: &request)
    appendVarint(UInt64(options.utf8.count), to: &request)
    request += Array(options.utf8)
    try descriptorSet.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
        var reader = ProtoReader(raw)
        while let tag = try reader.nextTag() {
            guard tag.rawValue == 0x0a else {
                try reader.skipField()
                continue
            }
            let file = try reader.readLengthDelimited()
            appendTag(FieldNumber(15)!, .lengthDelimited, to: &request)
            appendVarint(UInt64(file.count), to: &request)
            request += Array(file)
        }
    }
    let response = Generator.run(request: request)
    var files: [String: String] = [:]
    var failure: String?
    try response.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
        var reader = ProtoReader(raw)
        while let tag = try reader.nextTag() {
            switch tag.rawValue {
            case 0x0a: failure = try reader.readString()
            case 0x7a:
                var file = try reader.enterMessage()
                var name = ""
                var content = ""
                while let t = try file.nextTag() {
                    switch t.rawValue {
                    case 0x0a: name = try file.readString()
                    case 0x7a: content = try file.readString()
                    default: try file.skipField()
                    }
                }
                files[name] = content
            default: try reader.skipField()
            }
        }
    }
    return (files, failure)
}

/// The generator on protos beyond CSI: proto2 (descriptor.proto), recursive types through maps
/// and oneofs (struct.proto), and bad options.
@Suite struct GeneratorTests {
    @Test(.enabled(if: haveProtoc), .ownThread)
    func generatesProto2AndRecursiveWellKnownProtos() throws {
        let (files, failure) = try generateInProcess(
            ["google/protobuf/descriptor.proto", "google/protobuf/struct.proto", "google/protobuf/any.proto"],
            includes: ["-I", "/usr/include"], options: "Services=false,Namespace.google.protobuf=GP")
        #expect(failure == nil)
        #expect(Set(files.keys) == ["descriptor.pb.swift", "struct.pb.swift", "any.pb.swift"])
        let descriptor = files["descriptor.pb.swift"] ?? ""
        #expect(descriptor.contains("public enum GP: Sendable {}"))
        #expect(descriptor.contains("public var number: Int32? = nil"))  // proto2 optional: presence
        #expect(descriptor.contains("public var mapEntry: Bool? = nil"))
        #expect(!descriptor.contains("import H2"))
        #expect(!descriptor.contains("import RPCCore"))
        let structFile = files["struct.pb.swift"] ?? ""
        #expect(!structFile.contains("public enum GP: Sendable {}"))  // declared once per run
        #expect(structFile.contains("public var fields: [String: GP.Value] = [String: GP.Value]()"))
        #expect(structFile.contains("case structValue(GP.Struct)"))
    }

    @Test(.enabled(if: haveProtoc), .ownThread)
    func descriptorOnlyOutput() throws {
        let includes = protoIncludes("Sources/CSI/Protos")
        let (files, failure) = try generateInProcess(["pluginregistration.proto"], includes: includes, options: "Messages=false")
        #expect(failure == nil)
        let text = try #require(files["pluginregistration.pb.swift"])
        #expect(text.contains("public import ProtoWire\n"))
        #expect(text.contains("public enum PluginregistrationProtoFile {"))
        #expect(text.contains("public static let descriptor = ProtoFileDescriptor("))
        #expect(text.contains("name: \"pluginregistration.proto\","))
        #expect(!text.contains("struct "))
        #expect(!text.contains("import H2"))
        #expect(!text.contains("import RPCCore"))
        let (inModule, _) = try generateInProcess(
            ["pluginregistration.proto"], includes: includes, options: "Messages=false,Module=ProtoWire")
        #expect(inModule["pluginregistration.pb.swift"]?.contains("import ProtoWire") == false)
        // With messages, the descriptor is a separate extension of the file's enum.
        let (full, _) = try generateInProcess(
            ["pluginregistration.proto"], includes: includes, options: "Namespace.pluginregistration=PR")
        #expect(full["pluginregistration.pb.swift"]?.contains("extension PR.PluginregistrationProtoFile {") == true)
        for bad in ["Messages=maybe", "Module="] {
            let (none, error) = try generateInProcess(["pluginregistration.proto"], includes: includes, options: bad)
            #expect(none.isEmpty)
            #expect(error?.contains(bad) == true)
        }
    }

    @Test(.enabled(if: haveProtoc), .ownThread)
    func rejectsUnknownOptions() throws {
        let (files, failure) = try generateInProcess(
            ["pluginregistration.proto"], includes: protoIncludes("Sources/CSI/Protos"), options: "Bogus=1")
        #expect(files.isEmpty)
        #expect(failure?.contains("Bogus=1") == true)
    }
}
