import Foundation
import ProtoWire
import TestSupport
import Testing

/// Encodes text format with protoc (`--encode`, deterministic map order).
func protocEncode(_ type: String, _ text: String, file: String, in directory: String) throws -> [UInt8] {
    try runProtoc(["--encode=\(type)", "--deterministic_output"] + protoIncludes(directory) + [file], input: Array(text.utf8))
}

/// Decodes wire bytes to text format with protoc (`--decode`).
func protocDecode(_ type: String, _ bytes: [UInt8], file: String, in directory: String) throws -> String {
    String(decoding: try runProtoc(["--decode=\(type)"] + protoIncludes(directory) + [file], input: bytes), as: UTF8.self)
}

/// Encodes text format with protoc against csi.proto.
func csiEncode(_ type: String, _ text: String) throws -> [UInt8] {
    try protocEncode(type, text, file: "csi.proto", in: "Sources/CSI/Protos")
}

/// Decodes with protoc against csi.proto.
func csiDecode(_ type: String, _ bytes: [UInt8]) throws -> String {
    try protocDecode(type, bytes, file: "csi.proto", in: "Sources/CSI/Protos")
}

/// Encodes text format with protoc against the codec test proto.
func testEncode(_ type: String, _ text: String) throws -> [UInt8] {
    try protocEncode("protowire.test.\(type)", text, file: "codec_test.proto", in: "Tests/ProtoWireTests/Protos")
}

/// Decodes with protoc against the codec test proto.
func testDecode(_ type: String, _ bytes: [UInt8]) throws -> String {
    try protocDecode("protowire.test.\(type)", bytes, file: "codec_test.proto", in: "Tests/ProtoWireTests/Protos")
}
