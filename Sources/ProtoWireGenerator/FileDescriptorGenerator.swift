// Emits each generated file's own descriptor: the FileDescriptorProto protoc sent, without
// source_code_info (comments and spans, which reflection clients do not use and grpc-go and
// grpcio do not serve either), as `<File>ProtoFile.descriptor`, a `ProtoFileDescriptor`.
internal import ProtoWire

extension Generator {
    /// The Swift name of a file's `<File>ProtoFile` enum (`csi.proto` -> `CsiProtoFile`).
    static func fileEnumName(_ file: FileDescriptor) -> String {
        Naming.upperCamel(outputName(for: file.name).replacingSuffix(".pb.swift")) + "ProtoFile"
    }

    /// `serialized` without field 9 (`source_code_info`); every other field is kept byte for byte.
    static func strippingSourceCodeInfo(_ serialized: [UInt8]) throws(ProtoWireError) -> [UInt8] {
        var kept = UnknownFields()
        let failure = serialized.withUnsafeBytes { raw -> ProtoWireError? in
            do throws(ProtoWireError) {
                var r = ProtoReader(raw)
                while let tag = try r.nextTag() {
                    if tag.rawValue >> 3 == 9 { try r.skipField() } else { try r.skipField(into: &kept) }
                }
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
        return kept.bytes
    }

    /// Writes `extension <File>ProtoFile { static let descriptor }` (or, when the file's messages
    /// are not generated, the enum itself) inside the file's namespace, if it has one.
    func generateFileDescriptor(_ file: FileDescriptor, declaringEnum: Bool, into out: inout SwiftWriter) throws(GeneratorError) {
        let bytes: [UInt8]
        do { bytes = try Self.strippingSourceCodeInfo(file.serialized) } catch {
            throw GeneratorError("\(file.name): cannot read the FileDescriptorProto protoc sent: \(error)")
        }
        let fileEnum = Self.fileEnumName(file)
        let namespace = options.namespaces[file.package]
        out.line()
        let nested = declaringEnum && namespace != nil
        if nested, let namespace {
            out.line("extension \(namespace) {")
            out.indent += 1
        }
        if declaringEnum {
            out.doc("The contents of `\(file.name)`.")
            out.line("public enum \(fileEnum) {")
        } else {
            out.line("extension \(namespace.map { $0 + "." } ?? "")\(fileEnum) {")
        }
        out.indent += 1
        out.doc(
            "`\(file.name)` as protoc described it: its `google.protobuf.FileDescriptorProto` without\n"
                + "source code info (\(bytes.count) bytes), for server reflection (`ProtoDescriptorRegistry`).")
        out.line("public static let descriptor = ProtoFileDescriptor(")
        out.indent += 1
        out.line("name: \(Self.literal(file.name)),")
        out.line("dependencies: [\(file.dependency.map(Self.literal).joined(separator: ", "))],")
        out.line("serializedBytes: [")
        let hex = Array("0123456789abcdef".utf8)
        var index = 0
        while index < bytes.count {
            let row = bytes[index..<min(index + 16, bytes.count)]
            var text: [UInt8] = []
            for byte in row {
                if !text.isEmpty { text.append(UInt8(ascii: " ")) }
                text += [UInt8(ascii: "0"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 15)], UInt8(ascii: ",")]
            }
            out.line("    " + String(decoding: text, as: UTF8.self))
            index += 16
        }
        out.line("])")
        out.indent -= 2
        out.line("}")
        if nested {
            out.indent -= 1
            out.line("}")
        }
    }

    /// A file holding only the descriptor (option `Messages=false`).
    func generateDescriptorOnly(_ file: FileDescriptor, declareNamespace: Bool) throws(GeneratorError) -> String {
        var out = SwiftWriter()
        Self.writeHeader(of: file, into: &out)
        if options.module != "ProtoWire" {
            out.line()
            out.line("public import ProtoWire")
        }
        if let namespace = options.namespaces[file.package], declareNamespace {
            Self.writeNamespace(namespace, of: file, into: &out)
        }
        try generateFileDescriptor(file, declaringEnum: true, into: &out)
        return out.text
    }

    /// A Swift string literal for a proto path or name.
    static func literal(_ s: String) -> String {
        var text = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case _ where scalar.value < 0x20: text += "\\u{\(String(scalar.value, radix: 16))}"
            default: text.unicodeScalars.append(scalar)
            }
        }
        return text + "\""
    }
}
