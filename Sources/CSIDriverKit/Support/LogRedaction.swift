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

extension CreateVolumeRequest: MountFlagRedacting {
    package func redactingMountFlags() -> Self {
        var copy = self
        copy.volumeCapabilities = volumeCapabilities.map { $0.redactingMountFlags() }
        return copy
    }
}

extension ValidateVolumeCapabilitiesRequest: MountFlagRedacting {
    package func redactingMountFlags() -> Self {
        var copy = self
        copy.volumeCapabilities = volumeCapabilities.map { $0.redactingMountFlags() }
        return copy
    }
}

extension GetCapacityRequest: MountFlagRedacting {
    package func redactingMountFlags() -> Self {
        var copy = self
        copy.volumeCapabilities = volumeCapabilities.map { $0.redactingMountFlags() }
        return copy
    }
}

extension ControllerExpandVolumeRequest: MountFlagRedacting {
    package func redactingMountFlags() -> Self {
        var copy = self
        copy.volumeCapability = volumeCapability?.redactingMountFlags()
        return copy
    }
}

extension NodeStageVolumeRequest: MountFlagRedacting {
    package func redactingMountFlags() -> Self {
        var copy = self
        copy.volumeCapability = volumeCapability?.redactingMountFlags()
        return copy
    }
}

extension NodePublishVolumeRequest: MountFlagRedacting {
    package func redactingMountFlags() -> Self {
        var copy = self
        copy.volumeCapability = volumeCapability?.redactingMountFlags()
        return copy
    }
}

extension NodeExpandVolumeRequest: MountFlagRedacting {
    package func redactingMountFlags() -> Self {
        var copy = self
        copy.volumeCapability = volumeCapability?.redactingMountFlags()
        return copy
    }
}
