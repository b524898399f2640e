// protowire: a small tool around the ProtoWire codec and the generated CSI types.
//
//   protowire demo                                 encode, decode and check a sample CSI request
//   protowire decode csi.v1.X [file|-]             binary protobuf in, its proto3 JSON out
//   protowire encode csi.v1.X [file|-]             proto3 JSON in, binary protobuf out
//   protowire raw [file|-]                         print the fields of any wire data, no schema
//   protowire bench [iterations]                   time encode/decode of the demo's sample (use -c release)
import CSI
import Glibc
import ProtoWire

/// Writes `text` to a file descriptor.
func emit(_ text: String, to fd: Int32 = 1) {
    var bytes = Array(text.utf8)
    if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        written += n
    }
}

/// Prints `message` to stderr and exits with `code`.
func fail(_ message: String, code: Int32 = 1) -> Never {
    emit("protowire: " + message, to: 2)
    exit(code)
}

let usage = """
    usage: protowire demo
           protowire decode [--show-secrets] [--proto-names] <message> [file|-]
           protowire encode [--ignore-unknown] <message> [file|-]
           protowire types
           protowire raw [file|-]
           protowire bench [iterations [encode|decode]]
    """

/// Reads a whole file, or stdin for `-` or no path.
func readInput(_ path: String?) -> [UInt8] {
    let fd: Int32
    if let path, path != "-" {
        fd = open(path, O_RDONLY)
        if fd < 0 { fail("cannot open \(path): \(String(cString: strerror(errno)))") }
    } else {
        fd = 0
    }
    defer { if fd != 0 { close(fd) } }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            fail("cannot read \(path ?? "stdin"): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        data += chunk[0..<n]
    }
    return data
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var lines: [String] = []
    var index = 0
    while index < bytes.count {
        let row = bytes[index..<min(index + 32, bytes.count)]
        var line = String(index, radix: 16)
        line = String(repeating: "0", count: max(0, 4 - line.count)) + line + "  "
        for byte in row {
            line.append(digits[Int(byte >> 4)])
            line.append(digits[Int(byte & 15)])
        }
        lines.append(line)
        index += 32
    }
    return lines.joined(separator: "\n")
}

/// The sample the demo encodes: a NodePublishVolumeRequest with maps, a nested capability and secrets.
func sampleRequest() -> NodePublishVolumeRequest {
    NodePublishVolumeRequest(
        volumeID: "pvc-5f1c2a9e-7d3b-4c8e-9a61-2b7f0d4e8c13",
        publishContext: ["devicePath": "/dev/csi-lvm/vg0/pvc-5f1c2a9e", "lvm.csi.io/vg": "vg0"],
        stagingTargetPath: "/var/lib/kubelet/plugins/kubernetes.io/csi/lvm.csi.io/1b2c3d/globalmount",
        targetPath: "/var/lib/kubelet/pods/0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7/volumes/kubernetes.io~csi/pvc-5f1c2a9e/mount",
        volumeCapability: VolumeCapability(
            accessMode: VolumeCapability.AccessMode(mode: .singleNodeWriter),
            accessType: .mount(VolumeCapability.MountVolume(fsType: "ext4", mountFlags: ["noatime", "nodiratime"]))),
        readonly: true,
        secrets: ["password": "s3cr3t-hunter2", "username": "admin"],
        volumeContext: [
            "csi.storage.k8s.io/pod.name": "web-0", "csi.storage.k8s.io/pod.namespace": "default",
            "csi.storage.k8s.io/pod.uid": "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7",
        ])
}

