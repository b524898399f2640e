public import CSI
public import RPCCore
import Platform
package import Storage

#if canImport(Glibc)
    import Glibc
#endif

/// csi.v1.Node: staging (format + mount), publishing (bind mounts), stats and online expansion.
///
/// Every mutating call locks its volume id; NodeGetInfo, NodeGetCapabilities and
/// NodeGetVolumeStats take no lock. What is mounted where is read from /proc/self/mountinfo on
/// every call, so a restarted driver continues where the last one stopped, and a repeated
/// request completes an interrupted one.
public struct NodeServer: NodeService {
    let configuration: DriverConfiguration
    let backend: any VolumeBackend
    let mounter: any Mounter
    let paths: KubeletPathPolicy
    let locks: VolumeLocks
    let log: RequestLog

    package init(
        configuration: DriverConfiguration, backend: any VolumeBackend, mounter: any Mounter, paths: KubeletPathPolicy,
        locks: VolumeLocks, log: RequestLog
    ) {
        self.configuration = configuration
        self.backend = backend
        self.mounter = mounter
        self.paths = paths
        self.locks = locks
        self.log = log
    }

    public func nodeGetInfo(_ request: NodeGetInfoRequest, context: ServerContext) async throws -> NodeGetInfoResponse {
        try await log.call("NodeGetInfo", request) {
            var response = NodeGetInfoResponse()
            response.nodeID = configuration.nodeID
            response.maxVolumesPerNode = configuration.maxVolumesPerNode
            var topology = Topology()
            topology.segments = configuration.topologySegments
            response.accessibleTopology = topology
            return response
        }
    }

    public func nodeGetCapabilities(_ request: NodeGetCapabilitiesRequest, context: ServerContext) async throws
        -> NodeGetCapabilitiesResponse
    {
        try await log.call("NodeGetCapabilities", request) {
            let types: [NodeServiceCapability.RPC.TypeEnum] = [
                .stageUnstageVolume, .getVolumeStats, .expandVolume, .volumeCondition, .singleNodeMultiWriter,
            ]
            var response = NodeGetCapabilitiesResponse()
            response.capabilities = types.map { type in
                var rpc = NodeServiceCapability.RPC()
                rpc.type = type
                var capability = NodeServiceCapability()
                capability.type = .rpc(rpc)
                return capability
            }
            return response
        }
    }

    public func nodeStageVolume(_ request: NodeStageVolumeRequest, context: ServerContext) async throws -> NodeStageVolumeResponse {
        try await log.call("NodeStageVolume", request) {
            try Rules.require(request.volumeID, "volume_id")
            try Rules.require(request.stagingTargetPath, "staging_target_path")
            guard let capability = request.volumeCapability else { throw Rules.missing("volume_capability") }
            if let reason = CapabilityRules.unsupportedReason(capability) {
                throw RPCError(code: .invalidArgument, message: "volume_capability: \(reason)")
            }
            let staging = try checked(request.stagingTargetPath, field: "staging_target_path")
            let options = try mountOptions(capability)
            return try await locks.withLock(request.volumeID) {
                let device = try await device(of: request.volumeID)
                // Raw block volumes are published straight from the device node: nothing to stage.
                guard case .mount(let mount)? = capability.accessType else { return NodeStageVolumeResponse() }
                let readOnly = CapabilityRules.isReadOnlyMode(capability)
                let asked = mount.fsType.isEmpty ? (request.volumeContext["fsType"] ?? "") : mount.fsType
                let number = try Self.deviceNumber(device)
                if let existing = try await mountInfo(at: staging) {
                    guard (existing.major, existing.minor) == number else {
                        throw RPCError(
                            code: .alreadyExists,
                            message:
                                "staging_target_path \(staging) already has \(existing.source) mounted, not volume \(request.volumeID) (\(device))"
                        )
                    }
                    guard existing.readOnly == readOnly, asked.isEmpty || existing.fsType == asked else {
                        throw RPCError(
                            code: .alreadyExists,
                            message:
                                "volume \(request.volumeID) is already staged at \(staging) as \(existing.fsType)\(existing.readOnly ? " read-only" : ""), which the requested capability does not match"
                        )
                    }
                    return NodeStageVolumeResponse()
                }
                var fsType = asked
                if let found = try await mapped("probing \(device)", { try await mounter.filesystem(on: device) }) {
                    if !asked.isEmpty && found != asked {
                        throw RPCError(
                            code: .failedPrecondition,
                            message:
                                "volume \(request.volumeID) already holds \(found); the capability asks for \(asked), and it is never formatted over"
                        )
                    }
                    fsType = found
                } else {
                    if fsType.isEmpty { fsType = CapabilityRules.defaultFilesystem }
                    if readOnly {
                        throw RPCError(
                            code: .failedPrecondition,
                            message: "volume \(request.volumeID) has no filesystem, and a read-only stage cannot make one")
                    }
                    try await checkRoom(for: fsType, on: device, volumeID: request.volumeID)
                    _ = try await mapped("formatting volume \(request.volumeID) as \(fsType)") {
                        try await mounter.makeFilesystem(on: device, fsType: fsType)
                    }
                }
                var stageOptions = options
                if readOnly { stageOptions.flags |= MountFlag.readOnly }
                // A volume restored from a snapshot carries the source's XFS UUID; without
                // `nouuid` it cannot be mounted while the source is.
                if fsType == "xfs" && !stageOptions.data.split(separator: ",").contains("nouuid") {
                    stageOptions.data = stageOptions.data.isEmpty ? "nouuid" : stageOptions.data + ",nouuid"
                }
                try await mapped("mounting volume \(request.volumeID) at \(staging)") {
                    try await mounter.mount(device: device, at: staging, fsType: fsType, options: stageOptions)
                }
                return NodeStageVolumeResponse()
            }
        }
    }

