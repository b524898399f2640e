// The parts of google/protobuf/descriptor.proto and compiler/plugin.proto the generator
// needs, decoded by hand with ProtoReader (field numbers from those files).
internal import ProtoWire

/// `google.protobuf.compiler.CodeGeneratorRequest`.
struct CodeGeneratorRequest {
    var fileToGenerate: [String] = []
    var parameter = ""
    var protoFile: [FileDescriptor] = []

    init(_ bytes: UnsafeRawBufferPointer) throws(ProtoWireError) {
        var r = ProtoReader(bytes)
        while let tag = try r.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 2: fileToGenerate.append(try r.readString())
            case 2 << 3 | 2: parameter = try r.readString()
            case 15 << 3 | 2:
                let raw = try r.readLengthDelimited()
                var sub = ProtoReader(raw)
                var file = try FileDescriptor(&sub)
                file.serialized = [UInt8](raw)
                protoFile.append(file)
            default: try r.skipField()
            }
        }
    }
}

/// `google.protobuf.compiler.CodeGeneratorResponse`, encoded front to back.
struct CodeGeneratorResponse {
    struct File {
        var name: String
        var content: String
    }
    var error: String?
    var files: [File] = []
    /// FEATURE_PROTO3_OPTIONAL.
    var supportedFeatures: UInt64 = 1

    func serializedBytes() -> [UInt8] {
        var out: [UInt8] = []
        if let error { appendString(error, field: 1, to: &out) }
        appendTag(FieldNumber(2)!, .varint, to: &out)
        appendVarint(supportedFeatures, to: &out)
        for file in files {
            var body: [UInt8] = []
            appendString(file.name, field: 1, to: &body)
            appendString(file.content, field: 15, to: &body)
            appendTag(FieldNumber(15)!, .lengthDelimited, to: &out)
            appendVarint(UInt64(body.count), to: &out)
            out += body
        }
        return out
    }

    private func appendString(_ s: String, field: Int, to out: inout [UInt8]) {
        appendTag(FieldNumber(field)!, .lengthDelimited, to: &out)
        appendVarint(UInt64(s.utf8.count), to: &out)
        out += Array(s.utf8)
    }
}

/// `google.protobuf.FileDescriptorProto`.
struct FileDescriptor {
    var name = ""
    var package = ""
    var dependency: [String] = []
    var messageType: [MessageDescriptor] = []
    var enumType: [EnumDescriptor] = []
    var service: [ServiceDescriptor] = []
    var syntax = ""
    var locations: [SourceLocation] = []
    /// The `FileDescriptorProto` exactly as protoc sent it.
    var serialized: [UInt8] = []

    init(_ r: inout ProtoReader) throws(ProtoWireError) {
        while let tag = try r.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 2: name = try r.readString()
            case 2 << 3 | 2: package = try r.readString()
            case 3 << 3 | 2: dependency.append(try r.readString())
            case 4 << 3 | 2:
                var sub = try r.enterMessage()
                messageType.append(try MessageDescriptor(&sub))
            case 5 << 3 | 2:
                var sub = try r.enterMessage()
                enumType.append(try EnumDescriptor(&sub))
            case 6 << 3 | 2:
                var sub = try r.enterMessage()
                service.append(try ServiceDescriptor(&sub))
            case 9 << 3 | 2:
                // SourceCodeInfo { repeated Location location = 1; }
                var info = try r.enterMessage()
                while let t = try info.nextTag() {
                    if t.rawValue == 1 << 3 | 2 {
                        var sub = try info.enterMessage()
                        locations.append(try SourceLocation(&sub))
                    } else {
                        try info.skipField()
                    }
                }
            case 12 << 3 | 2: syntax = try r.readString()
            default: try r.skipField()
            }
        }
    }
}

/// `google.protobuf.SourceCodeInfo.Location`: the comments attached to one element.
struct SourceLocation {
    var path: [Int32] = []
    var leadingComments = ""
    var trailingComments = ""

    init(_ r: inout ProtoReader) throws(ProtoWireError) {
        while let tag = try r.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 0: path.append(try r.readInt32())
            case 1 << 3 | 2:
                var packed = try r.enterPacked()
                while !packed.isAtEnd { path.append(try packed.readInt32()) }
            case 3 << 3 | 2: leadingComments = try r.readString()
            case 4 << 3 | 2: trailingComments = try r.readString()
            default: try r.skipField()
            }
        }
    }
}

/// `google.protobuf.DescriptorProto`.
struct MessageDescriptor {
    var name = ""
    var field: [FieldDescriptor] = []
    var nestedType: [MessageDescriptor] = []
    var enumType: [EnumDescriptor] = []
    var oneofDecl: [String] = []
    var isMapEntry = false

