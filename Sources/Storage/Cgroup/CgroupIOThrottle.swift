import Glibc
import Platform

/// Limits a pod's IO on a device: the node side of ``IOLimits``. ``CgroupIOThrottle`` is the real
/// one (cgroup v2 `io.max`).
public protocol IOThrottle: Sendable {
    /// Why limits cannot be applied on this node, or nil when they can.
    func unavailableReason() async -> String?

    /// The pod a CSI target path belongs to (its UID), or nil when the path is not one the kubelet
    /// makes for a pod.
    func podUID(ofTarget target: String) -> String?

    /// Writes `line` (``IOLimits/ioMaxLine(device:_:)``) into the `io.max` of pod `podUID`'s
    /// cgroup. With `wait`, a cgroup not there yet is looked for again for a while (the kubelet
    /// may publish a volume before it makes the pod's cgroup).
    /// - Throws: `.notFound` when there is no such cgroup (naming the pod and the paths looked at),
    ///   `.unsupported` when its parent does not enable the `io` controller or there is no cgroup
    ///   v2 hierarchy, `.failed` when the kernel refuses the line.
    func apply(_ line: String, podUID: String, volumeID: String, wait: Bool) async throws(StorageError)

    /// Lifts every limit on `device` in pod `podUID`'s cgroup; nothing to do when the pod has no
    /// cgroup (any more) or no limit on the device.
    func clear(device: DeviceNumber, podUID: String) async throws(StorageError)
}

/// ``IOThrottle`` over cgroup v2: finds a pod's cgroup from its UID under `kubepods` in the
/// layouts of both of the kubelet's cgroup drivers and writes its `io.max`.
///
/// The cgroup v2 root is the `cgroup2` mount of `/proc/self/mountinfo` (or the one given, for a
/// container that mounts the host's hierarchy elsewhere). A pod `<uid>` is looked for at
/// (systemd driver, `-` in the UID written `_`) `kubepods.slice/kubepods-pod<uid>.slice`,
/// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice`,
/// `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice`, and (cgroupfs
/// driver) `kubepods/pod<uid>`, `kubepods/burstable/pod<uid>`, `kubepods/besteffort/pod<uid>`.
public struct CgroupIOThrottle: IOThrottle {
    /// The cgroup v2 root given, or nil to find it in the mount table.
    public let root: String?
    /// The kubelet directory's real path (target paths are resolved before they get here).
    public let kubeletDirectory: String
    /// How long ``apply(_:podUID:volumeID:wait:)`` looks for a cgroup that is not there yet.
    public var wait: Duration

    /// Creates a throttle.
    /// - Parameters:
    ///   - root: the cgroup v2 mount point, or nil to take the `cgroup2` mount of this process.
    ///   - kubeletDirectory: the kubelet directory (symbolic links resolved).
    ///   - wait: how long a missing pod cgroup is waited for.
    public init(root: String? = nil, kubeletDirectory: String, wait: Duration = .seconds(5)) {
        self.root = root
        self.kubeletDirectory = KubeletPathPolicy.components(kubeletDirectory).joinedPath()
        self.wait = wait
    }

    // MARK: Paths

    /// The pod UID in a target path the kubelet makes for a CSI volume:
    /// `<kubelet>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount` (a filesystem) or
    /// `<kubelet>/plugins/kubernetes.io/csi/volumeDevices/publish/<pv>/<uid>` (raw block).
    public func podUID(ofTarget target: String) -> String? {
        Self.podUID(ofTarget: target, kubeletDirectory: kubeletDirectory)
    }

    static func podUID(ofTarget target: String, kubeletDirectory: String) -> String? {
        let root = KubeletPathPolicy.components(kubeletDirectory)
        let parts = KubeletPathPolicy.components(target)
        guard parts.count > root.count, Array(parts.prefix(root.count)) == root else { return nil }
        let rest = Array(parts.dropFirst(root.count))
        var uid: String?
        if rest.count == 6, rest[0] == "pods", rest[2] == "volumes", rest[3] == "kubernetes.io~csi", rest[5] == "mount" {
            uid = rest[1]
        } else if rest.count == 7, rest[0...4] == ["plugins", "kubernetes.io", "csi", "volumeDevices", "publish"] {
            uid = rest[6]
        }
        guard let uid, isPodUID(uid) else { return nil }
        return uid
    }

    /// A pod UID as the kubelet names cgroups after it: a UUID, or a static pod's hash (letters,
    /// digits and `-`, at most 64).
    static func isPodUID(_ uid: String) -> Bool {
        !uid.isEmpty && uid.utf8.count <= 64
            && uid.utf8.allSatisfy {
                (48...57).contains($0) || (97...122).contains($0) || (65...90).contains($0) || $0 == UInt8(ascii: "-")
            }
    }

    /// Where the kubelet puts pod `uid`'s cgroup, relative to the cgroup root, in the order looked at.
    public static func candidates(podUID uid: String) -> [String] {
        let escaped = uid.replacingOccurrences(of: "-", with: "_")
        return [
            "kubepods.slice/kubepods-pod\(escaped).slice",
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(escaped).slice",
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(escaped).slice",
            "kubepods/pod\(uid)",
            "kubepods/burstable/pod\(uid)",
            "kubepods/besteffort/pod\(uid)",
        ]
    }