    public func nodeUnstageVolume(_ request: NodeUnstageVolumeRequest, context: ServerContext) async throws -> NodeUnstageVolumeResponse {
        try await log.call("NodeUnstageVolume", request) {
            try Rules.require(request.volumeID, "volume_id")
            try Rules.require(request.stagingTargetPath, "staging_target_path")
            let staging = try checked(request.stagingTargetPath, field: "staging_target_path")
            return try await locks.withLock(request.volumeID) {
                // The staging directory belongs to the CO, which made it: only the mount goes.
                try await unmount(staging, volumeID: request.volumeID, remove: false)
                return NodeUnstageVolumeResponse()
            }
        }
    }

    public func nodePublishVolume(_ request: NodePublishVolumeRequest, context: ServerContext) async throws -> NodePublishVolumeResponse {
        try await log.call("NodePublishVolume", request) {
            try Rules.require(request.volumeID, "volume_id")
            try Rules.require(request.targetPath, "target_path")
            guard let capability = request.volumeCapability else { throw Rules.missing("volume_capability") }
            if let reason = CapabilityRules.unsupportedReason(capability) {
                throw RPCError(code: .invalidArgument, message: "volume_capability: \(reason)")
            }
            try Rules.require(request.stagingTargetPath, "staging_target_path")
            let target = try checked(request.targetPath, field: "target_path")
            let staging = try checked(request.stagingTargetPath, field: "staging_target_path")
            let readOnly = request.readonly || CapabilityRules.isReadOnlyMode(capability)
            let block = CapabilityRules.isBlock(capability)
            var options = try mountOptions(capability)
            if readOnly { options.flags |= MountFlag.readOnly }
            return try await locks.withLock(request.volumeID) {
                let device = try await device(of: request.volumeID)
                let number = try Self.deviceNumber(device)
                let source: String
                if block {
                    source = device
                } else {
                    guard let staged = try await mountInfo(at: staging) else {
                        throw RPCError(
                            code: .failedPrecondition,
                            message: "volume \(request.volumeID) is not staged at \(staging): call NodeStageVolume first")
                    }
                    guard (staged.major, staged.minor) == number else {
                        throw RPCError(
                            code: .failedPrecondition, message: "\(staging) holds \(staged.source), not volume \(request.volumeID)")
                    }
                    source = staging
                }
                if let existing = try await mountInfo(at: target) {
                    // A bind of a device node shows devtmpfs; the node it shows stands for the
                    // volume's device number (even when that node was deleted and made again, as an
                    // LV deactivated and activated with the same minor is). A bind of the staged
                    // filesystem shows the volume's own device number.
                    let same = block ? Self.isDeviceNode(target, number: number) : (existing.major, existing.minor) == number
                    guard same else {
                        throw RPCError(
                            code: .alreadyExists,
                            message: "target_path \(target) already has \(existing.source) mounted, not volume \(request.volumeID)")
                    }
                    guard existing.readOnly == readOnly else {
                        throw RPCError(
                            code: .alreadyExists,
                            message:
                                "volume \(request.volumeID) is already published at \(target) \(existing.readOnly ? "read-only" : "read-write"), not \(readOnly ? "read-only" : "read-write")"
                        )
                    }
                    return NodePublishVolumeResponse()
                }
                if block {
                    // The bind target of a device node is a file; the kubelet may not have made its directory.
                    try Self.makeParents(of: target)
                }
                try await mapped("publishing volume \(request.volumeID) at \(target)") {
                    try await mounter.bindMount(source: source, at: target, options: options)
                }
                return NodePublishVolumeResponse()
            }
        }
    }

