import CSI
import Foundation
import RPCCore
import ProtoWire
import TestSupport
import Testing

/// A realistic NodePublishVolumeRequest (maps, nested capability, secrets), ~500 bytes.
func sampleNodePublish() -> NodePublishVolumeRequest {
    var request = NodePublishVolumeRequest()
    request.volumeID = "pvc-5f1c2a9e-7d3b-4c8e-9a61-2b7f0d4e8c13"
    request.publishContext = ["devicePath": "/dev/csi-lvm/vg0/pvc-5f1c2a9e", "lvm.csi.io/vg": "vg0"]
    request.stagingTargetPath = "/var/lib/kubelet/plugins/kubernetes.io/csi/lvm.csi.io/1b2c3d/globalmount"
    request.targetPath = "/var/lib/kubelet/pods/0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7/volumes/kubernetes.io~csi/pvc-5f1c2a9e/mount"
    request.volumeCapability = VolumeCapability(
        accessMode: VolumeCapability.AccessMode(mode: .singleNodeWriter),
        accessType: .mount(VolumeCapability.MountVolume(fsType: "ext4", mountFlags: ["noatime", "nodiratime"])))
    request.readonly = true
    request.secrets = ["password": "s3cr3t-hunter2", "username": "admin"]
    request.volumeContext = [
        "csi.storage.k8s.io/pod.name": "web-0", "csi.storage.k8s.io/pod.namespace": "default",
        "csi.storage.k8s.io/pod.uid": "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7",
    ]
    return request
}

let sampleNodePublishText = """
    volume_id: "pvc-5f1c2a9e-7d3b-4c8e-9a61-2b7f0d4e8c13"
    publish_context { key: "lvm.csi.io/vg" value: "vg0" }
    publish_context { key: "devicePath" value: "/dev/csi-lvm/vg0/pvc-5f1c2a9e" }
    staging_target_path: "/var/lib/kubelet/plugins/kubernetes.io/csi/lvm.csi.io/1b2c3d/globalmount"
    target_path: "/var/lib/kubelet/pods/0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7/volumes/kubernetes.io~csi/pvc-5f1c2a9e/mount"
    volume_capability {
      mount { fs_type: "ext4" mount_flags: "noatime" mount_flags: "nodiratime" }
      access_mode { mode: SINGLE_NODE_WRITER }
    }
    readonly: true
    secrets { key: "username" value: "admin" }
    secrets { key: "password" value: "s3cr3t-hunter2" }
    volume_context { key: "csi.storage.k8s.io/pod.name" value: "web-0" }
    volume_context { key: "csi.storage.k8s.io/pod.namespace" value: "default" }
    volume_context { key: "csi.storage.k8s.io/pod.uid" value: "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7" }
    """

@Suite struct CSIMessageTests {
    @Test(.enabled(if: haveProtoc), .ownThread)
    func nodePublishMatchesProtocByteForByte() throws {
        let reference = try csiEncode("csi.v1.NodePublishVolumeRequest", sampleNodePublishText)
        let decoded = try NodePublishVolumeRequest(serializedBytes: reference)
        #expect(decoded == sampleNodePublish())
        #expect(decoded.serializedBytes() == reference)
        #expect(sampleNodePublish().serializedBytes() == reference)
        #expect(sampleNodePublish().protoEncodedSize == reference.count)
    }

    @Test(.enabled(if: haveProtoc), .ownThread)
    func protocDecodesWhatWeEncode() throws {
        let text = try csiDecode("csi.v1.NodePublishVolumeRequest", sampleNodePublish().serializedBytes())
        #expect(text.contains("volume_id: \"pvc-5f1c2a9e-7d3b-4c8e-9a61-2b7f0d4e8c13\""))
        #expect(text.contains("mode: SINGLE_NODE_WRITER"))
        #expect(text.contains("mount_flags: \"nodiratime\""))
        #expect(text.contains("key: \"password\""))
        #expect(try csiEncode("csi.v1.NodePublishVolumeRequest", text) == sampleNodePublish().serializedBytes())
    }

