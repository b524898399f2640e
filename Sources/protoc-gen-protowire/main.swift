// protoc-gen-protowire: a protoc plugin. protoc writes a CodeGeneratorRequest to stdin and
// reads a CodeGeneratorResponse from stdout.
//
//     protoc --plugin=protoc-gen-protowire=.build/debug/protoc-gen-protowire \
//         --protowire_out=Sources/CSI/Generated \
//         --protowire_opt=Namespace.pluginregistration=PluginRegistration \
//         -I Sources/CSI/Protos csi.proto
import Glibc
import ProtoWireGenerator

func fail(_ message: String) {
    let text = Array("protoc-gen-protowire: \(message)\n".utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

var input: [UInt8] = []
var chunk = [UInt8](repeating: 0, count: 65536)
while true {
    let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
    if n < 0 {
        if errno == EINTR { continue }
        fail("cannot read stdin (errno \(errno))")
        exit(1)
    }
    if n == 0 { break }
    input += chunk[0..<n]
}
let output = Generator.run(request: input)
var written = 0
while written < output.count {
    let n = output.withUnsafeBytes { write(1, $0.baseAddress! + written, $0.count - written) }
    if n < 0 {
        if errno == EINTR { continue }
        fail("cannot write stdout (errno \(errno))")
        exit(1)
    }
    written += n
}
