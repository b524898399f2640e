import CSI
import ProtoWire
import TestSupport
import Testing

/// SplitMix64: a small seeded generator so failures reproduce.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Decodes `bytes` as `M`; when that succeeds, re-encoding and decoding again must give the
/// same bytes (the codec is idempotent on everything it accepts). Returns whether it decoded.
@discardableResult
func checkDecode<M: ProtoCodable>(_: M.Type, _ bytes: [UInt8]) -> Bool {
    do {
        let first = try M(serializedBytes: bytes)
        let encoded = first.serializedBytes()
        #expect(encoded.count == first.protoEncodedSize)
        let second = try M(serializedBytes: encoded)
        #expect(second.serializedBytes() == encoded, "re-encoding \(M.protoMessageName) is not stable for input \(bytes)")
        _ = String(describing: first)
        return true
    } catch {
        #expect(error.code != .other, "untyped error \(error)")
        #expect((error.offset ?? 0) >= 0 && (error.offset ?? 0) <= bytes.count, "offset out of range: \(error)")
        #expect(!error.message.isEmpty)
        return false
    }
}

/// Every decoder the mutation and fuzz tests exercise.
func decodeAllTypes(_ bytes: [UInt8]) -> Int {
    var accepted = 0
    if checkDecode(NodePublishVolumeRequest.self, bytes) { accepted += 1 }
    if checkDecode(CreateVolumeRequest.self, bytes) { accepted += 1 }
    if checkDecode(NodeStageVolumeRequest.self, bytes) { accepted += 1 }
    if checkDecode(GetCapacityResponse.self, bytes) { accepted += 1 }
    if checkDecode(CreateSnapshotResponse.self, bytes) { accepted += 1 }
    if checkDecode(TestProtos.Scalars.self, bytes) { accepted += 1 }
    if checkDecode(TestProtos.Repeated.self, bytes) { accepted += 1 }
    if checkDecode(TestProtos.Maps.self, bytes) { accepted += 1 }
    if checkDecode(TestProtos.Choice.self, bytes) { accepted += 1 }
    if checkDecode(TestProtos.Node.self, bytes) { accepted += 1 }
    var unknown = UnknownFields()
    _ = try? withReader(bytes) { reader throws(ProtoWireError) in
        while try reader.nextTag() != nil { try reader.skipField(into: &unknown) }
    }
    _ = try? bytes.withUnsafeBytes { raw throws(ProtoWireError) in try ProtoRawFields.parse(raw) }
    return accepted
}

/// Real encoded messages the mutations start from.
func mutationCorpus() -> [[UInt8]] {
    var create = CreateVolumeRequest()
    create.name = "pvc-1"
    create.capacityRange = CapacityRange(requiredBytes: 1 << 30, limitBytes: -1)
    create.volumeCapabilities = [VolumeCapability(accessMode: .init(mode: .multiNodeMultiWriter), accessType: .block(.init()))]
    create.parameters = ["vg": "vg0", "fs": "ext4"]
    create.secrets = ["k": "v"]
    create.volumeContentSource = VolumeContentSource(type: .snapshot(.init(snapshotID: "snap-1")))
    create.accessibilityRequirements = TopologyRequirement(
        requisite: [Topology(segments: ["zone": "a"])], preferred: [Topology(segments: ["zone": "b"])])
    var maps = TestProtos.Maps()
    maps.stringString = ["a": "1", "b": "2"]
    maps.intString = [-1: "neg", 7: "seven"]
    maps.stringMessage = ["m": TestProtos.Scalars(fInt32: 3, fString: "x")]
    maps.boolEnum = [true: .red]
    var repeated = TestProtos.Repeated()
    repeated.rInt32 = [1, -1, 300]
    repeated.rFixed32 = [1, 2]
    repeated.rDouble = [0.5]
    repeated.rString = ["a", "é"]
    repeated.rMessage = [TestProtos.Scalars(fSint64: -9)]
    repeated.rUnpacked = [5, 6]
    var choice = TestProtos.Choice(pick: .message(TestProtos.Scalars(fBool: true)))
    choice.when = Timestamp(seconds: 1_700_000_000, nanos: 1)
    choice.maybeInt = 5
    choice.inner = .init(children: [.init(id: 2)], id: 1)
    return [
        sampleNodePublish().serializedBytes(),
        create.serializedBytes(),
        GetCapacityResponse(availableCapacity: 42, maximumVolumeSize: 7, minimumVolumeSize: 0).serializedBytes(),
        GeneratedCodecTests.scalarsValue().serializedBytes(),
        maps.serializedBytes(),
        repeated.serializedBytes(),
        choice.serializedBytes(),
        TestProtos.Node(name: "a", next: .init(name: "b"), link: .edge(.init(to: .init(name: "c"), weight: 1))).serializedBytes(),
    ]
}

/// Applies one random mutation: bit flips, truncation, splices, length corruption, inserted bytes.
func mutate(_ input: [UInt8], corpus: [[UInt8]], rng: inout SeededGenerator) -> [UInt8] {
    var bytes = input
    switch Int.random(in: 0..<6, using: &rng) {
    case 0:
        for _ in 0..<Int.random(in: 1...4, using: &rng) where !bytes.isEmpty {
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
        }
    case 1:
        bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
    case 2:
        let other = corpus[Int.random(in: 0..<corpus.count, using: &rng)]
        let cut = Int.random(in: 0...bytes.count, using: &rng)
        let from = Int.random(in: 0...other.count, using: &rng)
        bytes = Array(bytes[..<cut]) + Array(other[from...])
    case 3:
        // Corrupt a byte that is likely a length: set it to a random, possibly huge, varint.
        guard !bytes.isEmpty else { break }
        let at = Int.random(in: 0..<bytes.count, using: &rng)
        var varint: [UInt8] = []
        appendVarint(UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0..<64, using: &rng), to: &varint)
        bytes.replaceSubrange(at..<at + 1, with: varint)
    case 4:
        let at = Int.random(in: 0...bytes.count, using: &rng)
        bytes.insert(contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
    default:
        guard !bytes.isEmpty else { break }
        bytes[Int.random(in: 0..<bytes.count, using: &rng)] =
            [0x00, 0x7f, 0x80, 0xff, 0x0b, 0x0c, 0x0e][Int.random(in: 0..<7, using: &rng)]
    }
    return bytes
}

/// Thousands of decodes per case: each runs on a thread of its own, off the concurrency pool.
@Suite(.ownThread) struct MutationTests {
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func mutatedRealMessagesNeverTrapAndReencodeStably(_ seed: UInt64) {
        var rng = SeededGenerator(state: seed)
        let corpus = mutationCorpus()
        var accepted = 0
        var rejected = 0
        for _ in 0..<600 {
            var bytes = corpus[Int.random(in: 0..<corpus.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...3, using: &rng) { bytes = mutate(bytes, corpus: corpus, rng: &rng) }
            let n = decodeAllTypes(bytes)
            accepted += n
            rejected += 10 - n
        }
        // Both outcomes must actually occur, or the mutations are not exercising anything.
        #expect(accepted > 100)
        #expect(rejected > 100)
    }

    @Test func unmutatedCorpusDecodes() {
        for bytes in mutationCorpus() { #expect(decodeAllTypes(bytes) > 0) }
    }
}
