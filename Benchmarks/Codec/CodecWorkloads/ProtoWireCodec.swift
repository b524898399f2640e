public import CSI
import ProtoWire

/// The sample request through ProtoWire and the generated CSI types.
public enum ProtoWireCodec {
    /// The sample as a CSI message.
    public static func sample() -> NodePublishVolumeRequest {
        var m = NodePublishVolumeRequest()
        m.volumeID = Sample.volumeID
        m.publishContext = Sample.publishContext
        m.stagingTargetPath = Sample.stagingTargetPath
        m.targetPath = Sample.targetPath
        var capability = VolumeCapability()
        var mount = VolumeCapability.MountVolume()
        mount.fsType = Sample.fsType
        mount.mountFlags = Sample.mountFlags
        capability.mount = mount
        var access = VolumeCapability.AccessMode()
        access.mode = .singleNodeWriter
        capability.accessMode = access
        m.volumeCapability = capability
        m.readonly = Sample.readonly
        m.secrets = Sample.secrets
        m.volumeContext = Sample.volumeContext
        return m
    }

    /// Encodes a message into a buffer of exactly its size.
    @inline(never)
    public static func encode(_ message: NodePublishVolumeRequest) -> [UInt8] {
        message.serializedBytes()
    }

    /// Decodes a message; nil when the bytes are not a valid request.
    @inline(never)
    public static func decode(_ bytes: [UInt8]) -> NodePublishVolumeRequest? {
        try? NodePublishVolumeRequest(serializedBytes: bytes)
    }
}
