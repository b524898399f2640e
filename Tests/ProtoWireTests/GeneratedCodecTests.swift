import ProtoWire
import TestSupport
import Testing

typealias Scalars = TestProtos.Scalars
typealias Repeated = TestProtos.Repeated
typealias Maps = TestProtos.Maps
typealias Choice = TestProtos.Choice

@Suite struct GeneratedCodecTests {
    static let scalarsText = """
        f_double: -2.5 f_float: 1.25 f_int64: -9000000000 f_uint64: 18446744073709551615 f_int32: -7
        f_fixed64: 1234567890123 f_fixed32: 4000000000 f_bool: true f_string: "héllo ✓" f_bytes: "\\000\\001\\377"
        f_uint32: 4294967295 f_enum: COLOR_GREEN f_sfixed32: -3 f_sfixed64: -4 f_sint32: -2147483648
        f_sint64: -9223372036854775808 opt_int32: 0 opt_string: ""
        """

    static func scalarsValue() -> Scalars {
        var s = Scalars()
        s.fDouble = -2.5
        s.fFloat = 1.25
        s.fInt64 = -9_000_000_000
        s.fUint64 = .max
        s.fInt32 = -7
        s.fFixed64 = 1_234_567_890_123
        s.fFixed32 = 4_000_000_000
        s.fBool = true
        s.fString = "héllo ✓"
        s.fBytes = [0, 1, 255]
        s.fUint32 = .max
        s.fEnum = .green
        s.fSfixed32 = -3
        s.fSfixed64 = -4
        s.fSint32 = .min
        s.fSint64 = .min
        s.optInt32 = 0
        s.optString = ""
        return s
    }

    @Test(.enabled(if: haveProtoc), .ownThread)
    func everyScalarTypeMatchesProtoc() throws {
        let reference = try testEncode("Scalars", Self.scalarsText)
        let decoded = try Scalars(serializedBytes: reference)
        #expect(decoded == Self.scalarsValue())
        #expect(decoded.serializedBytes() == reference)
        #expect(Self.scalarsValue().serializedBytes() == reference)
        // proto3 optional: present zero values are emitted; absent ones are nil.
        #expect(try Scalars(serializedBytes: try testEncode("Scalars", "f_int32: 1")).optInt32 == nil)
    }

    @Test(.enabled(if: haveProtoc), .ownThread)
    func repeatedFieldsPackedAndUnpacked() throws {
        let text = """
            r_int32: [1, -1, 300] r_sint64: [-5, 5] r_fixed32: [1, 2] r_double: [0.5] r_enum: [COLOR_RED, COLOR_GREEN]
            r_bool: [true, false] r_string: ["a", ""] r_bytes: ["x"] r_message { f_int32: 1 } r_message { }
            r_unpacked: [7, 8]
            """
        let reference = try testEncode("Repeated", text)
        let decoded = try Repeated(serializedBytes: reference)
        #expect(decoded.rInt32 == [1, -1, 300])
        #expect(decoded.rSint64 == [-5, 5])
        #expect(decoded.rFixed32 == [1, 2])
        #expect(decoded.rEnum == [.red, .green])
        #expect(decoded.rBool == [true, false])
        #expect(decoded.rString == ["a", ""])
        #expect(decoded.rMessage.count == 2)
        #expect(decoded.rUnpacked == [7, 8])
        #expect(decoded.serializedBytes() == reference)
        // The same values unpacked (one tag per element) decode to the same message.
        var unpacked: [UInt8] = []
        for v in [1, -1, 300] as [Int64] {
            unpacked.append(0x08)
            appendVarint(UInt64(bitPattern: v), to: &unpacked)
        }
        let mixed = try Repeated(serializedBytes: unpacked + [0x0a, 0x01, 0x02])  // then packed [2]
        #expect(mixed.rInt32 == [1, -1, 300, 2])
        // rUnpacked also accepts packed input.
        #expect(try Repeated(serializedBytes: [0x52, 0x02, 0x07, 0x08]).rUnpacked == [7, 8])
    }

    @Test(.enabled(if: haveProtoc), .ownThread)
    func mapsOfEveryKindMatchProtoc() throws {
        let text = """
            string_string { key: "b" value: "2" } string_string { key: "a" value: "1" }
            int_string { key: -1 value: "neg" } int_string { key: 5 value: "five" } int_string { key: 0 value: "" }
            string_message { key: "m" value { f_int32: 3 } } string_message { key: "e" value { } }
            bool_enum { key: true value: COLOR_RED } bool_enum { key: false value: COLOR_UNSPECIFIED }
            uint_bytes { key: 18446744073709551615 value: "\\001" }
            """
        let reference = try testEncode("Maps", text)
        let decoded = try Maps(serializedBytes: reference)
        #expect(decoded.stringString == ["a": "1", "b": "2"])
        #expect(decoded.intString == [-1: "neg", 5: "five", 0: ""])
        #expect(decoded.stringMessage["m"]?.fInt32 == 3)
        #expect(decoded.stringMessage["e"] == Scalars())
        #expect(decoded.boolEnum == [true: .red, false: .unspecified])
        #expect(decoded.uintBytes == [.max: [1]])
        #expect(decoded.serializedBytes() == reference)
        // Larger maps (sorted through the allocation path) stay byte-identical too.
        var big = Maps()
        var bigText = ""
        for i in 0..<20 {
            big.stringString["key\(i)"] = "value\(i)"
            bigText += "string_string { key: \"key\(i)\" value: \"value\(i)\" } "
        }
        #expect(big.serializedBytes() == (try testEncode("Maps", bigText)))
    }