    static let references: [(String, String)] = [
        (
            "csi.v1.NodeGetInfoResponse",
            #"node_id: "node0" max_volumes_per_node: 100 accessible_topology { segments { key: "openebs.io/nodename" value: "node0" } }"#
        ),
        (
            "csi.v1.GetPluginCapabilitiesResponse",
            "capabilities { service { type: CONTROLLER_SERVICE } } capabilities { volume_expansion { type: ONLINE } } capabilities { service { type: VOLUME_ACCESSIBILITY_CONSTRAINTS } }"
        ),
        (
            "csi.v1.CreateVolumeRequest",
            #"name: "pvc-1" capacity_range { required_bytes: 1073741824 limit_bytes: -1 } volume_capabilities { block { } access_mode { mode: MULTI_NODE_MULTI_WRITER } } parameters { key: "vg" value: "vg0" } secrets { key: "k" value: "v" } volume_content_source { snapshot { snapshot_id: "snap-1" } } accessibility_requirements { requisite { segments { key: "zone" value: "a" } } preferred { segments { key: "zone" value: "b" } } }"#
        ),
        ("csi.v1.GetCapacityResponse", "available_capacity: 42 maximum_volume_size { value: 1099511627776 } minimum_volume_size { }"),
        (
            "csi.v1.NodeGetVolumeStatsResponse",
            "usage { available: 10 total: 20 used: 10 unit: BYTES } usage { total: 5 unit: INODES } volume_condition { abnormal: true message: \"I/O error\" }"
        ),
        (
            "csi.v1.CreateSnapshotResponse",
            #"snapshot { size_bytes: 1 snapshot_id: "s" source_volume_id: "v" creation_time { seconds: 1700000000 nanos: 123 } ready_to_use: true }"#
        ),
        (
            "csi.v1.ControllerGetCapabilitiesResponse",
            "capabilities { rpc { type: CREATE_DELETE_VOLUME } } capabilities { rpc { type: MODIFY_VOLUME } }"
        ),
        (
            "csi.v1.NodeStageVolumeRequest",
            #"volume_id: "v" staging_target_path: "/s" volume_capability { mount { fs_type: "xfs" volume_mount_group: "1000" } access_mode { mode: SINGLE_NODE_SINGLE_WRITER } } secrets { key: "a" value: "b" }"#
        ),
    ]

    @Test(.enabled(if: haveProtoc), .ownThread, arguments: references)
    func realMessagesRoundTripByteForByte(_ type: String, _ text: String) throws {
        let reference = try csiEncode(type, text)
        let reencoded: [UInt8]
        switch type {
        case "csi.v1.NodeGetInfoResponse": reencoded = try NodeGetInfoResponse(serializedBytes: reference).serializedBytes()
        case "csi.v1.GetPluginCapabilitiesResponse":
            reencoded = try GetPluginCapabilitiesResponse(serializedBytes: reference).serializedBytes()
        case "csi.v1.CreateVolumeRequest": reencoded = try CreateVolumeRequest(serializedBytes: reference).serializedBytes()
        case "csi.v1.GetCapacityResponse": reencoded = try GetCapacityResponse(serializedBytes: reference).serializedBytes()
        case "csi.v1.NodeGetVolumeStatsResponse": reencoded = try NodeGetVolumeStatsResponse(serializedBytes: reference).serializedBytes()
        case "csi.v1.CreateSnapshotResponse": reencoded = try CreateSnapshotResponse(serializedBytes: reference).serializedBytes()
        case "csi.v1.ControllerGetCapabilitiesResponse":
            reencoded = try ControllerGetCapabilitiesResponse(serializedBytes: reference).serializedBytes()
        case "csi.v1.NodeStageVolumeRequest": reencoded = try NodeStageVolumeRequest(serializedBytes: reference).serializedBytes()
        default:
            Issue.record("no case for \(type)")
            return
        }
        #expect(reencoded == reference)
    }

    @Test(.enabled(if: haveProtoc), .ownThread)
    func wrappersMapToOptionals() throws {
        let bytes = try csiEncode(
            "csi.v1.GetCapacityResponse", "available_capacity: 42 maximum_volume_size { value: 7 } minimum_volume_size { }")
        let response = try GetCapacityResponse(serializedBytes: bytes)
        #expect(response.availableCapacity == 42)
        #expect(response.maximumVolumeSize == 7)
        #expect(response.minimumVolumeSize == 0)  // present but empty: the default
        let absent = try GetCapacityResponse(serializedBytes: try csiEncode("csi.v1.GetCapacityResponse", "available_capacity: 1"))
        #expect(absent.maximumVolumeSize == nil)
    }

    @Test func nodeGetInfoAnswerFromTheFieldNotes() throws {
        var response = NodeGetInfoResponse()
        response.nodeID = "node0"
        response.accessibleTopology = Topology(segments: ["openebs.io/nodename": "node0"])
        let decoded = try NodeGetInfoResponse(serializedBytes: response.serializedBytes())
        #expect(decoded.nodeID == "node0")
        #expect(decoded.accessibleTopology?.segments["openebs.io/nodename"] == "node0")
    }