    /// The cgroup v2 mount point: the given root, else the first `cgroup2` mount of this process.
    func cgroupRoot() throws(StorageError) -> String {
        if let root { return root }
        guard let text = readWholeFile("/proc/self/mountinfo") else {
            throw StorageError(.failed, "cannot read /proc/self/mountinfo: \(errnoText(errno))")
        }
        let mounts = try MountInfo.parse(text)
        let cgroup2 = mounts.filter { $0.fsType == "cgroup2" }
        guard let mount = cgroup2.first(where: { $0.root == "/" }) ?? cgroup2.first else {
            throw StorageError(
                .unsupported,
                "no cgroup v2 hierarchy is mounted in this process's mount namespace (no cgroup2 line in /proc/self/mountinfo); IO limits need one (give its mount point with --cgroup-root)"
            )
        }
        return mount.mountPoint
    }

    /// Pod `uid`'s cgroup directory, or nil; `lookedAt` gets every path tried.
    static func find(podUID uid: String, root: String, lookedAt: inout [String]) -> String? {
        for candidate in candidates(podUID: uid) {
            let path = root + "/" + candidate
            lookedAt.append(path)
            var info = stat()
            if stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR { return path }
        }
        return nil
    }

    // MARK: IOThrottle

    public func unavailableReason() async -> String? {
        let root = self.root
        let kubelet = kubeletDirectory
        return await offload { () -> String? in
            let throttle = CgroupIOThrottle(root: root, kubeletDirectory: kubelet)
            do throws(StorageError) {
                let path = try throttle.cgroupRoot()
                guard let controllers = readWholeFile(path + "/cgroup.controllers") else {
                    return "\(path) is not a cgroup v2 hierarchy: \(path)/cgroup.controllers cannot be read (\(errnoText(errno)))"
                }
                guard controllers.split(whereSeparator: \.isWhitespace).contains("io") else {
                    return "the io controller is not available in the cgroup v2 hierarchy at \(path) (cgroup.controllers: \(controllers.trimmingTrailingNewlines()))"
                }
                return nil
            } catch {
                return error.message
            }
        }
    }

    public func apply(_ line: String, podUID uid: String, volumeID: String, wait: Bool) async throws(StorageError) {
        let root = try cgroupRoot()
        let deadline = ContinuousClock.now + (wait ? self.wait : .zero)
        while true {
            let found = await offload { () -> (String?, [String]) in
                var lookedAt: [String] = []
                let path = Self.find(podUID: uid, root: root, lookedAt: &lookedAt)
                return (path, lookedAt)
            }
            if let cgroup = found.0 {
                try await offload { () throws(StorageError) in try Self.writeIOMax(line, cgroup: cgroup, volumeID: volumeID) }
                return
            }
            guard ContinuousClock.now < deadline else {
                throw StorageError(
                    .notFound,
                    "volume \(volumeID) has IO limits, but pod \(uid) has no cgroup on this node\(wait ? " after \(self.wait)" : ""); looked at \(found.1.joined(separator: ", ")) (the kubelet's kubepods hierarchy, systemd and cgroupfs drivers)"
                )
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    public func clear(device: DeviceNumber, podUID uid: String) async throws(StorageError) {
        let root = try cgroupRoot()
        try await offload { () throws(StorageError) in
            var lookedAt: [String] = []
            guard let cgroup = Self.find(podUID: uid, root: root, lookedAt: &lookedAt),
                let current = readWholeFile(cgroup + "/io.max"),
                current.split(separator: "\n").contains(where: { $0.split(separator: " ").first.map(String.init) == device.description })
            else { return }
            try Self.writeIOMax(IOLimits.ioMaxLine(device: device, [:]), cgroup: cgroup, volumeID: nil)
        }
    }

    /// Writes one line to `<cgroup>/io.max` in a single `write(2)`.
    static func writeIOMax(_ line: String, cgroup: String, volumeID: String?) throws(StorageError) {
        let file = cgroup + "/io.max"
        // O_TRUNC as a shell's `>` does: cgroupfs ignores it, and a plain file (tests) then holds the line alone.
        let fd = open(file, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else {
            let err = errno
            if err == ENOENT {
                let parent = "/" + KubeletPathPolicy.components(cgroup).dropLast().joined(separator: "/")
                let enabled = readWholeFile(parent + "/cgroup.subtree_control")?.trimmingTrailingNewlines() ?? "?"
                throw StorageError(
                    .unsupported,
                    "\(volumeID.map { "volume \($0): " } ?? "")\(file) does not exist: the io controller is not enabled for the pod's cgroup (\(parent)/cgroup.subtree_control holds \"\(enabled)\"; it needs +io there and in every cgroup above it)"
                )
            }
            throw StorageError(errnoCode(err), "\(volumeID.map { "volume \($0): " } ?? "")cannot open \(file): \(errnoText(err))")
        }
        defer { close(fd) }
        let bytes = Array(line.utf8)
        while true {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n == bytes.count { return }
            let err = n < 0 ? errno : EIO
            if err == EINTR { continue }
            throw StorageError(
                .failed, "\(volumeID.map { "volume \($0): " } ?? "")writing \"\(line)\" to \(file) failed: \(errnoText(err))")
        }
    }
}

extension String {
    /// `self` with `target` replaced by `replacement` everywhere (no Foundation here).
    func replacingOccurrences(of target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }

    func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while s.last == "\n" || s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
