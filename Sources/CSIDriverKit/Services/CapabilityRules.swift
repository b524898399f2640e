package import CSI
package import RPCCore

/// What volume capabilities this driver supports, and the field checks every service shares.
package enum CapabilityRules {
    /// Filesystems the driver can make and mount.
    package static let filesystems: Set<String> = ["ext4", "xfs"]
    /// The filesystem made when neither the capability nor the parameters name one.
    package static let defaultFilesystem = "ext4"

    /// Why `capability` is not supported, or nil when it is.
    package static func unsupportedReason(_ capability: VolumeCapability) -> String? {
        guard let accessMode = capability.accessMode else { return "the volume capability has no access_mode" }
        switch accessMode.mode {
        case .singleNodeWriter, .singleNodeReaderOnly, .singleNodeSingleWriter, .singleNodeMultiWriter:
            break
        case .unknown:
            return "access mode UNKNOWN is not a valid access mode"
        default:
            return "access mode \(accessMode.mode) is not supported: local volumes are reachable from one node only"
        }
        switch capability.accessType {
        case .block?:
            return nil
        case .mount(let mount)?:
            if !mount.fsType.isEmpty && !filesystems.contains(mount.fsType) {
                return "filesystem '\(mount.fsType)' is not supported; expected one of \(filesystems.sorted().joined(separator: ", "))"
            }
            return nil
        case nil:
            return "the volume capability has neither block nor mount access type"
        }
    }

    /// Throws INVALID_ARGUMENT unless `capabilities` is non-empty and all are supported.
    package static func requireSupported(_ capabilities: [VolumeCapability], field: String = "volume_capabilities") throws(RPCError) {
        guard !capabilities.isEmpty else { throw Rules.missing(field) }
        for capability in capabilities {
            if let reason = unsupportedReason(capability) {
                throw RPCError(code: .invalidArgument, message: "\(field): \(reason)")
            }
        }
    }

    /// Whether the capability asks for a raw block device.
    package static func isBlock(_ capability: VolumeCapability?) -> Bool {
        if case .block? = capability?.accessType { return true }
        return false
    }

    /// Whether the access mode allows no writes.
    package static func isReadOnlyMode(_ capability: VolumeCapability) -> Bool {
        capability.accessMode?.mode == .singleNodeReaderOnly
    }
}

/// Small checks shared by every service.
package enum Rules {
    /// INVALID_ARGUMENT for a missing required field.
    package static func missing(_ field: String) -> RPCError {
        RPCError(code: .invalidArgument, message: "\(field) is required")
    }

    /// Throws INVALID_ARGUMENT when `value` is empty.
    package static func require(_ value: String, _ field: String) throws(RPCError) {
        if value.isEmpty { throw missing(field) }
    }

    /// Whether `id` could be an id this driver made (so it may reach a backend command line).
    package static func isPlausibleID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return !bytes.isEmpty && bytes.count <= 127 && bytes[0] != UInt8(ascii: "-")
            && bytes.allSatisfy {
                (48...57).contains($0) || (97...122).contains($0) || (65...90).contains($0)
                    || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "+")
            }
            && id != "." && id != ".."
    }

    /// A paging token: the id after which the next page starts.
    package static func pageToken(after id: String) -> String { "after:" + id }

    /// The id a paging token continues after, or ABORTED when the token is not one this driver made.
    package static func pageStart(_ token: String) throws(RPCError) -> String? {
        if token.isEmpty { return nil }
        guard token.hasPrefix("after:"), token.count > 6 else {
            throw RPCError(code: .aborted, message: "starting_token '\(token)' is not a token this driver returned")
        }
        return String(token.dropFirst(6))
    }

    /// One page of `items` (sorted by `id`) after `token`, at most `maxEntries` (0: all).
    package static func page<T>(
        _ items: [T], id: (T) -> String, maxEntries: Int32, token: String
    ) throws(RPCError) -> (items: [T], next: String) {
        guard maxEntries >= 0 else {
            throw RPCError(code: .invalidArgument, message: "max_entries must not be negative, found \(maxEntries)")
        }
        let sorted = items.sorted { id($0) < id($1) }
        var rest = sorted[...]
        if let start = try pageStart(token) {
            rest = sorted.drop { id($0) <= start }
        }
        guard maxEntries > 0, rest.count > Int(maxEntries) else { return (Array(rest), "") }
        let page = Array(rest.prefix(Int(maxEntries)))
        return (page, pageToken(after: id(page.last!)))
    }
}
