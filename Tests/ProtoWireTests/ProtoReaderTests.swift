import ProtoWire
import Testing

/// Decodes `bytes` with a fresh reader.
func withReader<T>(_ bytes: [UInt8], _ body: (inout ProtoReader) throws(ProtoWireError) -> T) throws(ProtoWireError) -> T {
    let result: Result<T, ProtoWireError> = bytes.withUnsafeBytes { raw in
        var reader = ProtoReader(raw)
        return Result { () throws(ProtoWireError) in try body(&reader) }
    }
    return try result.get()
}

/// Captures the typed error `body` throws, recording an issue when it does not throw.
func expectError(_ bytes: [UInt8], _ body: (inout ProtoReader) throws(ProtoWireError) -> Void) -> ProtoWireError? {
    do {
        try withReader(bytes, body)
        Issue.record("expected an error for \(bytes)")
        return nil
    } catch {
        return error
    }
}

struct VarintVector: Sendable, CustomStringConvertible {
    var bytes: [UInt8]
    var value: UInt64
    var description: String { "\(value) as \(bytes.count) bytes" }
}

@Suite struct ProtoReaderTests {
    static let varints: [VarintVector] = [
        .init(bytes: [0x00], value: 0),
        .init(bytes: [0x01], value: 1),
        .init(bytes: [0x7f], value: 127),
        .init(bytes: [0x80, 0x01], value: 128),
        .init(bytes: [0xff, 0x7f], value: 16383),
        .init(bytes: [0x80, 0x80, 0x01], value: 16384),
        .init(bytes: [0xac, 0x02], value: 300),
        .init(bytes: [0xff, 0xff, 0xff, 0xff, 0x0f], value: 0xffff_ffff),
        .init(bytes: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], value: .max),
        // Non-minimal encodings are accepted (protobuf allows padding up to 10 bytes).
        .init(bytes: [0x81, 0x80, 0x80, 0x00], value: 1),
    ]

    @Test(arguments: varints)
    func decodesVarint(_ vector: VarintVector) throws {
        let (value, length) = try vector.bytes.withUnsafeBytes { raw throws(ProtoWireError) in try consumeVarint(raw) }
        #expect(value == vector.value)
        #expect(length == vector.bytes.count)
    }

    @Test(arguments: varints.filter { $0.bytes.count == sizeOfVarint($0.value) })
    func encodesVarint(_ vector: VarintVector) {
        var out: [UInt8] = []
        appendVarint(vector.value, to: &out)
        #expect(out == vector.bytes)
        #expect(sizeOfVarint(vector.value) == vector.bytes.count)
        var backward = [UInt8](repeating: 0, count: out.count)
        backward.withUnsafeMutableBytes { raw in
            var writer = ProtoWriter(raw)
            writer.writeVarint(vector.value)
            writer.finish()
        }
        #expect(backward == vector.bytes)
    }

    @Test(arguments: [
        ([UInt8](), ProtoWireError.Code.truncated),
        ([0x80], .truncated),
        ([0xff, 0xff, 0xff], .truncated),
        ([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], .overlongVarint),
        ([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0x01], .overlongVarint),
    ])
    func rejectsBadVarint(_ bytes: [UInt8], _ code: ProtoWireError.Code) {
        let error = expectError(bytes) { reader throws(ProtoWireError) in _ = try reader.readVarint() }
        #expect(error?.code == code)
        #expect(error?.offset == 0)
    }

    @Test(arguments: [(Int64(0), UInt64(0)), (-1, 1), (1, 2), (-2, 3), (.max, .max - 1), (.min, .max)])
    func zigzag(_ value: Int64, _ encoded: UInt64) {
        #expect(encodeZigZag(value) == encoded)
        #expect(decodeZigZag(encoded) == value)
        if let small = Int32(exactly: value) {
            #expect(UInt64(encodeZigZag(small)) == encoded)
            #expect(decodeZigZag(UInt32(encoded)) == small)
        }
    }

    @Test func fieldNumbersAndWireTypesAreValidated() {
        #expect(FieldNumber(0) == nil)
        #expect(FieldNumber(1)?.rawValue == 1)
        #expect(FieldNumber(536_870_911)?.rawValue == 536_870_911)
        #expect(FieldNumber(536_870_912) == nil)
        #expect(WireType(rawValue: 6) == nil)
        #expect(ProtoTag(FieldNumber(2)!, .lengthDelimited).rawValue == 0x12)
    }

    @Test(arguments: [
        // field number 0
        ([0x00, 0x01], ProtoWireError.Code.invalidFieldNumber, Int?.none),
        // wire types 6 and 7 on field 1
        ([0x0e], .invalidWireType, 1),
        ([0x0f], .invalidWireType, 1),
        // field number 2^29 (key 2^32 as a varint)
        ([0x80, 0x80, 0x80, 0x80, 0x10], .invalidFieldNumber, nil),
        // end-group with no start
        ([0x0c], .invalidWireType, 1),
        // group without its end
        ([0x0b, 0x10, 0x01], .truncated, 1),
        // group closed by another field's end tag
        ([0x0b, 0x14], .invalidWireType, 2),
        // length past the end
        ([0x0a, 0x05, 0x61], .lengthOutOfBounds, 1),
        // huge declared length
        ([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], .lengthOutOfBounds, 1),
        // truncated fixed32 / fixed64
        ([0x0d, 0x01, 0x02], .truncated, 1),
        ([0x09, 0x01], .truncated, 1),
    ])
    func rejectsMalformedFields(_ bytes: [UInt8], _ code: ProtoWireError.Code, _ field: Int?) {
        let error = expectError(bytes) { reader throws(ProtoWireError) in
            var unknown = UnknownFields()
            while try reader.nextTag() != nil { try reader.skipField(into: &unknown) }
        }
        #expect(error?.code == code)
        #expect(error?.fieldNumber == field)
        #expect(error?.offset != nil)
        #expect(error?.message.isEmpty == false)
    }

    @Test func skipsEveryWireTypeIncludingNestedGroups() throws {
        let bytes: [UInt8] = [
            0x08, 0x96, 0x01,  // 1: varint 150
            0x11, 1, 2, 3, 4, 5, 6, 7, 8,  // 2: fixed64
            0x1a, 0x02, 0x68, 0x69,  // 3: "hi"
            0x23, 0x2b, 0x08, 0x01, 0x2c, 0x24,  // 4: group { 5: group { 1: 1 } }
            0x35, 1, 2, 3, 4,  // 6: fixed32
        ]
        let unknown = try withReader(bytes) { reader throws(ProtoWireError) in
            var unknown = UnknownFields()
            while try reader.nextTag() != nil { try reader.skipField(into: &unknown) }
            return unknown
        }
        #expect(unknown.bytes == bytes)
    }

    @Test func nestedGroupsAreDepthLimited() {
        let groups = [UInt8](repeating: 0x0b, count: 150)  // 150 nested start-groups of field 1
        let error = expectError(groups) { reader throws(ProtoWireError) in
            while try reader.nextTag() != nil { try reader.skipField() }
        }
        #expect(error?.code == .tooDeep)
    }

    @Test func deeplyNestedMessagesFailWithTooDeep() {
        // 150 levels of { field 1: message }, built back to front with exact lengths.
        var body: [UInt8] = []
        for _ in 0..<150 {
            var prefix: [UInt8] = [0x0a]
            appendVarint(UInt64(body.count), to: &prefix)
            body = prefix + body
        }
        let error = expectError(body) { reader throws(ProtoWireError) in
            func descend(_ reader: inout ProtoReader) throws(ProtoWireError) {
                while try reader.nextTag() != nil {
                    var sub = try reader.enterMessage()
                    try descend(&sub)
                }
            }
            try descend(&reader)
        }
        #expect(error?.code == .tooDeep)
        #expect(error?.fieldNumber == 1)
    }

    @Test func stringsAreValidatedAsUTF8() throws {
        let good: [UInt8] = [0x0a, 0x03, 0xe2, 0x82, 0xac]  // "€"
        let value = try withReader(good) { reader throws(ProtoWireError) in
            _ = try reader.nextTag()
            return try reader.readString()
        }
        #expect(value == "€")
        let error = expectError([0x0a, 0x02, 0xc3, 0x28]) { reader throws(ProtoWireError) in
            _ = try reader.nextTag()
            _ = try reader.readString()
        }
        #expect(error?.code == .invalidUTF8)
        #expect(error?.offset == 2)
        #expect(error?.fieldNumber == 1)
    }

    @Test(arguments: [UInt32(3), 20, 2048])  // one-, two- and three-byte tags
    func mapEntriesWithAnyTagSizeInBatchesLastKeyWins(_ field: UInt32) throws {
        var tag: [UInt8] = []
        appendTag(FieldNumber(Int(field))!, .lengthDelimited, to: &tag)
        func entry(_ k: UInt8, _ v: UInt8) -> [UInt8] { tag + [0x04, 0x08, k, 0x10, v] }
        // 40 entries (more than one batch) with keys 0...9 repeating, then another field, then one more.
        var bytes: [UInt8] = []
        for i in 0..<40 { bytes += entry(UInt8(i % 10), UInt8(i)) }
        bytes += [0x08, 0x01]  // field 1, a varint: ends the run
        bytes += entry(3, 99)
        let map = try withReader(bytes) { reader throws(ProtoWireError) -> [Int32: Int32] in
            var map: [Int32: Int32] = [:]
            while let next = try reader.nextTag() {
                guard next.rawValue == field << 3 | 2 else {
                    try reader.skipField()
                    continue
                }
                try reader.readMapEntries(into: &map) { entry throws(ProtoWireError) in
                    var k: Int32 = 0
                    var v: Int32 = 0
                    while let t = try entry.nextTag() {
                        switch t.rawValue {
                        case 0x08: k = try entry.readInt32()
                        case 0x10: v = try entry.readInt32()
                        default: try entry.skipField()
                        }
                    }
                    return (k, v)
                }
            }
            return map
        }
        var expected: [Int32: Int32] = [:]
        for i in 30..<40 { expected[Int32(i % 10)] = Int32(i) }
        expected[3] = 99
        #expect(map == expected)
    }

    @Test func packedFixedLengthMustBeAMultipleOfTheWidth() {
        let error = expectError([0x0a, 0x03, 1, 2, 3]) { reader throws(ProtoWireError) in
            _ = try reader.nextTag()
            let packed = try reader.enterPacked()
            _ = try packed.countFixed(width: 4)
        }
        #expect(error?.code == .malformed)
    }
}

