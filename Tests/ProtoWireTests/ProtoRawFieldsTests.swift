import CSI
import ProtoWire
import Testing

@Suite struct ProtoRawFieldsTests {
    @Test func dumpsFieldsWithoutASchema() throws {
        let bytes: [UInt8] = [0x0a, 0x03, 0x61, 0x62, 0x63, 0x10, 0x05, 0x1a, 0x04, 0x08, 0x01, 0x10, 0x02, 0x25, 1, 0, 0, 0, 0x22, 0x02, 0xff, 0x00]
        let fields = try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in try ProtoRawFields.parse(raw) }
        #expect(fields.map(\.number) == [1, 2, 3, 4, 4])
        #expect(fields[0].value == .text("abc"))
        #expect(fields[1].value == .varint(5))
        #expect(fields[2].offset == 7)
        guard case .message(let nested, _) = fields[2].value else {
            Issue.record("expected a nested message, found \(fields[2].value)")
            return
        }
        #expect(nested.map(\.number) == [1, 2])
        #expect(fields[3].value == .fixed32(1))
        #expect(fields[4].value == .bytes([0xff, 0x00]))
        let text = ProtoRawFields.render(fields)
        #expect(text.contains("1 (bytes) @0: \"abc\""))
        #expect(text.contains("  2 (varint) @11: 2"))
    }

    @Test func reportsTheOffsetOfMalformedData() {
        let bytes: [UInt8] = [0x0a, 0x05, 0x61]
        do {
            _ = try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in try ProtoRawFields.parse(raw) }
            Issue.record("expected an error")
        } catch let error as ProtoWireError {
            #expect(error.code == .lengthOutOfBounds)
            #expect(error.offset == 1)
        } catch {
            Issue.record("expected a ProtoWireError, found \(error)")
        }
    }
}

@Suite struct ProtoCodableTests {
    @Test func serializeIntoAGivenBufferAndMerge() throws {
        let request = sampleNodePublish()
        var frame = [UInt8](repeating: 0xee, count: 5 + request.protoEncodedSize)
        frame.withUnsafeMutableBytes { raw in
            request.serialize(into: UnsafeMutableRawBufferPointer(rebasing: raw[5...]))
        }
        #expect(Array(frame[..<5]) == [0xee, 0xee, 0xee, 0xee, 0xee])
        #expect(Array(frame[5...]) == request.serializedBytes())

        // Merging a second message: scalars replaced, maps merged, nested messages merged.
        var merged = NodePublishVolumeRequest(volumeID: "a", publishContext: ["x": "1"])
        let other = NodePublishVolumeRequest(volumeID: "b", publishContext: ["y": "2"])
        try other.serializedBytes().withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in try merged.merge(serializedBytes: raw) }
        #expect(merged.volumeID == "b")
        #expect(merged.publishContext == ["x": "1", "y": "2"])
    }

    @Test func emptyMessagesEncodeToNothing() throws {
        #expect(NodePublishVolumeRequest().serializedBytes().isEmpty)
        #expect(NodePublishVolumeRequest().protoEncodedSize == 0)
        #expect(try NodePublishVolumeRequest(serializedBytes: []) == NodePublishVolumeRequest())
    }
}
