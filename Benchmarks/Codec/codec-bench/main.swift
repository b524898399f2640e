// codec-bench: encode and decode of one ~500-byte NodePublishVolumeRequest with ProtoWire and swift-protobuf.
// Prints one line per codec and operation: `codec op ns_per_op bytes`. Each figure is the fastest
// of several timed batches (the least disturbed by other load on the machine).
//
//   codec-bench [--batches N] [--write-sample FILE]
import CodecWorkloads
import CSI
import PeerMessages

#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to standard error.
func printError(_ message: String) {
    let line = message + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

nonisolated(unsafe) var sink = 0

/// Runs `body` in batches sized to ~50 ms and returns the fastest batch's nanoseconds per call.
func measure(batches: Int, _ body: () -> Int) -> Double {
    let clock = ContinuousClock()
    var iterations = 1
    while true {  // calibrate
        let t = clock.measure { for _ in 0..<iterations { sink &+= body() } }
        if t >= .milliseconds(50) { break }
        iterations *= 2
    }
    var best = Double.infinity
    for _ in 0..<batches {
        let t = clock.measure { for _ in 0..<iterations { sink &+= body() } }
        let ns = Double(t.components.seconds) * 1e9 + Double(t.components.attoseconds) / 1e9
        best = min(best, ns / Double(iterations))
    }
    return best
}

var batches = 7
var sampleFile: String?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--batches": batches = Int(arguments.popFirst() ?? "") ?? batches
    case "--write-sample": sampleFile = arguments.popFirst()
    default:
        printError("usage: codec-bench [--batches N] [--write-sample FILE]")
        exit(2)
    }
}

let peer = SwiftProtobufCodec.sample()
let peerBytes = SwiftProtobufCodec.encode(peer)
guard SwiftProtobufCodec.decode(peerBytes) == peer else {
    printError("codec-bench: swift-protobuf does not round-trip the sample")
    exit(1)
}
if let sampleFile {
    guard let f = fopen(sampleFile, "wb") else {
        printError("codec-bench: cannot write \(sampleFile)")
        exit(1)
    }
    _ = peerBytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
}

var results: [(String, String, Double, Int)] = []
results.append(("swift-protobuf", "encode", measure(batches: batches) { SwiftProtobufCodec.encode(peer).count }, peerBytes.count))
results.append(("swift-protobuf", "decode", measure(batches: batches) { SwiftProtobufCodec.decode(peerBytes)?.volumeID.utf8.count ?? 0 }, peerBytes.count))

// ProtoWire decodes the very bytes swift-protobuf wrote (map entries in its order), and must
// find the sample in them; its own encoding must carry the same number of bytes.
let ours = ProtoWireCodec.sample()
let ourBytes = ProtoWireCodec.encode(ours)
guard ProtoWireCodec.decode(peerBytes) == ours, ProtoWireCodec.decode(ourBytes) == ours, ourBytes.count == peerBytes.count
else {
    printError("codec-bench: ProtoWire and swift-protobuf disagree on the sample")
    exit(1)
}
results.append(("ProtoWire", "encode", measure(batches: batches) { ProtoWireCodec.encode(ours).count }, ourBytes.count))
results.append(("ProtoWire", "decode", measure(batches: batches) { ProtoWireCodec.decode(peerBytes)?.volumeID.utf8.count ?? 0 }, peerBytes.count))

for (codec, op, ns, size) in results {
    print("\(codec) \(op) \(String(format3(ns))) \(size)")
}
if sink == 42 { print("") }  // keeps the results alive

func format3(_ v: Double) -> String {
    let scaled = Int((v * 10).rounded())
    return "\(scaled / 10).\(scaled % 10)"
}