    @Test func secretsAreRedactedInDescriptions() {
        var request = NodeStageVolumeRequest()
        request.volumeID = "vol-1"
        request.secrets = ["password": "hunter2-very-secret", "token": "tok-abc-123"]
        for text in [request.description, request.debugDescription, String(describing: request), String(reflecting: request), "\(request)"]
        {
            #expect(!text.contains("hunter2-very-secret"))
            #expect(!text.contains("tok-abc-123"))
            #expect(text.contains("secrets: <redacted>"))
            #expect(text.contains("volumeID: \"vol-1\""))
        }
        #expect(NodeStageVolumeRequest.protoSecretFieldNames == ["secrets"])
        #expect(request.protoSecretValueCount == 2)
        #expect(NodeGetInfoRequest.protoSecretFieldNames.isEmpty)
        // Nested in a description of another value, still redacted.
        let publish = sampleNodePublish()
        #expect(!publish.description.contains("s3cr3t-hunter2"))
        #expect(publish.description.contains("mode: .singleNodeWriter"))
    }

    @Test func unknownFieldsAreReEmittedByteForByte() throws {
        var bytes = NodeGetInfoRequest().serializedBytes()
        #expect(bytes.isEmpty)
        // Fields 99 (varint), 100 (string), 101 (fixed32), 102 (group) on a message that has none.
        let unknown: [UInt8] = [0x98, 0x06, 0x2a, 0xa2, 0x06, 0x02, 0x68, 0x69, 0xad, 0x06, 1, 2, 3, 4, 0xb3, 0x06, 0x08, 0x01, 0xb4, 0x06]
        bytes = unknown
        let message = try NodeGetInfoRequest(serializedBytes: bytes)
        #expect(message.unknownFields.bytes == unknown)
        #expect(message.serializedBytes() == unknown)
        // Unknown fields between known ones come out after the known ones, unchanged.
        let mixed: [UInt8] = [0x0a, 0x01, 0x6e] + unknown + [0x10, 0x05]
        let info = try NodeGetInfoResponse(serializedBytes: mixed)
        #expect(info.nodeID == "n")
        #expect(info.maxVolumesPerNode == 5)
        #expect(info.serializedBytes() == [0x0a, 0x01, 0x6e, 0x10, 0x05] + unknown)
    }

    @Test func openEnumsKeepUnknownValues() throws {
        let bytes: [UInt8] = [0x08, 0x63]  // AccessMode { mode: 99 }
        let mode = try VolumeCapability.AccessMode(serializedBytes: bytes)
        #expect(mode.mode == .unrecognized(99))
        #expect(mode.mode.rawValue == 99)
        #expect(mode.serializedBytes() == bytes)
        #expect(VolumeCapability.AccessMode.Mode(rawValue: 1) == .singleNodeWriter)
        #expect(VolumeCapability.AccessMode.Mode.unrecognized(1) == .singleNodeWriter)
    }

    @Test func oneofIsLastWinsAndRepeatedEmbeddedMessagesMerge() throws {
        // VolumeCapability: block {} then mount { fs_type: "ext4" } then mount { mount_flags: "ro" }
        let bytes: [UInt8] =
            [0x0a, 0x00]
            + [0x12, 0x06, 0x0a, 0x04] + Array("ext4".utf8)
            + [0x12, 0x04, 0x12, 0x02] + Array("ro".utf8)
            + [0x1a, 0x02, 0x08, 0x01] + [0x1a, 0x00]  // access_mode twice: merged, mode stays 1
        let capability = try VolumeCapability(serializedBytes: bytes)
        #expect(capability.accessType == .mount(VolumeCapability.MountVolume(fsType: "ext4", mountFlags: ["ro"])))
        #expect(capability.mount?.fsType == "ext4")
        #expect(capability.block == nil)
        #expect(capability.accessMode?.mode == .singleNodeWriter)
    }

    @Test func mapEntriesMissingKeyOrValueAndDuplicates() throws {
        // publish_context entries: { value: "v" } (no key), { key: "k" } (no value), {k: a}, {k: b}
        let bytes: [UInt8] =
            [0x12, 0x03, 0x12, 0x01, 0x76]
            + [0x12, 0x03, 0x0a, 0x01, 0x6a]
            + [0x12, 0x06, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x61]
            + [0x12, 0x06, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x62]
        let request = try NodePublishVolumeRequest(serializedBytes: bytes)
        #expect(request.publishContext == ["": "v", "j": "", "k": "b"])
    }

    /// One publish_context entry's bytes: field 2, then the entry message.
    func publishContextEntry(_ key: String, _ value: String) -> [UInt8] {
        let body = [0x0a, UInt8(key.utf8.count)] + Array(key.utf8) + [0x12, UInt8(value.utf8.count)] + Array(value.utf8)
        return [0x12, UInt8(body.count)] + body
    }