    public func nodeUnpublishVolume(_ request: NodeUnpublishVolumeRequest, context: ServerContext) async throws
        -> NodeUnpublishVolumeResponse
    {
        try await log.call("NodeUnpublishVolume", request) {
            try Rules.require(request.volumeID, "volume_id")
            try Rules.require(request.targetPath, "target_path")
            let target = try checked(request.targetPath, field: "target_path")
            return try await locks.withLock(request.volumeID) {
                // The spec asks the plugin to delete the target it created.
                try await unmount(target, volumeID: request.volumeID, remove: true)
                return NodeUnpublishVolumeResponse()
            }
        }
    }

    public func nodeGetVolumeStats(_ request: NodeGetVolumeStatsRequest, context: ServerContext) async throws -> NodeGetVolumeStatsResponse
    {
        try await log.call("NodeGetVolumeStats", request) {
            try Rules.require(request.volumeID, "volume_id")
            try Rules.require(request.volumePath, "volume_path")
            let volume: Storage.Volume? =
                Rules.isPlausibleID(request.volumeID)
                ? try await ErrorMapping.mapping("looking up volume \(request.volumeID)", { try await backend.volume(id: request.volumeID) })
                : nil
            // An unknown volume is NOT_FOUND whatever its path; a bad path is INVALID_ARGUMENT
            // only for a known one.
            let path: String
            do { path = try checked(request.volumePath, field: "volume_path") } catch {
                if volume == nil { throw RPCError(code: .notFound, message: "volume \(request.volumeID) does not exist") }
                throw error
            }
            guard let kind = Self.fileKind(path) else {
                if volume == nil { throw RPCError(code: .notFound, message: "volume \(request.volumeID) does not exist") }
                throw RPCError(code: .notFound, message: "volume \(request.volumeID) is not at volume_path \(path): nothing is there")
            }
            let mounted = try await mountInfo(at: path) != nil
            // A volume that vanished from the backend while still mounted is reported, not hidden.
            guard volume != nil || mounted else {
                throw RPCError(code: .notFound, message: "volume \(request.volumeID) does not exist")
            }
            var response = NodeGetVolumeStatsResponse()
            var condition = CSI.VolumeCondition()
            guard mounted else {
                condition.abnormal = true
                condition.message = "nothing is mounted at \(path): the mount of volume \(request.volumeID) is gone"
                response.volumeCondition = condition
                return response
            }
            let problems = try await deviceProblems(of: request.volumeID, volume: volume, at: path)
            // A dead device may not answer usage questions; the condition says why.
            if kind == S_IFBLK {
                let size = try await usage(bestEffort: !problems.isEmpty) {
                    try await mapped("sizing \(path)") { try await mounter.blockDeviceSize(path) }
                }
                if let size {
                    var bytes = VolumeUsage()
                    bytes.unit = .bytes
                    bytes.total = Int64(clamping: size)
                    response.usage = [bytes]
                }
            } else if let stats = try await usage(bestEffort: !problems.isEmpty, {
                try await mapped("reading usage of \(path)") { try await mounter.statistics(path: path) }
            }) {
                var bytes = VolumeUsage()
                bytes.unit = .bytes
                bytes.total = Int64(clamping: stats.totalBytes)
                bytes.available = Int64(clamping: stats.availableBytes)
                bytes.used = Int64(clamping: stats.usedBytes)
                var inodes = VolumeUsage()
                inodes.unit = .inodes
                inodes.total = Int64(clamping: stats.totalInodes)
                inodes.available = Int64(clamping: stats.freeInodes)
                inodes.used = Int64(clamping: stats.usedInodes)
                response.usage = [bytes, inodes]
            }
            if let volume {
                let all = problems + (volume.condition.abnormal ? [volume.condition.message] : [])
                condition.abnormal = !all.isEmpty
                condition.message =
                    all.isEmpty ? "volume \(request.volumeID) is healthy and mounted at \(path)" : all.joined(separator: "; ")
            } else {
                condition.abnormal = true
                condition.message =
                    (["volume \(request.volumeID) is mounted at \(path) but no longer exists in the backend"] + problems).joined(separator: "; ")
            }
            response.volumeCondition = condition
            return response
        }
    }

