// libFuzzer entry point for the ProtoWire decoders: every input is decoded as several CSI and
// test messages and as schema-less fields; whatever decodes must re-encode to bytes that decode
// to the same bytes again. Built and run by Tests/Fuzz/run.sh (`make fuzz`).
import ProtoWire

@inline(never)
func check<M: ProtoCodable>(_: M.Type, _ bytes: UnsafeRawBufferPointer) {
    guard let first = try? M(serializedBytes: bytes) else { return }
    let encoded = first.serializedBytes()
    guard encoded.count == first.protoEncodedSize else { fatalError("size mismatch for \(M.protoMessageName)") }
    guard let second = try? M(serializedBytes: encoded) else { fatalError("re-encoded \(M.protoMessageName) does not decode") }
    guard second.serializedBytes() == encoded else { fatalError("re-encoding \(M.protoMessageName) is not stable") }
    _ = String(describing: first)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    check(NodePublishVolumeRequest.self, bytes)
    check(CreateVolumeRequest.self, bytes)
    check(NodeStageVolumeRequest.self, bytes)
    check(GetCapacityResponse.self, bytes)
    check(CreateSnapshotResponse.self, bytes)
    check(ListVolumesResponse.self, bytes)
    check(TestProtos.Scalars.self, bytes)
    check(TestProtos.Repeated.self, bytes)
    check(TestProtos.Maps.self, bytes)
    check(TestProtos.Choice.self, bytes)
    check(TestProtos.Node.self, bytes)
    _ = try? ProtoRawFields.parse(bytes)
    var reader = ProtoReader(bytes)
    var unknown = UnknownFields()
    while let tag = try? reader.nextTag() {
        _ = tag
        if (try? reader.skipField(into: &unknown)) == nil { break }
    }
    return 0
}