func demo() -> Int32 {
    let request = sampleRequest()
    let bytes = request.serializedBytes()
    emit("encoded \(NodePublishVolumeRequest.protoMessageName): \(bytes.count) bytes")
    emit(hex(bytes))
    let decoded: NodePublishVolumeRequest
    do {
        decoded = try NodePublishVolumeRequest(serializedBytes: bytes)
    } catch {
        emit("decode failed: \(error)", to: 2)
        return 1
    }
    emit("decoded: \(decoded)")
    emit(
        "secret fields: \(NodePublishVolumeRequest.protoSecretFieldNames.joined(separator: ", ")) (\(decoded.protoSecretValueCount) values, redacted)"
    )
    guard decoded == request else {
        emit("MISMATCH: the decoded message differs from the one encoded", to: 2)
        return 1
    }
    guard decoded.serializedBytes() == bytes else {
        emit("MISMATCH: re-encoding the decoded message gives different bytes", to: 2)
        return 1
    }
    guard !decoded.description.contains("s3cr3t-hunter2") else {
        emit("LEAK: the description shows a secret value", to: 2)
        return 1
    }
    emit("round trip: equal, re-encoding byte-identical")
    return 0
}

/// Every generated message type by its protobuf name.
let messageTypes: [String: any ProtoCodable.Type] = {
    var types: [String: any ProtoCodable.Type] = [:]
    for type in CsiProtoFile.messageTypes + PluginRegistration.PluginregistrationProtoFile.messageTypes {
        types[type.protoMessageName] = type
    }
    return types
}()

/// The generated type named `typeName`, or a failure naming a few known ones.
func messageType(_ typeName: String) -> any ProtoCodable.Type {
    guard let type = messageTypes[typeName] else {
        fail(
            "unknown message type '\(typeName)'; known types include csi.v1.NodePublishVolumeRequest, pluginregistration.PluginInfo (\(messageTypes.count) in all; `protowire types` lists them)"
        )
    }
    return type
}

/// Binary protobuf in, proto3 JSON out. The bytes are first decoded strictly by the generated
/// type, so malformed input fails with the generated decoder's message. Secret fields print as
/// "***stripped***" unless `showSecrets`.
func decode(typeName: String, path: String?, showSecrets: Bool, protoNames: Bool) -> Int32 {
    let type = messageType(typeName)
    let bytes = readInput(path)
    do {
        _ = try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> any ProtoCodable in
            try type.init(serializedBytes: raw)
        }
    } catch {
        fail("cannot decode \(bytes.count) bytes as \(typeName): \(error)")
    }
    do {
        let options = ProtoJSONCoder.Options(preservingProtoFieldNames: protoNames, strippingSecrets: !showSecrets)
        emit(try ProtoJSONCoder.csi.json(fromWire: bytes, messageType: typeName, options: options))
        return 0
    } catch {
        fail("cannot write \(typeName) as JSON: \(error)")
    }
}

/// proto3 JSON in, binary protobuf out (written to stdout as it is).
func encode(typeName: String, path: String?, ignoreUnknown: Bool) -> Int32 {
    let type = messageType(typeName)
    let input = readInput(path)
    guard let text = String(validating: input, as: UTF8.self) else { fail("the JSON input is not valid UTF-8") }
    let bytes: [UInt8]
    do {
        bytes = try ProtoJSONCoder.csi.wire(
            fromJSON: text, messageType: typeName, options: ProtoJSONCoder.Options(ignoringUnknownFields: ignoreUnknown))
        _ = try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> any ProtoCodable in
            try type.init(serializedBytes: raw)
        }
    } catch {
        fail("cannot read \(typeName) from JSON: \(error)")
    }
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + written, $0.count - written) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { fail("cannot write to stdout: \(String(cString: strerror(errno)))") }
        written += n
    }
    return 0
}

func raw(path: String?) -> Int32 {
    let bytes = readInput(path)
    do {
        let fields = try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> [ProtoRawFields.Field] in
            try ProtoRawFields.parse(raw)
        }
        emit(fields.isEmpty ? "(no fields)" : ProtoRawFields.render(fields))
        return 0
    } catch {
        fail("malformed wire data (\(bytes.count) bytes): \(error)")
    }
}

