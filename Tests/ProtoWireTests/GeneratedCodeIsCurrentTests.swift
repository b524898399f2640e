import Foundation
import ProtoWire
import ProtoWireGenerator
import Testing

/// Regenerates the committed Swift in-process (protoc parses, ProtoWireGenerator generates)
/// and fails when it differs from what is committed: run `bash scripts/generate.sh` then.
@Suite struct GeneratedCodeIsCurrentTests {
    static let sets: [(protos: String, generated: String, options: String, file: String)] = [
        ("Sources/CSI/Protos", "Sources/CSI/Generated", "Namespace.pluginregistration=PluginRegistration", "csi.proto"),
        ("Sources/CSI/Protos", "Sources/CSI/Generated", "Namespace.pluginregistration=PluginRegistration", "pluginregistration.proto"),
        ("Tests/ProtoWireTests/Protos", "Tests/ProtoWireTests/Generated", "Namespace.protowire.test=TestProtos", "codec_test.proto"),
    ]

    @Test(.enabled(if: haveProtoc), arguments: 0..<sets.count)
    func committedGeneratedCodeIsCurrent(_ index: Int) throws {
        let set = Self.sets[index]
        let descriptorSet = try runProtoc(
            ["--descriptor_set_out=/dev/stdout", "--include_imports", "--include_source_info"]
                + protoIncludes(set.protos) + [set.file], input: [])
        // FileDescriptorSet.file (1) -> CodeGeneratorRequest.proto_file (15).
        var request: [UInt8] = []
        appendTag(FieldNumber(1)!, .lengthDelimited, to: &request)
        appendVarint(UInt64(set.file.utf8.count), to: &request)
        request += Array(set.file.utf8)
        appendTag(FieldNumber(2)!, .lengthDelimited, to: &request)
        appendVarint(UInt64(set.options.utf8.count), to: &request)
        request += Array(set.options.utf8)
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
