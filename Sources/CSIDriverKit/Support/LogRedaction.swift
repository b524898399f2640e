package import CSI

/// Requests carrying volume capabilities describe themselves for logs with mount flags replaced
/// by a count: CSI allows mount flags to hold sensitive values, so they never reach a log.
package protocol MountFlagRedacting {
    /// A copy with every `mount_flags` list replaced by a single count entry.
    func redactingMountFlags() -> Self
}

extension VolumeCapability {
    func redactingMountFlags() -> VolumeCapability {
        guard case .mount(var mount)? = accessType, !mount.mountFlags.isEmpty else { return self }
        mount.mountFlags = ["<\(mount.mountFlags.count) mount flags>"]
        var copy = self
        copy.accessType = .mount(mount)
        return copy
    }
}

/// A request with a list of volume capabilities (`volume_capabilities`).
package protocol VolumeCapabilitiesRequest: MountFlagRedacting {
    var volumeCapabilities: [VolumeCapability] { get set }
}

extension VolumeCapabilitiesRequest {
    package func redactingMountFlags() -> Self {
        var copy = self
        copy.volumeCapabilities = volumeCapabilities.map { $0.redactingMountFlags() }
        return copy
    }
}

/// A request with one volume capability (`volume_capability`).
package protocol VolumeCapabilityRequest: MountFlagRedacting {
    var volumeCapability: VolumeCapability? { get set }
}

extension VolumeCapabilityRequest {
    package func redactingMountFlags() -> Self {
        var copy = self
        copy.volumeCapability = volumeCapability?.redactingMountFlags()
        return copy
    }
}

extension CreateVolumeRequest: VolumeCapabilitiesRequest {}
extension ValidateVolumeCapabilitiesRequest: VolumeCapabilitiesRequest {}
extension GetCapacityRequest: VolumeCapabilitiesRequest {}
extension ControllerExpandVolumeRequest: VolumeCapabilityRequest {}
extension NodeStageVolumeRequest: VolumeCapabilityRequest {}
extension NodePublishVolumeRequest: VolumeCapabilityRequest {}
extension NodeExpandVolumeRequest: VolumeCapabilityRequest {}