/// Times encoding and decoding of the demo's sample: the best of 7 rounds, in ns per message.
func bench(iterations: Int, only: String?) -> Int32 {
    let request = sampleRequest()
    let bytes = request.serializedBytes()
    let clock = ContinuousClock()
    var sink = 0
    func perOp(_ d: Duration) -> Double {
        let (seconds, attoseconds) = d.components
        return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(iterations)
    }
    var encode = Double.infinity
    var size = Double.infinity
    var decode = Double.infinity
    for _ in 0..<7 {
        var start = clock.now
        if only != "decode" {
            for _ in 0..<iterations { sink &+= request.serializedBytes().count }
            encode = min(encode, perOp(clock.now - start))
            start = clock.now
            for _ in 0..<iterations { sink &+= request.protoEncodedSize }
            size = min(size, perOp(clock.now - start))
        }
        start = clock.now
        if only != "encode" {
            bytes.withUnsafeBytes { raw in
                for _ in 0..<iterations {
                    do {
                        let decoded = try NodePublishVolumeRequest(serializedBytes: raw)
                        sink &+= decoded.volumeID.utf8.count
                    } catch {
                        fail("decode failed: \(error)")
                    }
                }
            }
            decode = min(decode, perOp(clock.now - start))
        }
    }
    func format(_ ns: Double) -> String {
        guard ns.isFinite else { return "-" }
        let tenths = Int((ns * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) ns"
    }
    emit("NodePublishVolumeRequest, \(bytes.count) bytes, best of 7 rounds x \(iterations):")
    emit("  encode (size + write, one allocation): \(format(encode))")
    emit("  size only:                             \(format(size))")
    emit("  decode:                                \(format(decode))")
    emit("  (checksum \(sink))")
    return 0
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else { fail("missing command\n" + usage, code: 2) }
arguments.removeFirst()
switch command {
case "demo":
    guard arguments.isEmpty else { fail("demo takes no arguments\n" + usage, code: 2) }
    exit(demo())
case "decode", "encode":
    // decode|encode [flags] <message> [file|-]; `--type NAME` is kept as an alias for the name.
    var typeName: String?
    var path: String?
    var flags: Set<String> = []
    let allowed: Set<String> = command == "decode" ? ["--show-secrets", "--proto-names"] : ["--ignore-unknown"]
    while let argument = arguments.first {
        arguments.removeFirst()
        if argument == "--type" {
            guard let value = arguments.first else { fail("--type needs a message name\n" + usage, code: 2) }
            typeName = value
            arguments.removeFirst()
        } else if argument.hasPrefix("--type=") {
            typeName = String(argument.dropFirst("--type=".count))
        } else if allowed.contains(argument) {
            flags.insert(argument)
        } else if argument.hasPrefix("--") {
            fail("\(command): unknown flag '\(argument)'\n" + usage, code: 2)
        } else if typeName == nil {
            typeName = argument
        } else if path == nil {
            path = argument
        } else {
            fail("unexpected argument '\(argument)'\n" + usage, code: 2)
        }
    }
    guard let typeName else { fail("\(command) needs a message name\n" + usage, code: 2) }
    if command == "decode" {
        exit(decode(typeName: typeName, path: path, showSecrets: flags.contains("--show-secrets"), protoNames: flags.contains("--proto-names")))
    }
    exit(encode(typeName: typeName, path: path, ignoreUnknown: flags.contains("--ignore-unknown")))
case "types":
    guard arguments.isEmpty else { fail("types takes no arguments\n" + usage, code: 2) }
    emit(messageTypes.keys.sorted().joined(separator: "\n"))
case "raw":
    guard arguments.count <= 1 else { fail("raw takes at most one file\n" + usage, code: 2) }
    exit(raw(path: arguments.first))
case "bench":
    guard arguments.count <= 2 else { fail("bench takes an iteration count and encode|decode\n" + usage, code: 2) }
    let iterations = arguments.first.map { Int($0) ?? -1 } ?? 200_000
    guard iterations > 0 else { fail("bench: the iteration count must be a positive integer\n" + usage, code: 2) }
    let only = arguments.count == 2 ? arguments[1] : nil
    guard only == nil || only == "encode" || only == "decode" else { fail("bench: expected encode or decode\n" + usage, code: 2) }
    exit(bench(iterations: iterations, only: only))
case "-h", "--help", "help":
    emit(usage)
default:
    fail("unknown command '\(command)'\n" + usage, code: 2)
}
