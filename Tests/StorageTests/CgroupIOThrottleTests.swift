import Glibc
import Testing

@testable import Storage

/// Pod UIDs from target paths, and pod cgroups found and written in a directory tree shaped like
/// the kubelet's cgroup v2 hierarchy (a plain directory stands in for cgroupfs: `io.max` is a file).
@Suite struct CgroupIOThrottleTests {
    static let uid = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"

    @Test func podUIDFromFilesystemAndRawBlockTargets() {
        let kubelet = "/var/lib/kubelet"
        let vectors: [(String, String?)] = [
            ("/var/lib/kubelet/pods/\(Self.uid)/volumes/kubernetes.io~csi/pvc-1/mount", Self.uid),
            ("/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/pvc-1/\(Self.uid)", Self.uid),
            ("/var/lib/kubelet/pods/6d1b1c9e0f1a2b3c4d5e6f708192a3b4/volumes/kubernetes.io~csi/pv/mount", "6d1b1c9e0f1a2b3c4d5e6f708192a3b4"),
            ("/var/lib/kubelet/pods/\(Self.uid)/volumes/kubernetes.io~csi/pvc-1", nil),
            ("/var/lib/kubelet/pods/\(Self.uid)/volumes/kubernetes.io~empty-dir/x/mount", nil),
            ("/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/staging/pvc-1/\(Self.uid)", nil),
            ("/var/lib/kubelet/pods/a_b/volumes/kubernetes.io~csi/pv/mount", nil),
            ("/other/pods/\(Self.uid)/volumes/kubernetes.io~csi/pvc-1/mount", nil),
        ]
        for (target, uid) in vectors {
            #expect(CgroupIOThrottle.podUID(ofTarget: target, kubeletDirectory: kubelet) == uid, "\(target)")
        }
    }

    @Test func candidatesCoverBothDriversAndEveryQOSClass() {
        let escaped = Self.uid.replacingOccurrences(of: "-", with: "_")
        #expect(
            CgroupIOThrottle.candidates(podUID: Self.uid) == [
                "kubepods.slice/kubepods-pod\(escaped).slice",
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(escaped).slice",
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(escaped).slice",
                "kubepods/pod\(Self.uid)", "kubepods/burstable/pod\(Self.uid)", "kubepods/besteffort/pod\(Self.uid)",
            ])
    }

    /// A temporary cgroup root with the pod's cgroup at `relative` (its `io.max` an empty file
    /// unless `io` is false), removed afterwards.
    func withRoot(pod relative: String?, io: Bool = true, _ body: (String) async throws -> Void) async throws {
        let root = "/tmp/cgroup-test-" + uniqueSuffix()
        defer { _ = try? runProgram("rm", ["-rf", root]) }
        _ = try runProgram("mkdir", ["-p", root])
        if let relative {
            _ = try runProgram("mkdir", ["-p", root + "/" + relative])
            if io { #expect(writeWholeFile(root + "/" + relative + "/io.max", "")) }
            #expect(writeWholeFile(root + "/" + relative + "/../cgroup.subtree_control", "cpu memory\n"))
        }
        try await body(root)
    }

    @Test(arguments: CgroupIOThrottle.candidates(podUID: uid))
    func findsAndWritesThePodCgroupInEveryLayout(_ relative: String) async throws {
        try await withRoot(pod: relative) { root in
            let throttle = CgroupIOThrottle(root: root, kubeletDirectory: "/var/lib/kubelet")
            try await throttle.apply("253:4 rbps=max wbps=2097152 riops=max wiops=120", podUID: Self.uid, volumeID: "v", wait: false)
            #expect(readWholeFile(root + "/" + relative + "/io.max") == "253:4 rbps=max wbps=2097152 riops=max wiops=120")
            // Lifted only when a line for the device is there (a plain file keeps what was written last).
            try await throttle.clear(device: DeviceNumber(major: 8, minor: 0), podUID: Self.uid)
            #expect(readWholeFile(root + "/" + relative + "/io.max") == "253:4 rbps=max wbps=2097152 riops=max wiops=120")
            try await throttle.clear(device: DeviceNumber(major: 253, minor: 4), podUID: Self.uid)
            #expect(readWholeFile(root + "/" + relative + "/io.max") == "253:4 rbps=max wbps=max riops=max wiops=max")
        }
    }

    @Test func noPodCgroupNamesThePodAndEveryPathLookedAt() async throws {
        try await withRoot(pod: nil) { root in
            var throttle = CgroupIOThrottle(root: root, kubeletDirectory: "/var/lib/kubelet")
            throttle.wait = .milliseconds(300)
            let start = ContinuousClock.now
            await #expect {
                try await throttle.apply("253:4 rbps=max wbps=2 riops=max wiops=max", podUID: Self.uid, volumeID: "pvc-9", wait: true)
            } throws: { error in
                guard let error = error as? StorageError, error.code == .notFound else { return false }
                return error.message.contains(Self.uid) && error.message.contains("pvc-9")
                    && CgroupIOThrottle.candidates(podUID: Self.uid).allSatisfy { error.message.contains(root + "/" + $0) }
            }
            #expect(ContinuousClock.now - start >= .milliseconds(300))
            // Nothing to lift where there is no cgroup.
            try await throttle.clear(device: DeviceNumber(major: 253, minor: 4), podUID: Self.uid)
        }
    }

    @Test func aCgroupThatAppearsWhileWaitingIsFound() async throws {
        try await withRoot(pod: nil) { root in
            let throttle = CgroupIOThrottle(root: root, kubeletDirectory: "/var/lib/kubelet")
            let relative = "kubepods/burstable/pod\(Self.uid)"
            let maker = Task {
                try await Task.sleep(for: .milliseconds(300))
                _ = try runProgram("mkdir", ["-p", root + "/" + relative])
                _ = writeWholeFile(root + "/" + relative + "/io.max", "")
            }
            try await throttle.apply("253:4 rbps=max wbps=2 riops=max wiops=max", podUID: Self.uid, volumeID: "v", wait: true)
            try await maker.value
            #expect(readWholeFile(root + "/" + relative + "/io.max") == "253:4 rbps=max wbps=2 riops=max wiops=max")
        }
    }

    @Test func ioNotEnabledForThePodIsSaidSoNamingTheParent() async throws {
        try await withRoot(pod: "kubepods/besteffort/pod\(Self.uid)", io: false) { root in
            let throttle = CgroupIOThrottle(root: root, kubeletDirectory: "/var/lib/kubelet")
            await #expect {
                try await throttle.apply("253:4 rbps=max wbps=2 riops=max wiops=max", podUID: Self.uid, volumeID: "v", wait: false)
            } throws: { error in
                guard let error = error as? StorageError, error.code == .unsupported else { return false }
                return error.message.contains(root + "/kubepods/besteffort/cgroup.subtree_control") && error.message.contains("cpu memory")
            }
        }
    }

    @Test func availabilityFollowsTheRootsControllers() async throws {
        try await withRoot(pod: nil) { root in
            let throttle = CgroupIOThrottle(root: root, kubeletDirectory: "/var/lib/kubelet")
            #expect(await throttle.unavailableReason()?.contains("cgroup.controllers") == true)
            #expect(writeWholeFile(root + "/cgroup.controllers", "cpuset cpu memory pids\n"))
            #expect(await throttle.unavailableReason()?.contains("io controller") == true)
            #expect(writeWholeFile(root + "/cgroup.controllers", "cpuset cpu io memory pids\n"))
            #expect(await throttle.unavailableReason() == nil)
        }
    }
}
