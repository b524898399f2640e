import CSI
@testable import ProtoWire
import Testing

/// The proto3 JSON mapping's edges in Swift; Tests/Interop/test_proto_json.py checks every CSI
/// message against Python's json_format both ways.
@Suite struct ProtoJSONTests {
    let coder = ProtoJSONCoder.csi

    @Test func aGeneratedMessageRoundTripsThroughJSON() throws {
        let request = sampleNodePublish()
        let text = try coder.json(request, options: .init(strippingSecrets: false))
        #expect(text.contains("\"volumeId\":\"pvc-5f1c2a9e-7d3b-4c8e-9a61-2b7f0d4e8c13\""))
        #expect(text.contains("\"mode\":\"SINGLE_NODE_WRITER\""))
        let back = try coder.decode(NodePublishVolumeRequest.self, fromJSON: text)
        #expect(back == request)
    }

    @Test func secretsAreStrippedAndProtoNamesKeptForLogs() throws {
        let text = try coder.json(sampleNodePublish(), options: .init(preservingProtoFieldNames: true, strippingSecrets: true))
        #expect(text.contains("\"secrets\":\"***stripped***\""))
        #expect(!text.contains("s3cr3t-hunter2"))
        #expect(text.contains("\"volume_id\":"))
        #expect(text.contains("\"staging_target_path\":"))
    }

    @Test(arguments: [
        (Int64(0), Int32(0), "1970-01-01T00:00:00Z"),
        (Int64(-62_135_596_800), Int32(0), "0001-01-01T00:00:00Z"),
        (Int64(253_402_300_799), Int32(999_999_999), "9999-12-31T23:59:59.999999999Z"),
        (Int64(951_782_400), Int32(1_000_000), "2000-02-29T00:00:00.001Z"),
        (Int64(-1), Int32(123_456_000), "1969-12-31T23:59:59.123456Z"),
    ])
    func timestampsAreRFC3339(seconds: Int64, nanos: Int32, text: String) throws {
        var snapshot = Snapshot()
        var time = Timestamp()
        time.seconds = seconds
        time.nanos = nanos
        snapshot.creationTime = time
        let json = try coder.json(snapshot)
        #expect(json == "{\"creationTime\":\"\(text)\"}")
        #expect(try coder.decode(Snapshot.self, fromJSON: json) == snapshot)
    }

    @Test func timestampOffsetsAndBadTimes() throws {
        let shifted = try coder.decode(Snapshot.self, fromJSON: #"{"creationTime":"1970-01-01T02:00:00+02:00"}"#)
        #expect(shifted.creationTime?.seconds == 0)
        for bad in ["1970-02-30T00:00:00Z", "0000-12-31T23:59:59Z", "1970-01-01 00:00:00Z", "1970-01-01T00:00:00", "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00.1234567890Z"]
        {
            #expect(throws: ProtoJSONError.self, "\(bad)") {
                try coder.decode(Snapshot.self, fromJSON: "{\"creationTime\":\"\(bad)\"}")
            }
        }
    }

    @Test func wrappersAreTheirValueEvenAtTheDefault() throws {
        var capability = ControllerServiceCapability()
        capability.type = .rpc(ControllerServiceCapability.RPC(type: .createDeleteVolume))
        var response = GetCapacityResponse()
        response.maximumVolumeSize = 0
        response.availableCapacity = 5
        let json = try coder.json(response)
        #expect(json == #"{"availableCapacity":"5","maximumVolumeSize":"0"}"#)
        #expect(try coder.decode(GetCapacityResponse.self, fromJSON: json) == response)
        #expect(try coder.decode(GetCapacityResponse.self, fromJSON: #"{"maximumVolumeSize":null}"#).maximumVolumeSize == nil)
    }

    @Test func malformedJSONNamesTheOffsetAndNeverTraps() {
        let cases: [(String, Int)] = [
            ("{\"volumeId\":", 12), ("{\"volumeId\" \"x\"}", 12), ("{\"a\":tru}", 5), ("{\"volumeId\":\"\\x\"}", 13),
            ("{\"volumeId\":01}", 13), ("", 0),
        ]
        for (text, offset) in cases {
            do {
                _ = try coder.wire(fromJSON: text, messageType: NodePublishVolumeRequest.protoMessageName)
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.offset == offset, "\(text): \(error)")
            }
        }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: ProtoJSONError.self) { try coder.wire(fromJSON: "{\"volumeId\":\(deep)}", messageType: "csi.v1.NodePublishVolumeRequest") }
        let invalid = Array("{\"volumeId\":\"ab".utf8) + [0xC3, 0x28, 0x22, 0x7D]
        do {
            _ = try JSONParser.parse(bytes: invalid)
            Issue.record("invalid UTF-8 was accepted")
        } catch {
            #expect(error.offset == 15, "\(error)")
        }
    }

    @Test func unknownFieldsAreNamedOrIgnored() throws {
        #expect {
            try coder.wire(fromJSON: #"{"volumeId":"v","nope":1}"#, messageType: "csi.v1.NodePublishVolumeRequest")
        } throws: { error in
            (error as? ProtoJSONError)?.message == "unknown field \"nope\" in csi.v1.NodePublishVolumeRequest"
                && (error as? ProtoJSONError)?.offset == 16
        }
        let bytes = try coder.wire(
            fromJSON: #"{"volumeId":"v","nope":{"deep":[1]}}"#, messageType: "csi.v1.NodePublishVolumeRequest",
            options: .init(ignoringUnknownFields: true))
        #expect(try NodePublishVolumeRequest(serializedBytes: bytes).volumeID == "v")
    }

    @Test func base64FollowsRFC4648() {
        // RFC 4648 section 10's vectors, written and read back.
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            var text = ""
            Array(plain.utf8).withUnsafeBytes { Base64.append($0, to: &text) }
            #expect(text == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
            #expect(Base64.decode(String(encoded.prefix { $0 != "=" })) == Array(plain.utf8), "unpadded \(encoded)")
        }
        #expect(Base64.decode("-_8=") == [0xFB, 0xFF])
        #expect(Base64.decode("+/8=") == [0xFB, 0xFF])
        for bad in ["Z", "Zg=x", "Zg===", "Z===", "Zm9v!", "Zg= ="] { #expect(Base64.decode(bad) == nil, "\(bad)") }
    }

    @Test func everyMessageOfTheDescriptorsIsKnown() {
        let names = coder.schema.messageNames
        #expect(names.contains("csi.v1.CreateVolumeRequest"))
        #expect(names.contains("pluginregistration.RegistrationStatus"))
        #expect(names.contains("google.protobuf.Timestamp"))
        #expect(names.count > 95)
    }
}
