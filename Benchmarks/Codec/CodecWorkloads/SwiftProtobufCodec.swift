public import PeerMessages
import SwiftProtobuf

/// The sample request through swift-protobuf.
public enum SwiftProtobufCodec {
    /// The sample as a swift-protobuf message.
    public static func sample() -> Csi_V1_NodePublishVolumeRequest {
        var m = Csi_V1_NodePublishVolumeRequest()
        m.volumeID = Sample.volumeID
        m.publishContext = Sample.publishContext
        m.stagingTargetPath = Sample.stagingTargetPath
        m.targetPath = Sample.targetPath
        var mount = Csi_V1_VolumeCapability.MountVolume()
        mount.fsType = Sample.fsType
        mount.mountFlags = Sample.mountFlags
        m.volumeCapability.mount = mount
        m.volumeCapability.accessMode.mode = .init(rawValue: Sample.accessMode) ?? .unknown
        m.readonly = Sample.readonly
        m.secrets = Sample.secrets
        m.volumeContext = Sample.volumeContext
        return m
    }

    /// Encodes a message.
    @inline(never)
    public static func encode(_ message: Csi_V1_NodePublishVolumeRequest) -> [UInt8] {
        // Encoding a fully initialised proto3 message cannot fail.
        (try? message.serializedBytes()) ?? []
    }

    /// Decodes a message; nil when the bytes are not a valid request.
    @inline(never)
    public static func decode(_ bytes: [UInt8]) -> Csi_V1_NodePublishVolumeRequest? {
        try? Csi_V1_NodePublishVolumeRequest(serializedBytes: bytes)
    }
}
