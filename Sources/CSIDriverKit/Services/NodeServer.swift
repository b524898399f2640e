public import CSI
import H2
public import Platform
public import RPCCore
public import Storage

/// csi.v1.Node: staging (format + mount, or a bind mount of a directory volume), publishing (bind
/// mounts), stats and online expansion.
///
/// Every mutating call locks its volume id; NodeGetInfo, NodeGetCapabilities and
/// NodeGetVolumeStats take no lock. What is mounted where is read from the mount table on every
/// call, so a restarted driver continues where the last one stopped, and a repeated request
/// completes an interrupted one. Every look at the node's filesystem (`stat`, `mkdir`, path
/// resolution, the mount table) goes through the `Mounter`, which runs it off the event loop.
public struct NodeServer: NodeService {
    let options: DriverOptions
    let backend: any VolumeBackend
    let mounter: any Mounter
    let encryptor: any VolumeEncryptor
    let paths: KubeletPathPolicy
    let locks: VolumeLocks
    let log: RequestLog
    /// Applies volumes' IO limits to the pods that publish them (``IOLimitsNode``); nil: none are.
    let throttle: (any IOThrottle)?

    /// Creates the service.
    /// - Parameters:
    ///   - options: the node id, topology and volume limit NodeGetInfo reports.
    ///   - backend: where volumes live; `VolumeBackend.device(forVolume:)` says where a
    ///     volume's data is on this node (a device node or a directory).
    ///   - mounter: the node's mounts and filesystem; `LinuxMounter` by default.
    ///   - encryptor: opens and closes encrypted volumes (`encryption: luks2`); `LUKSEncryptor` by default.
    ///   - paths: where staging and target paths must lie (the kubelet directory).
    ///   - locks: the per-volume locks, shared with the ``ControllerServer`` of the same process.
    ///   - logger: where each call is logged once (requests at debug level, secrets redacted).
    ///   - throttle: applies the IO limits a backend records with a volume
    ///     (``Storage/VolumeBackend/recordsIOLimits``) to the pod a publish is for; nil for none.
    public init(
        options: DriverOptions, backend: any VolumeBackend, mounter: any Mounter = LinuxMounter(),
        encryptor: any VolumeEncryptor = LUKSEncryptor(), paths: KubeletPathPolicy, locks: VolumeLocks = VolumeLocks(),
        logger: Logger = .disabled, throttle: (any IOThrottle)? = nil
    ) {
        self.init(
            options: options, backend: backend, mounter: mounter, encryptor: encryptor, paths: paths, locks: locks,
            log: RequestLog(logger: logger), throttle: throttle)
    }

    package init(
        options: DriverOptions, backend: any VolumeBackend, mounter: any Mounter, encryptor: any VolumeEncryptor = LUKSEncryptor(),
        paths: KubeletPathPolicy, locks: VolumeLocks, log: RequestLog, throttle: (any IOThrottle)? = nil
    ) {
        self.throttle = throttle
        self.options = options
        self.backend = backend
        self.mounter = mounter
        self.encryptor = encryptor
        self.paths = paths
        self.locks = locks
        self.log = log
    }

    package init(
        configuration: DriverConfiguration, backend: any VolumeBackend, mounter: any Mounter, paths: KubeletPathPolicy,
        locks: VolumeLocks, log: RequestLog, throttle: (any IOThrottle)? = nil
    ) {
        self.init(
            options: configuration.driverOptions, backend: backend, mounter: mounter, encryptor: configuration.encryptor, paths: paths,
            locks: locks, log: log, throttle: throttle)
    }

