// One NodePublishVolumeRequest as the kubelet sends it for a mounted LVM volume: maps (publish and
// volume context, secrets), a nested capability with mount flags, and long paths. About 500 bytes
// on the wire. Every codec builds it from these values, so every codec handles the same message.

/// The field values of the sample request.
public enum Sample {
    public static let volumeID = "pvc-6f1d2c9a-41b7-4e0b-9a52-8c3d7e0f1b24"
    public static let publishContext = ["devicePath": "/dev/vg-csi/pvc-6f1d2c9a-41b7-4e0b-9a52-8c3d7e0f1b24"]
    public static let stagingTargetPath =
        "/var/lib/kubelet/plugins/kubernetes.io/csi/lvm.csi.swift-csi.io/3f9c0b6d2e8a7f1c/globalmount"
    public static let targetPath =
        "/var/lib/kubelet/pods/0c7e4b52-9f1a-4d3e-8b6c-2a5f7d9e1c30/volumes/kubernetes.io~csi/pvc-6f1d2c9a-41b7-4e0b-9a52-8c3d7e0f1b24/mount"
    public static let fsType = "ext4"
    public static let mountFlags = ["noatime", "discard"]
    /// `SINGLE_NODE_WRITER`.
    public static let accessMode = 1
    public static let readonly = false
    public static let secrets = ["passphrase": "s3cr3t-0123456789"]
    public static let volumeContext = [
        "csi.storage.k8s.io/pod.name": "web-0",
        "csi.storage.k8s.io/pod.uid": "0c7e4b52-9f1a-4d3e-8b6c-2a5f7d9e1c30",
    ]
}
