// The proto3 JSON mapping of every CSI and plugin-registration message (ProtoWire's
// ProtoJSONCoder over the descriptors generated beside the types).
public import ProtoWire

extension ProtoJSONCoder {
    /// A coder for every message of CSI v1 (`csi.v1.*`) and the kubelet's plugin registration
    /// API (`pluginregistration.*`), and the well-known types they use.
    ///
    /// The descriptors are compiled in and checked by the tests, so building it cannot fail.
    public static let csi: ProtoJSONCoder = {
        do {
            return try ProtoJSONCoder(files: [CsiProtoFile.descriptor, PluginRegistration.PluginregistrationProtoFile.descriptor])
        } catch {
            fatalError("the compiled-in CSI descriptors do not read: \(error)")
        }
    }()
}
