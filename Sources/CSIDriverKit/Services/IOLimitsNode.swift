import CSI
import Platform
import RPCCore
package import Storage

/// The node side of IO limits as the controller of the same process sees it: after
/// ControllerModifyVolume records new limits, or ControllerExpandVolume changes the size that
/// limits per GiB follow, the pods on this node that have the volume published get them at once.
package protocol IOLimitsNode: Sendable {
    /// Why IO limits cannot be applied on this node, or nil when they can.
    func ioLimitsUnavailableReason() async -> String?
    /// Applies `volume`'s limits (none: lifts them) to every pod it is published to on this node.
    /// The caller holds the volume's lock.
    func reapplyIOLimits(of volume: BackendVolume) async throws
}

extension NodeServer: IOLimitsNode {
    package func ioLimitsUnavailableReason() async -> String? {
        guard let throttle else { return "the node service applies no IO limits" }
        return await throttle.unavailableReason()
    }

    /// Finds the volume's publishes in the mount table: mounts at target paths the kubelet makes
    /// for a pod (``IOThrottle/podUID(ofTarget:)``) that show the volume's device (a filesystem
    /// publish by its device number, a raw block publish by the node it binds). The mount table is
    /// the record: nothing is kept in memory, so a restarted driver finds them all. A pod whose
    /// cgroup is gone (being torn down) is skipped.
    package func reapplyIOLimits(of volume: BackendVolume) async throws {
        guard let throttle else { return }
        let mounts = try await mapped("reading /proc/self/mountinfo") { try await mounter.mounts() }
        // No pod has anything published here: the backend is not asked for the device (which
        // would activate an inactive LV).
        guard mounts.contains(where: { throttle.podUID(ofTarget: $0.mountPoint) != nil }) else { return }
        let number: DeviceNumber?
        do { number = try await ioDeviceNumber(of: volume) } catch let error as RPCError where error.code == .failedPrecondition {
            return  // no device on this node now (a copy under way, no device-mapper): nothing is published
        }
        guard let number else { return }
        let line = IOLimits.ioMaxLine(device: number, volume.ioLimits.effective(capacityBytes: volume.capacityBytes))
        for uid in try await pods(publishing: number, in: mounts, throttle: throttle) {
            if try await !Self.apply(line, podUID: uid, volumeID: volume.id, throttle: throttle) {
                log.logger.info("IO limits not applied: the pod's cgroup is gone", [("volume", volume.id), ("pod", uid)])
            }
        }
    }

    /// Applies `line` to pod `uid` at once; false when the pod has no cgroup (any more).
    static func apply(_ line: String, podUID uid: String, volumeID: String, throttle: any IOThrottle) async throws(StorageError) -> Bool {
        do {
            try await throttle.apply(line, podUID: uid, volumeID: volumeID, wait: false)
            return true
        } catch {
            if error.code == .notFound { return false }
            throw error
        }
    }

    /// The device the pods of a staged volume do their IO on (the LV, or an encrypted volume's
    /// open mapping); nil when there is none on this node.
    func ioDeviceNumber(of volume: BackendVolume) async throws -> DeviceNumber? {
        guard case .node(let node) = try await location(of: volume.id) else { return nil }
        if volume.encryption == nil { return try await deviceNumber(node) }
        // An encrypted volume that is not open is not staged, so not published either.
        let mapping = try await openedMapping(of: volume.id)
        guard let mapping else { return nil }
        return try await deviceNumber(mapping)
    }

    func openedMapping(of id: String) async throws -> String? {
        try await mapped("finding the encrypted mapping of volume \(id)") { try await encryptor.openMapping(volumeID: id) }
    }

    /// The pods (UIDs) that have `device` published at one of their kubelet target paths.
    func pods(publishing device: DeviceNumber, in mounts: [MountInfo], throttle: any IOThrottle) async throws -> [String] {
        var pods: [String] = []
        for mount in mounts {
            guard let uid = throttle.podUID(ofTarget: mount.mountPoint), !pods.contains(uid) else { continue }
            let found = try await status(of: mount.mountPoint)
            let shown = found?.kind == .blockDevice ? found?.representedDevice : DeviceNumber(major: mount.major, minor: mount.minor)
            if shown == device { pods.append(uid) }
        }
        return pods
    }

    /// Writes `volume`'s limits for `device` into the cgroup of the pod `target` belongs to; with
    /// no limits and nothing to lift, nothing is written.
    ///
    /// A pod cgroup that does not appear within the wait is FAILED_PRECONDITION. The kubelet
    /// retries NodePublishVolume after any error, with back-off, so a cgroup made later is still
    /// found; and it is a final error (not UNAVAILABLE or DEADLINE_EXCEEDED, which tell the kubelet
    /// the operation may still be under way): limits are applied before the bind mount, so
    /// nothing is left in progress and the kubelet may clean up the target.
    func applyIOLimits(of volume: BackendVolume, device: DeviceNumber, target: String, wait: Bool) async throws {
        guard !volume.ioLimits.isEmpty else { return }
        guard let throttle else {
            throw RPCError(
                code: .failedPrecondition,
                message: "volume \(volume.id) has IO limits (\(volume.ioLimits)), and this node service applies none")
        }
        guard let uid = throttle.podUID(ofTarget: target) else {
            throw RPCError(
                code: .failedPrecondition,
                message:
                    "volume \(volume.id) has IO limits (\(volume.ioLimits)), but target_path \(target) names no pod: expected \(paths.realDirectory)/pods/<pod uid>/volumes/kubernetes.io~csi/<pv>/mount or \(paths.realDirectory)/plugins/kubernetes.io/csi/volumeDevices/publish/<pv>/<pod uid>"
            )
        }
        if let reason = await throttle.unavailableReason() {
            throw RPCError(
                code: .failedPrecondition, message: "volume \(volume.id) has IO limits (\(volume.ioLimits)), which cannot be applied on this node: \(reason)")
        }
        let line = IOLimits.ioMaxLine(device: device, volume.ioLimits.effective(capacityBytes: volume.capacityBytes))
        do { try await throttle.apply(line, podUID: uid, volumeID: volume.id, wait: wait) } catch {
            // No cgroup is not "no volume" (NOT_FOUND would say the volume does not exist).
            let code: RPCError.Code = error.code == .notFound ? .failedPrecondition : ErrorMapping.code(for: error.code)
            throw RPCError(code: code, message: "applying the IO limits of volume \(volume.id) to pod \(uid): \(error.message)")
        }
    }

    /// Lifts the limits on the device published at `target` in its pod's cgroup, before the
    /// unmount; best effort: a pod being torn down may have lost its cgroup, and a limit left on a
    /// cgroup that is about to go harms nothing, so a failure is logged, never returned.
    func clearIOLimits(at target: String, volumeID: String) async {
        guard let throttle, let uid = throttle.podUID(ofTarget: target) else { return }
        do {
            guard let mount = try await mountInfo(at: target) else { return }
            let found = try await status(of: target)
            let device = found?.kind == .blockDevice ? found?.representedDevice : DeviceNumber(major: mount.major, minor: mount.minor)
            if let device { try await throttle.clear(device: device, podUID: uid) }
        } catch {
            log.logger.warning(
                "IO limits not lifted before the unpublish", [("volume", volumeID), ("pod", uid), ("error", "\(error)")])
        }
    }
}