    @Test(.enabled(if: haveProtoc), .ownThread)
    func oneofWrappersTimestampAndEscapedNames() throws {
        let text = """
            message { f_int32: 9 } nested { f_string: "n" } when { seconds: 1700000000 nanos: 5 }
            maybe_int { value: -3 } maybe_string { } maybe_bool { value: true } default: "d" description: "x"
            inner { id: 1 children { id: 2 children { id: 3 } } }
            """
        let reference = try testEncode("Choice", text)
        let decoded = try Choice(serializedBytes: reference)
        #expect(decoded.pick == .message(Scalars(fInt32: 9)))
        #expect(decoded.when == Timestamp(seconds: 1_700_000_000, nanos: 5))
        #expect(decoded.maybeInt == -3)
        #expect(decoded.maybeString == "")
        #expect(decoded.maybeBool == true)
        #expect(decoded.default == "d")
        #expect(decoded.description_p == "x")
        #expect(decoded.inner?.children.first?.children.first?.id == 3)
        #expect(decoded.serializedBytes() == reference)

        var choice = Choice()
        choice.text = "hello"
        #expect(choice.pick == .text("hello"))
        choice.color = .unspecified  // a oneof member set to its default is still emitted
        #expect(choice.serializedBytes() == [0x20, 0x00])
        #expect(try testDecode("Choice", choice.serializedBytes()).contains("color: COLOR_UNSPECIFIED"))
    }

    @Test func oneofLastWinsAcrossMembers() throws {
        // text "a", then number 5, then text "b"
        let bytes: [UInt8] = [0x0a, 0x01, 0x61, 0x10, 0x05, 0x0a, 0x01, 0x62]
        #expect(try Choice(serializedBytes: bytes).pick == .text("b"))
        #expect(try Choice(serializedBytes: Array(bytes.prefix(5))).pick == .number(5))
    }

    @Test func knownFieldWithTheWrongWireTypeIsKeptAsUnknown() throws {
        // f_int32 (field 5) sent as a fixed32.
        let bytes: [UInt8] = [0x2d, 1, 0, 0, 0]
        let decoded = try Scalars(serializedBytes: bytes)
        #expect(decoded.fInt32 == 0)
        #expect(decoded.unknownFields.bytes == bytes)
        #expect(decoded.serializedBytes() == bytes)
    }

    @Test func int32NegativeValuesTakeTenBytesAndTruncateOnRead() throws {
        let s = Scalars(fInt32: -1)
        #expect(s.serializedBytes() == [0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
        #expect(try Scalars(serializedBytes: s.serializedBytes()).fInt32 == -1)
        // A 64-bit value in an int32 field keeps its low 32 bits.
        #expect(try Scalars(serializedBytes: [0x28, 0x80, 0x80, 0x80, 0x80, 0x10]).fInt32 == 0)
    }

    @Test func packedCountsDoNotPreallocateFromDeclaredLengths() {
        // A packed field declaring 2^31 bytes with 3 present fails before any allocation.
        do {
            _ = try Repeated(serializedBytes: [0x0a, 0x80, 0x80, 0x80, 0x80, 0x08, 0x01, 0x02, 0x03])
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .lengthOutOfBounds)
            #expect(error.fieldNumber == 1)
        }
    }

    @Test func descriptionsAreReadable() {
        var m = Maps()
        m.stringString = ["b": "2", "a": "1\n"]
        #expect(m.description == #"TestProtos.Maps(stringString: ["a": "1\n", "b": "2"])"#)
        let c = Choice(pick: .number(5))
        #expect(c.description == "TestProtos.Choice(pick: number(5))")
        #expect(Scalars(fBytes: [0xde, 0xad]).description == "TestProtos.Scalars(fBytes: 0xdead)")
    }
}

@Suite struct RecursiveMessageTests {
    @Test(.enabled(if: haveProtoc), .ownThread)
    func selfContainingMessagesRoundTripThroughProtoc() throws {
        let text = """
            name: "a" next { name: "b" next { name: "c" edge { to { name: "d" } weight: 2 } } }
            child { name: "e" } children { name: "f" child { name: "g" } }
            """
        let reference = try testEncode("Node", text)
        let node = try TestProtos.Node(serializedBytes: reference)
        #expect(node.next?.next?.name == "c")
        #expect(node.next?.next?.edge?.to?.name == "d")
        #expect(node.child?.name == "e")
        #expect(node.children.first?.child?.name == "g")
        #expect(node.serializedBytes() == reference)

        // Value semantics: changing a copy's nested message leaves the original alone.
        var copy = node
        copy.next?.name = "changed"
        #expect(node.next?.name == "b")
        #expect(copy.next?.name == "changed")
        #expect(copy != node)
    }

    @Test func deepSelfNestingIsLimitedNotCrashing() {
        // next { next { ... } } 150 deep: fails with tooDeep.
        var body: [UInt8] = []
        for _ in 0..<150 {
            var prefix: [UInt8] = [0x12]
            appendVarint(UInt64(body.count), to: &prefix)
            body = prefix + body
        }
        do {
            _ = try TestProtos.Node(serializedBytes: body)
            Issue.record("expected tooDeep")
        } catch {
            #expect(error.code == .tooDeep)
        }
    }
}