    public func nodeGetInfo(_ request: NodeGetInfoRequest, context: ServerContext) async throws -> NodeGetInfoResponse {
        try await log.call("NodeGetInfo", request) {
            var response = NodeGetInfoResponse()
            response.nodeID = options.nodeID
            response.maxVolumesPerNode = options.maxVolumesPerNode
            if !options.topology.isEmpty {
                var topology = Topology()
                topology.segments = options.topology
                response.accessibleTopology = topology
            }
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
            let staging = try await checked(request.stagingTargetPath, field: "staging_target_path")
            let options = try mountOptions(capability)
            return try await locks.withLock(request.volumeID) {
                let (volume, location) = try await volumeAndLocation(of: request.volumeID)
                let device: String
                switch location {
                case .directory(let directory):
                    guard case .mount? = capability.accessType else { throw Self.blockOfDirectory(request.volumeID, directory) }
                    try await stageDirectory(
                        directory, at: staging, volumeID: request.volumeID, readOnly: CapabilityRules.isReadOnlyMode(capability),
                        options: options)
                    return NodeStageVolumeResponse()
                case .node(let node):
                    // An encrypted volume is opened first (formatted on its first stage); all
                    // that follows works on the opened mapping.
                    device = try await opened(
                        node, volume: volume, secrets: request.secrets, readOnly: CapabilityRules.isReadOnlyMode(capability))
                case .unavailable(let reason): throw ErrorMapping.deviceUnavailable(volumeID: request.volumeID, reason: reason)
                }
                // Raw block volumes are published straight from the device node (or the opened
                // mapping): nothing more to stage.
                guard case .mount(let mount)? = capability.accessType else { return NodeStageVolumeResponse() }
                let readOnly = CapabilityRules.isReadOnlyMode(capability)
                let asked = mount.fsType.isEmpty ? (request.volumeContext["fsType"] ?? "") : mount.fsType
                let number = try await deviceNumber(device)
                if let existing = try await mountInfo(at: staging) {
                    guard DeviceNumber(major: existing.major, minor: existing.minor) == number else {
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
            let staging = try await checked(request.stagingTargetPath, field: "staging_target_path")
            return try await locks.withLock(request.volumeID) {
                // The staging directory belongs to the CO, which made it: only the mount goes.
                try await unmount(staging, volumeID: request.volumeID, remove: false)
                // Then an encrypted volume's mapping, even when its mount was already gone.
                try await mapped("closing the encrypted mapping of volume \(request.volumeID)") {
                    try await encryptor.close(volumeID: request.volumeID)
                }
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
            let target = try await checked(request.targetPath, field: "target_path")
            let staging = try await checked(request.stagingTargetPath, field: "staging_target_path")
            let readOnly = request.readonly || CapabilityRules.isReadOnlyMode(capability)
            let block = CapabilityRules.isBlock(capability)
            var options = try mountOptions(capability)
            if readOnly { options.flags |= MountFlag.readOnly }
            return try await locks.withLock(request.volumeID) {
                let (volume, location) = try await volumeAndLocation(of: request.volumeID)
                let source: String
                /// Whether what is mounted at the target (`existing`) is this volume.
                let isThisVolume: (MountInfo) async throws -> Bool
                /// The device the pod does its IO on (the LV, or an encrypted volume's mapping).
                var ioDevice: DeviceNumber?
                switch location {
                case .unavailable(let reason):
                    throw ErrorMapping.deviceUnavailable(volumeID: request.volumeID, reason: reason)
                case .directory(let directory):
                    guard !block else { throw Self.blockOfDirectory(request.volumeID, directory) }
                    let volume = try await directoryStatus(directory, volumeID: request.volumeID)
                    guard try await mountInfo(at: staging) != nil else {
                        throw RPCError(
                            code: .failedPrecondition,
                            message: "volume \(request.volumeID) is not staged at \(staging): call NodeStageVolume first")
                    }
                    guard try await isSameFile(staging, as: volume) else {
                        throw RPCError(
                            code: .failedPrecondition, message: "\(staging) holds another directory, not volume \(request.volumeID)")
                    }
                    source = staging
                    isThisVolume = { _ in try await isSameFile(target, as: volume) }
                case .node(let node):
                    let device = try await openMapping(node, volume: volume)
                    let number = try await deviceNumber(device)
                    ioDevice = number
                    if block {
                        source = device
                    } else {
                        guard let staged = try await mountInfo(at: staging) else {
                            throw RPCError(
                                code: .failedPrecondition,
                                message: "volume \(request.volumeID) is not staged at \(staging): call NodeStageVolume first")
                        }
                        guard DeviceNumber(major: staged.major, minor: staged.minor) == number else {
                            throw RPCError(
                                code: .failedPrecondition, message: "\(staging) holds \(staged.source), not volume \(request.volumeID)")
                        }
                        source = staging
                    }
                    // A bind of a device node shows devtmpfs; the node it shows stands for the
                    // volume's device number (even when that node was deleted and made again, as an
                    // LV deactivated and activated with the same minor is). A bind of the staged
                    // filesystem shows the volume's own device number.
                    isThisVolume = { existing in
                        block
                            ? try await isDeviceNode(target, number: number)
                            : DeviceNumber(major: existing.major, minor: existing.minor) == number
                    }
                }
                if let existing = try await mountInfo(at: target) {
                    guard try await isThisVolume(existing) else {
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
                    // A repeat (after a crash, or after the limits changed) applies them again.
                    if let ioDevice { try await applyIOLimits(of: volume, device: ioDevice, target: target, wait: true) }
                    return NodePublishVolumeResponse()
                }
                // Limits first: a pod whose limits cannot be applied gets no mount at all.
                if let ioDevice { try await applyIOLimits(of: volume, device: ioDevice, target: target, wait: true) }
                if block {
                    // The bind target of a device node is a file; the kubelet may not have made its directory.
                    try await makeParents(of: target)
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
            let target = try await checked(request.targetPath, field: "target_path")
            return try await locks.withLock(request.volumeID) {
                await clearIOLimits(at: target, volumeID: request.volumeID)
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
            let volume: BackendVolume? =
                Rules.isPlausibleID(request.volumeID)
                ? try await ErrorMapping.mapping("looking up volume \(request.volumeID)", { try await backend.volume(id: request.volumeID) })
                : nil
            // An unknown volume is NOT_FOUND whatever its path; a bad path is INVALID_ARGUMENT
            // only for a known one.
            let path: String
            do { path = try await checked(request.volumePath, field: "volume_path") } catch {
                if volume == nil { throw RPCError(code: .notFound, message: "volume \(request.volumeID) does not exist") }
                throw error
            }
            guard let kind = try await status(of: path)?.kind else {
                if volume == nil { throw RPCError(code: .notFound, message: "volume \(request.volumeID) does not exist") }
                throw RPCError(code: .notFound, message: "volume \(request.volumeID) is not at volume_path \(path): nothing is there")
            }
            let mount = try await mountInfo(at: path)
            let mounted = mount != nil
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
            // A bind mount of a subdirectory at a directory path is a directory volume: the device
            // behind it is the host filesystem's, not the volume's, and is not checked. (A raw block
            // publish is a bind of a device node; a staged filesystem is mounted from its root.)
            let ownsDevice = kind == .blockDevice || mount?.root == "/"
            let problems = ownsDevice ? try await deviceProblems(of: request.volumeID, volume: volume, at: path) : []
            // A dead device may not answer usage questions; the condition says why.
            if kind == .blockDevice {
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
            let path = try await checked(request.volumePath, field: "volume_path")
            let required = request.capacityRange?.requiredBytes ?? 0
            return try await locks.withLock(request.volumeID) {
                let (volume, location) = try await volumeAndLocation(of: request.volumeID)
                guard let kind = try await status(of: path)?.kind else {
                    throw RPCError(code: .notFound, message: "volume \(request.volumeID) is not at volume_path \(path): nothing is there")
                }
                let size: Int64
                switch location {
                case .unavailable(let reason):
                    throw ErrorMapping.deviceUnavailable(volumeID: request.volumeID, reason: reason)
                case .directory:
                    // A directory has no filesystem of its own to grow: its size is the backend's.
                    guard try await mountInfo(at: path) != nil else {
                        throw RPCError(
                            code: .failedPrecondition,
                            message: "volume \(request.volumeID) is not mounted at \(path); expansion is online only")
                    }
                    size = Int64(clamping: volume.capacityBytes)
                case .node(let node):
                    // An encrypted volume's mapping grows first; its filesystem is on the mapping.
                    let device = try await openMapping(node, volume: volume)
                    if volume.encryption != nil {
                        try await mapped("growing the encrypted mapping of volume \(request.volumeID)") {
                            try await encryptor.resize(volumeID: request.volumeID)
                        }
                    }
                    if kind != .blockDevice && !CapabilityRules.isBlock(request.volumeCapability) {
                        guard try await mountInfo(at: path) != nil else {
                            throw RPCError(
                                code: .failedPrecondition,
                                message: "volume \(request.volumeID) is not mounted at \(path); expansion is online only")
                        }
                        try await mapped("growing the filesystem of volume \(request.volumeID) at \(path)") {
                            try await mounter.resizeFilesystem(on: device, mountedAt: path)
                        }
                    }
                    // The volume's size is its device's; a mapping is smaller by its encryption header.
                    size = Int64(clamping: try await mapped("sizing \(node)") { try await mounter.blockDeviceSize(node) })
                }
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
    func checked(_ path: String, field: String) async throws(RPCError) -> String {
        do throws(StorageError) { return try await mounter.resolve(path, field: field, policy: paths) } catch {
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

    /// What is at `path` (links followed), or nil when nothing is.
    func status(of path: String) async throws -> FileStatus? {
        try await mapped("examining \(path)") { try await mounter.status(of: path) }
    }

    /// What is wrong with the device behind `path`, where volume `id` is published: gone or
    /// failing a read (``Mounter/checkDevice(at:)``, any backend), or no longer the volume's
    /// device (``VolumeBackend/deviceProblem(_:ofVolume:)``); empty when nothing is.
    func deviceProblems(of id: String, volume: BackendVolume?, at path: String) async throws -> [String] {
        let check = try await mapped("checking the device of volume \(id) at \(path)") { try await mounter.checkDevice(at: path) }
        var problems: [String] = []
        if let problem = check.problem { problems.append("volume \(id) at \(path): \(problem)") }
        // An encrypted volume is published from its mapping: the backend knows the device under it.
        var backing = check.device
        if volume?.encryption != nil, let device = check.device { backing = await encryptor.underlyingDevice(of: device) ?? device }
        if volume != nil, let device = backing,
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
    func knownVolume(_ id: String) async throws -> BackendVolume {
        guard Rules.isPlausibleID(id),
            let volume = try await ErrorMapping.mapping("looking up volume \(id)", { try await backend.volume(id: id) })
        else { throw RPCError(code: .notFound, message: "volume \(id) does not exist") }
        return volume
    }

    /// An existing volume and where its data is on this node: NOT_FOUND when the volume is unknown.
    func volumeAndLocation(of id: String) async throws -> (BackendVolume, VolumeDevice) {
        let volume = try await knownVolume(id)
        return (volume, try await ErrorMapping.mapping("finding the device of volume \(id)", { try await backend.device(forVolume: id) }))
    }

    /// Where an existing volume's data is on this node: NOT_FOUND when the volume is unknown.
    func location(of id: String) async throws -> VolumeDevice {
        try await volumeAndLocation(of: id).1
    }

    /// INVALID_ARGUMENT: a directory volume has no device to publish as raw block.
    static func blockOfDirectory(_ id: String, _ directory: String) -> RPCError {
        RPCError(
            code: .invalidArgument,
            message: "volume_capability: volume \(id) is the directory \(directory) on this node; it cannot be used as a raw block device")
    }

    /// The identity of a directory volume's directory; INTERNAL when it is missing or not a directory.
    func directoryStatus(_ directory: String, volumeID: String) async throws -> FileStatus {
        guard let found = try await status(of: directory), found.kind == .directory else {
            throw RPCError(code: .internalError, message: "the directory \(directory) of volume \(volumeID) is missing or not a directory")
        }
        return found
    }

    /// Whether `path` (a mount point) shows the file `file` names.
    func isSameFile(_ path: String, as file: FileStatus) async throws -> Bool {
        guard let here = try await status(of: path) else { return false }
        return here.device == file.device && here.inode == file.inode
    }

    /// Stages a directory volume: a bind mount of `directory` at `staging`, read-only when asked.
    func stageDirectory(_ directory: String, at staging: String, volumeID: String, readOnly: Bool, options: MountOptions) async throws {
        let volume = try await directoryStatus(directory, volumeID: volumeID)
        if let existing = try await mountInfo(at: staging) {
            guard try await isSameFile(staging, as: volume) else {
                throw RPCError(
                    code: .alreadyExists,
                    message: "staging_target_path \(staging) already has \(existing.source) mounted, not volume \(volumeID) (\(directory))")
            }
            guard existing.readOnly == readOnly else {
                throw RPCError(
                    code: .alreadyExists,
                    message:
                        "volume \(volumeID) is already staged at \(staging)\(existing.readOnly ? " read-only" : " read-write"), which the requested capability does not match"
                )
            }
            return
        }
        var stageOptions = options
        if readOnly { stageOptions.flags |= MountFlag.readOnly }
        try await mapped("mounting volume \(volumeID) at \(staging)") {
            try await mounter.bindMount(source: directory, at: staging, options: stageOptions)
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
        if try await status(of: path) == nil, try await mountInfo(at: path) == nil {
            _ = try await knownVolume(volumeID)
            return
        }
        try await mapped("unmounting \(path) of volume \(volumeID)") { try await mounter.unmount(path, removeTarget: remove) }
    }

    func mapped<T>(_ action: String, _ body: () async throws -> T) async throws -> T {
        try await ErrorMapping.mapping(action, body)
    }

    /// The device to stage: `node` itself, or for an encrypted volume its mapping, opened (and on
    /// the first stage formatted) with the node-stage secret's `passphrase`.
    func opened(_ node: String, volume: BackendVolume, secrets: [String: String], readOnly: Bool) async throws -> String {
        guard let encryption = volume.encryption else { return node }
        guard let text = secrets[Self.passphraseKey], !text.isEmpty else {
            throw RPCError(
                code: .invalidArgument,
                message:
                    "volume \(volume.id) is encrypted (\(encryption.rawValue)): the node-stage secret has no '\(Self.passphraseKey)' key (set csi.storage.k8s.io/node-stage-secret-name and -namespace in the StorageClass)"
            )
        }
        return try await mapped("opening encrypted volume \(volume.id)") {
            try await encryptor.open(device: node, volumeID: volume.id, passphrase: Passphrase(text), format: !readOnly)
        }
    }

    /// The device a staged volume is used through: `node`, or an encrypted volume's open mapping
    /// (FAILED_PRECONDITION when it is not open: the volume is not staged).
    func openMapping(_ node: String, volume: BackendVolume) async throws -> String {
        guard volume.encryption != nil else { return node }
        guard let mapping = try await mapped("finding the encrypted mapping of volume \(volume.id)", {
            try await encryptor.openMapping(volumeID: volume.id)
        }) else {
            throw RPCError(
                code: .failedPrecondition, message: "volume \(volume.id) is encrypted and not open on this node: call NodeStageVolume first")
        }
        return mapping
    }

    /// The key of the node-stage secret that holds an encrypted volume's passphrase.
    static let passphraseKey = "passphrase"

    /// Whether `path` is a block device node for `number`.
    func isDeviceNode(_ path: String, number: DeviceNumber) async throws -> Bool {
        guard let found = try await status(of: path), found.kind == .blockDevice else { return false }
        return found.representedDevice == number
    }

    /// Major and minor number of a device node.
    func deviceNumber(_ device: String) async throws -> DeviceNumber {
        guard let number = try await status(of: device)?.representedDevice else {
            throw RPCError(code: .internalError, message: "cannot stat device \(device): it does not exist or is not a device node")
        }
        return number
    }

    /// Creates `path`'s parent and its missing parents (mode 0750).
    func makeParents(of path: String) async throws {
        let parent = "/" + path.split(separator: "/").dropLast().joined(separator: "/")
        do throws(StorageError) { try await mounter.makeDirectories(parent) } catch {
            throw RPCError(code: .internalError, message: error.message)
        }
    }
}
