import Foundation
import ProtoWire
import TestSupport
import Testing

/// The package root, found from this file's path.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Runs Debian's protoc with `arguments`, feeding `input` on stdin; returns stdout. It blocks the
/// calling thread until protoc exits: tests that call it run with `.ownThread`.
func runProtoc(_ arguments: [String], input: [UInt8]) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/protoc")
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
    let stdin = Pipe()
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let writer = Thread {
        stdin.fileHandleForWriting.write(Data(input))
        try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    let errors = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ProtoWireError("protoc \(arguments.joined(separator: " ")) failed: \(String(decoding: errors, as: UTF8.self))")
    }
    return [UInt8](output)
}

/// The include flags for a proto set.
func protoIncludes(_ directory: String) -> [String] { ["-I", directory, "-I", "/usr/include"] }

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

/// Whether protoc is installed (the cross-check tests need it; `make test` installs it).
let haveProtoc = FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc")