    public func nodeExpandVolume(_ request: NodeExpandVolumeRequest, context: ServerContext) async throws -> NodeExpandVolumeResponse {
        try await log.call("NodeExpandVolume", request) {
            try Rules.require(request.volumeID, "volume_id")
            try Rules.require(request.volumePath, "volume_path")
            if let capability = request.volumeCapability, let reason = CapabilityRules.unsupportedReason(capability) {
                throw RPCError(code: .invalidArgument, message: "volume_capability: \(reason)")
            }
            // An unknown volume is NOT_FOUND whatever its path; the path is checked for a known one.
            _ = try await knownVolume(request.volumeID)
            let path = try checked(request.volumePath, field: "volume_path")
            let required = request.capacityRange?.requiredBytes ?? 0
            return try await locks.withLock(request.volumeID) {
                let device = try await device(of: request.volumeID)
                guard let kind = Self.fileKind(path) else {
                    throw RPCError(code: .notFound, message: "volume \(request.volumeID) is not at volume_path \(path): nothing is there")
                }
                if kind != S_IFBLK && !CapabilityRules.isBlock(request.volumeCapability) {
                    guard try await mountInfo(at: path) != nil else {
                        throw RPCError(
                            code: .failedPrecondition,
                            message: "volume \(request.volumeID) is not mounted at \(path); expansion is online only")
                    }
                    try await mapped("growing the filesystem of volume \(request.volumeID) at \(path)") {
                        try await mounter.resizeFilesystem(on: device, mountedAt: path)
                    }
                }
                let size = Int64(clamping: try await mapped("sizing \(device)") { try await mounter.blockDeviceSize(device) })
                if required > 0 && size < required {
                    throw RPCError(
                        code: .outOfRange,
                        message:
                            "volume \(request.volumeID) is \(size) bytes on this node, less than required_bytes \(required): expand it with ControllerExpandVolume first"
                    )
                }
                var response = NodeExpandVolumeResponse()
                response.capacityBytes = size
                return response
            }
        }
    }

    // MARK: - Helpers

    /// The path with symlinks resolved, after checking it lies inside the kubelet directory.
    func checked(_ path: String, field: String) throws(RPCError) -> String {
        do { return try paths.validate(path, field: field) } catch {
            throw RPCError(code: .invalidArgument, message: error.message)
        }
    }

    func mountOptions(_ capability: VolumeCapability) throws(RPCError) -> MountOptions {
        guard case .mount(let mount)? = capability.accessType else { return MountOptions() }
        do { return try MountOptions(parsing: mount.mountFlags) } catch {
            throw RPCError(code: .invalidArgument, message: "volume_capability.mount.mount_flags: \(error.message)")
        }
    }

    /// What is mounted exactly at `path` (the topmost mount), or nil.
    func mountInfo(at path: String) async throws -> MountInfo? {
        try await mapped("reading /proc/self/mountinfo") { try await mounter.mounts() }.last { $0.mountPoint == path }
    }

    /// What is wrong with the device behind `path`, where volume `id` is published: gone or
    /// failing a read (``Mounter/checkDevice(at:)``, any backend), or no longer the volume's
    /// device (``VolumeBackend/deviceProblem(_:ofVolume:)``); empty when nothing is.
    func deviceProblems(of id: String, volume: Storage.Volume?, at path: String) async throws -> [String] {
        let check = try await mapped("checking the device of volume \(id) at \(path)") { try await mounter.checkDevice(at: path) }
        var problems: [String] = []
        if let problem = check.problem { problems.append("volume \(id) at \(path): \(problem)") }
        if volume != nil, let device = check.device,
            let problem = try await mapped("checking the device of volume \(id)", { try await backend.deviceProblem(device, ofVolume: id) })
        {
            problems.append("volume \(id) at \(path) is on device \(device): \(problem)")
        }
        return problems
    }