    init(_ r: inout ProtoReader) throws(ProtoWireError) {
        while let tag = try r.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 2: name = try r.readString()
            case 2 << 3 | 2:
                var sub = try r.enterMessage()
                field.append(try FieldDescriptor(&sub))
            case 3 << 3 | 2:
                var sub = try r.enterMessage()
                nestedType.append(try MessageDescriptor(&sub))
            case 4 << 3 | 2:
                var sub = try r.enterMessage()
                enumType.append(try EnumDescriptor(&sub))
            case 7 << 3 | 2:
                // MessageOptions { optional bool map_entry = 7; }
                var sub = try r.enterMessage()
                while let t = try sub.nextTag() {
                    if t.rawValue == 7 << 3 | 0 { isMapEntry = try sub.readBool() } else { try sub.skipField() }
                }
            case 8 << 3 | 2:
                // OneofDescriptorProto { optional string name = 1; }
                var sub = try r.enterMessage()
                var oneofName = ""
                while let t = try sub.nextTag() {
                    if t.rawValue == 1 << 3 | 2 { oneofName = try sub.readString() } else { try sub.skipField() }
                }
                oneofDecl.append(oneofName)
            default: try r.skipField()
            }
        }
    }
}

/// `google.protobuf.FieldDescriptorProto`.
struct FieldDescriptor {
    enum Label: Int32 {
        case optional = 1
        case required = 2
        case repeated = 3
    }
    enum Kind: Int32 {
        case double = 1
        case float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes,
            uint32, enumeration, sfixed32, sfixed64, sint32, sint64
    }

    var name = ""
    var number: Int32 = 0
    var label: Label = .optional
    var kind: Kind = .int32
    var typeName = ""
    var oneofIndex: Int32?
    var proto3Optional = false
    var packedOption: Bool?
    /// The `csi.v1.csi_secret` option (FieldOptions extension 1059).
    var isSecret = false

    /// The FieldOptions extension number CSI uses to mark secret fields.
    static let csiSecretExtension: UInt32 = 1059

    init(_ r: inout ProtoReader) throws(ProtoWireError) {
        while let tag = try r.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 2: name = try r.readString()
            case 3 << 3 | 0: number = try r.readInt32()
            case 4 << 3 | 0: label = Label(rawValue: try r.readEnum()) ?? .optional
            case 5 << 3 | 0:
                let raw = try r.readEnum()
                guard let k = Kind(rawValue: raw) else {
                    throw ProtoWireError("field \(name): unknown field type \(raw)")
                }
                kind = k
            case 6 << 3 | 2: typeName = try r.readString()
            case 8 << 3 | 2:
                var sub = try r.enterMessage()
                while let t = try sub.nextTag() {
                    switch t.rawValue {
                    case 2 << 3 | 0: packedOption = try sub.readBool()
                    case FieldDescriptor.csiSecretExtension << 3 | 0: isSecret = try sub.readBool()
                    default: try sub.skipField()
                    }
                }
            case 9 << 3 | 0: oneofIndex = try r.readInt32()
            case 17 << 3 | 0: proto3Optional = try r.readBool()
            default: try r.skipField()
            }
        }
    }
}

/// `google.protobuf.EnumDescriptorProto`.
struct EnumDescriptor {
    var name = ""
    var values: [(name: String, number: Int32)] = []

    init(_ r: inout ProtoReader) throws(ProtoWireError) {
        while let tag = try r.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 2: name = try r.readString()
            case 2 << 3 | 2:
                var sub = try r.enterMessage()
                var valueName = ""
                var number: Int32 = 0
                while let t = try sub.nextTag() {
                    switch t.rawValue {
                    case 1 << 3 | 2: valueName = try sub.readString()
                    case 2 << 3 | 0: number = try sub.readInt32()
                    default: try sub.skipField()
                    }
                }
                values.append((valueName, number))
            default: try r.skipField()
            }
        }
    }
}

/// `google.protobuf.ServiceDescriptorProto` with its methods.
struct ServiceDescriptor {
    struct Method {
        var name = ""
        var inputType = ""
        var outputType = ""
        var clientStreaming = false
        var serverStreaming = false
    }
    var name = ""
    var methods: [Method] = []

    init(_ r: inout ProtoReader) throws(ProtoWireError) {
        while let tag = try r.nextTag() {
            switch tag.rawValue {
            case 1 << 3 | 2: name = try r.readString()
            case 2 << 3 | 2:
                var sub = try r.enterMessage()
                var m = Method()
                while let t = try sub.nextTag() {
                    switch t.rawValue {
                    case 1 << 3 | 2: m.name = try sub.readString()
                    case 2 << 3 | 2: m.inputType = try sub.readString()
                    case 3 << 3 | 2: m.outputType = try sub.readString()
                    case 5 << 3 | 0: m.clientStreaming = try sub.readBool()
                    case 6 << 3 | 0: m.serverStreaming = try sub.readBool()
                    default: try sub.skipField()
                    }
                }
                methods.append(m)
            default: try r.skipField()
            }
        }
    }
}
