/// Who the driver is and how it describes this node: what the Identity, Controller and Node
/// servers report, and the node they check requests against.
///
/// ```swift
/// var options = DriverOptions(name: "hostpath.csi.example.com", version: "0.1.0", nodeID: "node-1")
/// options.topology = ["topology.hostpath.csi.example.com/node": "node-1"]
/// options.maxVolumesPerNode = 100
/// ```
public struct DriverOptions: Sendable, Hashable {
    /// The CSI driver name (GetPluginInfo), for example `hostpath.csi.example.com`.
    public var name: String
    /// The driver's version (GetPluginInfo's `vendor_version`).
    public var version: String
    /// Free-form GetPluginInfo `manifest` entries, for example the backend's kind.
    public var manifest: [String: String]
    /// This node's id (NodeGetInfo's `node_id`).
    public var nodeID: String
    /// The topology segments of this node: NodeGetInfo's accessible topology, every created
    /// volume's, and what CreateVolume's requisite topology and GetCapacity's topology must match.
    /// Empty for a driver without topology (then VOLUME_ACCESSIBILITY_CONSTRAINTS is not advertised).
    public var topology: [String: String]
    /// The most volumes this node takes (NodeGetInfo); 0 means no limit.
    public var maxVolumesPerNode: Int64
    /// Whether a Controller service is served beside Identity (GetPluginCapabilities advertises
    /// CONTROLLER_SERVICE).
    public var servesController: Bool
    /// The CreateVolume and GetCapacity parameter keys passed on to the backend as
    /// `VolumeRequest.parameters`; other keys are INVALID_ARGUMENT. `fsType` and
    /// `csi.storage.k8s.io/…` keys are always accepted and never passed on. Empty by default.
    public var volumeParameters: Set<String>
    /// Whether the backend takes snapshots (true by default). Without, ControllerGetCapabilities
    /// leaves out CREATE_DELETE_SNAPSHOT and LIST_SNAPSHOTS, the snapshot calls are UNIMPLEMENTED
    /// and a volume content source from a snapshot is INVALID_ARGUMENT.
    public var snapshots: Bool
    /// Whether the backend clones volumes: fills a new volume from ``Storage/VolumeRequest/sourceVolumeID``
    /// (false by default). With it, ControllerGetCapabilities advertises CLONE_VOLUME; without, a
    /// volume content source from a volume is INVALID_ARGUMENT.
    public var clones: Bool
    /// Whether a GroupController service is served (false by default): set it when the backend's
    /// ``Storage/VolumeBackend/supportsGroupSnapshots`` is true and a ``GroupControllerServer`` is
    /// registered; GetPluginCapabilities then advertises GROUP_CONTROLLER_SERVICE.
    public var groupSnapshots: Bool

    /// Creates options for a driver serving Identity, Controller and Node, without topology.
    /// - Parameters:
    ///   - name: the CSI driver name.
    ///   - version: the driver's version.
    ///   - nodeID: this node's id.
    public init(name: String, version: String, nodeID: String) {
        self.name = name
        self.version = version
        self.manifest = [:]
        self.nodeID = nodeID
        self.topology = [:]
        self.maxVolumesPerNode = 0
        self.servesController = true
        self.volumeParameters = []
        self.snapshots = true
        self.clones = false
        self.groupSnapshots = false
    }

    /// Whether every segment of `segments` whose key this node has names this node's value.
    func matches(_ segments: [String: String]) -> Bool {
        segments.allSatisfy { key, value in topology[key].map { $0 == value } ?? true }
    }

    /// This node's segments as `key=value`, for messages.
    var topologyDescription: String {
        topology.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    }
}