    /// `body`'s answer; with `bestEffort`, nil instead of its error.
    func usage<T>(bestEffort: Bool, _ body: () async throws -> T) async throws -> T? {
        guard bestEffort else { return try await body() }
        return try? await body()
    }

    /// The volume, or NOT_FOUND.
    func knownVolume(_ id: String) async throws -> Storage.Volume {
        guard Rules.isPlausibleID(id),
            let volume = try await ErrorMapping.mapping("looking up volume \(id)", { try await backend.volume(id: id) })
        else { throw RPCError(code: .notFound, message: "volume \(id) does not exist") }
        return volume
    }

    /// The device node of an existing volume: NOT_FOUND when the volume is unknown,
    /// FAILED_PRECONDITION when this machine cannot give it a device node.
    func device(of id: String) async throws -> String {
        _ = try await knownVolume(id)
        switch try await ErrorMapping.mapping("finding the device of volume \(id)", { try await backend.device(forVolume: id) }) {
        case .node(let path): return path
        case .unavailable(let reason): throw ErrorMapping.deviceUnavailable(volumeID: id, reason: reason)
        }
    }

    /// FAILED_PRECONDITION when `device` is smaller than a `fsType` filesystem can be made on (a
    /// volume created without that filesystem in mind), instead of mkfs's own failure.
    func checkRoom(for fsType: String, on device: String, volumeID: String) async throws {
        let minimum = FilesystemMinimum.bytes(for: fsType)
        guard minimum > 0 else { return }
        let size = try await mapped("sizing \(device)") { try await mounter.blockDeviceSize(device) }
        guard size >= minimum else {
            throw RPCError(
                code: .failedPrecondition,
                message:
                    "volume \(volumeID) is \(size) bytes, too small for \(fsType): an \(fsType) filesystem needs at least \(minimum) bytes (\(minimum >> 20) MiB); create the volume with fs_type \(fsType) so it is made large enough, or expand it first"
            )
        }
    }

    /// Unmounts `path` and, when `remove` is set, deletes it. When nothing is there, the call
    /// succeeds if the volume exists (a repeat) and is NOT_FOUND when it does not.
    func unmount(_ path: String, volumeID: String, remove: Bool) async throws {
        if Self.fileKind(path) == nil, try await mountInfo(at: path) == nil {
            _ = try await knownVolume(volumeID)
            return
        }
        try await mapped("unmounting \(path) of volume \(volumeID)") { try await mounter.unmount(path, removeTarget: remove) }
    }

    func mapped<T>(_ action: String, _ body: () async throws -> T) async throws -> T {
        try await ErrorMapping.mapping(action, body)
    }

    /// `S_IFMT` bits of `path` (following links), or nil when it does not exist.
    static func fileKind(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & S_IFMT
    }

    /// Whether `path` is a block device node for `number`.
    static func isDeviceNode(_ path: String, number: (UInt32, UInt32)) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFBLK else { return false }
        let dev = UInt64(info.st_rdev)
        return (UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)),
                UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & ~0xff))) == number
    }

    /// Major and minor number of a device node.
    static func deviceNumber(_ device: String) throws(RPCError) -> (UInt32, UInt32) {
        var info = stat()
        guard stat(device, &info) == 0 else {
            throw RPCError(code: .internalError, message: "cannot stat device \(device): \(String(cString: strerror(errno)))")
        }
        let dev = UInt64(info.st_rdev)
        let major = UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff))
        let minor = UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & ~0xff))
        return (major, minor)
    }

    /// Creates `path`'s parent and its missing parents (mode 0750).
    static func makeParents(of path: String) throws(RPCError) {
        let parent = "/" + path.split(separator: "/").dropLast().joined(separator: "/")
        do throws(SystemError) { try makeDirectories(parent, mode: 0o750) } catch {
            throw RPCError(code: .internalError, message: "cannot create directory \(error.subject): \(error.reason)")
        }
    }
}