    @Test func mapRunsLongerThanOneBatchAndSplitRunsMergeLastKeyWins() throws {
        // 300 entries in a row (many batches of 16), then volume_id, then more entries
        // repeating keys of the first run: the later values win, the other keys stay.
        var bytes: [UInt8] = []
        for i in 0..<300 { bytes += publishContextEntry("key-\(i)", "first-\(i)") }
        bytes += [0x0a, 0x02] + Array("id".utf8)
        bytes += publishContextEntry("key-7", "second") + publishContextEntry("key-299", "second")
        bytes += publishContextEntry("key-7", "third") + publishContextEntry("new", "x")
        let request = try NodePublishVolumeRequest(serializedBytes: bytes)
        #expect(request.volumeID == "id")
        #expect(request.publishContext.count == 301)
        #expect(request.publishContext["key-0"] == "first-0")
        #expect(request.publishContext["key-256"] == "first-256")
        #expect(request.publishContext["key-7"] == "third")
        #expect(request.publishContext["key-299"] == "second")
        #expect(request.publishContext["new"] == "x")
        // Duplicates inside one run: the last one wins there too.
        let run = publishContextEntry("a", "1") + publishContextEntry("b", "2") + publishContextEntry("a", "3")
        #expect(try NodePublishVolumeRequest(serializedBytes: run).publishContext == ["a": "3", "b": "2"])
    }

    @Test func errorsInsideARunOfMapEntries() {
        let good = publishContextEntry("devicePath", "/dev/vg0/a-volume-name-longer-than-fifteen")
        // The third entry's value is not UTF-8: the offset is the value's first byte.
        var bad = good + good
        let valueStart = bad.count + 2 + 2 + 1 + 2
        bad += [0x12, 0x07, 0x0a, 0x01, 0x6b, 0x12, 0x02, 0xc3, 0x28]
        do {
            _ = try NodePublishVolumeRequest(serializedBytes: bad)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidUTF8)
            #expect(error.fieldNumber == 2)
            #expect(error.offset == valueStart)
        }
        // The second entry claims more bytes than are left.
        let truncated = good + [0x12, 0x7f, 0x0a, 0x01, 0x6b]
        do {
            _ = try NodePublishVolumeRequest(serializedBytes: truncated)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .lengthOutOfBounds)
            #expect(error.fieldNumber == 2)
            #expect(error.offset == good.count + 1)
        }
        // An entry whose own fields run past its end.
        let inner = good + [0x12, 0x03, 0x0a, 0x05, 0x6b]
        do {
            _ = try NodePublishVolumeRequest(serializedBytes: inner)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .lengthOutOfBounds)
            #expect(error.offset == good.count + 3)
        }
    }

    @Test func errorsNameTheFieldAndOffset() {
        // volume_id (field 1) claims 10 bytes, only 2 follow.
        do {
            _ = try NodePublishVolumeRequest(serializedBytes: [0x0a, 0x0a, 0x61, 0x62])
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .lengthOutOfBounds)
            #expect(error.fieldNumber == 1)
            #expect(error.offset == 1)
            #expect(error.message.contains("field 1"))
        }
        // Invalid UTF-8 inside the nested capability's fs_type: offset counts from the outer buffer.
        do {
            _ = try NodePublishVolumeRequest(serializedBytes: [0x2a, 0x06, 0x12, 0x04, 0x0a, 0x02, 0xff, 0xfe])
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidUTF8)
            #expect(error.offset == 6)
        }
    }

    @Test func registrationTypesLiveInTheirNamespace() throws {
        let info = PluginRegistration.PluginInfo(
            type: "CSIPlugin", name: "lvm.csi.io", endpoint: "/var/lib/kubelet/plugins/lvm.csi.io/csi.sock",
            supportedVersions: ["1.0.0"])
        #expect(try PluginRegistration.PluginInfo(serializedBytes: info.serializedBytes()) == info)
        #expect(PluginRegistration.PluginInfo.protoMessageName == "pluginregistration.PluginInfo")
        #expect(PluginRegistration.RegistrationMethods.getInfo.path == "/pluginregistration.Registration/GetInfo")
        #expect(NodeMethods.nodeGetInfo.path == "/csi.v1.Node/NodeGetInfo")
        #expect(NodeMethods.all.contains(NodeMethods.nodePublishVolume))
        #expect(SnapshotMetadataMethods.getMetadataAllocated.kind == .serverStreaming)
    }
}
