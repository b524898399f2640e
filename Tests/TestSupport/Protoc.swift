// Debian's protoc, for the tests that check the package's protobuf code against it.
import Foundation
package import ProtoWire
package import Testing

/// The package root, found from this file's path.
package let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Whether protoc is installed (the cross-check tests need it; `make test` installs it).
package let haveProtoc = FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc")

/// Runs Debian's protoc with `arguments` in the package root, feeding `input` on stdin; returns
/// stdout. It blocks the calling thread until protoc exits: tests that call it run with `.ownThread`.
package func runProtoc(_ arguments: [String], input: [UInt8]) throws -> [UInt8] {
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

/// The include flags for the protos in `directory` (relative to the package root) and the
/// well-known ones.
package func protoIncludes(_ directory: String) -> [String] { ["-I", directory, "-I", "/usr/include"] }

/// Expects an embedded descriptor to be protoc's own, without source info: decoded by protoc, it
/// reads exactly like the descriptor set protoc writes for the same file, found in `directory`.
/// Blocks on protoc: tests that call it run with `.ownThread`.
package func expectDescriptorIsProtocs(
    _ file: ProtoFileDescriptor, in directory: String, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let set = try runProtoc(["--descriptor_set_out=/dev/stdout"] + protoIncludes(directory) + [file.name], input: [])
    // FileDescriptorSet { repeated FileDescriptorProto file = 1; } with one file.
    var expected: [UInt8] = []
    try set.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
        var reader = ProtoReader(raw)
        while try reader.nextTag() != nil { expected = try reader.readBytes() }
    }
    let decode = ["--decode=google.protobuf.FileDescriptorProto", "-I", "/usr/include", "google/protobuf/descriptor.proto"]
    let ours = String(decoding: try runProtoc(decode, input: file.serializedBytes), as: UTF8.self)
    let theirs = String(decoding: try runProtoc(decode, input: expected), as: UTF8.self)
    #expect(ours == theirs, sourceLocation: sourceLocation)
    #expect(!ours.contains("\nsource_code_info {"), sourceLocation: sourceLocation)
    #expect(ours.contains("name: \"\(file.name)\""), sourceLocation: sourceLocation)
}