@Suite struct UTF8ValidationTests {
    @Test(arguments: [
        [UInt8]([0xc3, 0x28]), [0xf0, 0x90, 0x80], [0xf0, 0x90, 0x80, 0x41], [0xed, 0xa0, 0x80], [0xc0, 0x80],
        [0xff], [0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x80], [0xe2, 0x82],
        // Around the 15-byte inline-string limit, and long strings with one bad byte.
        Array(repeating: 0x61, count: 14) + [0xc3], Array(repeating: 0x61, count: 15) + [0xc3],
        Array(repeating: 0x61, count: 40) + [0xed, 0xa0, 0x80] + Array(repeating: 0x62, count: 20),
    ])
    func rejectsInvalidUTF8(_ body: [UInt8]) {
        let error = expectError([0x0a, UInt8(body.count)] + body) { reader throws(ProtoWireError) in
            _ = try reader.nextTag()
            _ = try reader.readString()
        }
        #expect(error?.code == .invalidUTF8)
    }

    @Test(arguments: [
        "é", "€", "𝄞", "plain ascii, longer than sixteen bytes", "mixed ✓ text with a tail",
        "fifteen bytes!!", "sixteen bytes!!!", "fourteen bytes", "é fourteen b", "ünïcödé, longer than fifteen bytes",
    ])
    func acceptsValidUTF8(_ text: String) throws {
        let body = Array(text.utf8)
        let value = try withReader([0x0a, UInt8(body.count)] + body) { reader throws(ProtoWireError) in
            _ = try reader.nextTag()
            return try reader.readString()
        }
        #expect(value == text)
    }
}
