import Foundation
import H2
import RPCCore
import ProtoWire
import TestSupport
import Testing

/// The package root, found from this file's path.
private let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Runs Debian's protoc with `arguments`, feeding `input` on stdin; returns stdout. Blocks the
/// calling thread until protoc exits: callers run with `.ownThread`.
private func runProtoc(_ arguments: [String], input: [UInt8]) throws -> [UInt8] {
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

private let haveProtoc = FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc")

/// The built-in services' embedded descriptors (health, reflection) are protoc's own, without
/// source info, as ProtoWireTests checks for CSI's and the well-known files.
@Suite struct EmbeddedDescriptorTests {
    @Test(.enabled(if: haveProtoc), .ownThread, arguments: ["health.proto", "reflection.proto", "reflection_v1alpha.proto"])
    func embeddedDescriptorIsProtocs(_ name: String) throws {
        let all = HealthService.protoFiles + ReflectionService.protoFiles
        let file = try #require(all.first { $0.name == name })
        let set = try runProtoc(
            ["--descriptor_set_out=/dev/stdout", "-I", "Sources/H2/Protos", "-I", "/usr/include", file.name], input: [])
        // FileDescriptorSet { repeated FileDescriptorProto file = 1; } with one file.
        var expected: [UInt8] = []
        try set.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
            var reader = ProtoReader(raw)
            while try reader.nextTag() != nil { expected = try reader.readBytes() }
        }
        let decode = ["--decode=google.protobuf.FileDescriptorProto", "-I", "/usr/include", "google/protobuf/descriptor.proto"]
        let ours = String(decoding: try runProtoc(decode, input: file.serializedBytes), as: UTF8.self)
        let theirs = String(decoding: try runProtoc(decode, input: expected), as: UTF8.self)
        #expect(ours == theirs)
        #expect(!ours.contains("\nsource_code_info {"))
        #expect(ours.contains("name: \"\(file.name)\""))
    }
}
