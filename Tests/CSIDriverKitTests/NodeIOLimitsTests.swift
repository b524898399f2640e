import RPCCore
import CSI
import Storage
import Synchronization
import Testing

@testable import CSIDriverKit

/// An IO throttle in memory: the line each pod got, with the kubelet's target shapes.
final class FakeThrottle: IOThrottle {
    let kubelet = Mutex("")
    let lines = Mutex<[String: String]>([:])
    let pods: Set<String>
    let unavailable: String?
    init(pods: Set<String>, unavailable: String? = nil) {
        self.pods = pods
        self.unavailable = unavailable
    }

    func unavailableReason() async -> String? { unavailable }
    func podUID(ofTarget target: String) -> String? {
        CgroupIOThrottle(kubeletDirectory: kubelet.withLock { $0 }).podUID(ofTarget: target)
    }
    func apply(_ line: String, podUID: String, volumeID: String, wait: Bool) async throws(StorageError) {
        guard pods.contains(podUID) else { throw StorageError(.notFound, "volume \(volumeID): pod \(podUID) has no cgroup") }
        lines.withLock { $0[podUID] = line }
    }
    func clear(device: DeviceNumber, podUID: String) async throws(StorageError) {
        lines.withLock { if $0[podUID]?.hasPrefix("\(device) ") == true { $0[podUID] = IOLimits.ioMaxLine(device: device, [:]) } }
    }
}

/// The node service applies a volume's IO limits to the pod a publish is for, before the mount.
@Suite struct NodeIOLimitsTests {
    func withLimits(_ throttle: FakeThrottle, _ body: (NodeServerTests.Fixture) async throws -> Void) async throws {
        try await NodeServerTests.withFixture(throttle: throttle) { f in
            throttle.kubelet.withLock { $0 = f.kubelet }
            f.backend.state.withLock {
                $0.volumes["vol-1"]?.ioLimits = IOLimits([.writeBytesPerSecond: .absolute(2 << 20), .readIOPS: .perGiB(100)])
                $0.volumes["enc-1"]?.ioLimits = IOLimits([.writeIOPS: .absolute(50)])
            }
            try await body(f)
        }
    }

    @Test func publishWritesTheLineForTheDeviceThenUnpublishLiftsIt() async throws {
        let throttle = FakeThrottle(pods: ["uid-1"])
        try await withLimits(throttle) { f in
            try await NodeServerTests.stage(f, "vol-1")
            try await NodeServerTests.publish(f, "vol-1")
            // 1 GiB at 100 read IOPS per GiB.
            #expect(throttle.lines.withLock { $0 } == ["uid-1": "253:4 rbps=max wbps=2097152 riops=100 wiops=max"])
            throttle.lines.withLock { $0 = [:] }
            try await NodeServerTests.publish(f, "vol-1")  // a repeat applies again
            #expect(throttle.lines.withLock { $0["uid-1"] } == "253:4 rbps=max wbps=2097152 riops=100 wiops=max")
            // A modify's re-application finds the publish in the mount table.
            var volume = try #require(try await f.backend.volume(id: "vol-1"))
            volume.ioLimits = IOLimits([.writeIOPS: .absolute(9)])
            try await f.node.reapplyIOLimits(of: volume)
            #expect(throttle.lines.withLock { $0["uid-1"] } == "253:4 rbps=max wbps=max riops=max wiops=9")
            try await NodeServerTests.unpublish(f, "vol-1")
            #expect(throttle.lines.withLock { $0["uid-1"] } == "253:4 rbps=max wbps=max riops=max wiops=max")
        }
    }

    @Test func rawBlockAndEncryptedVolumesAreLimitedOnTheDeviceThePodUses() async throws {
        let throttle = FakeThrottle(pods: ["uid-1"])
        try await withLimits(throttle) { f in
            try await NodeServerTests.stage(f, "enc-1", NodeServerTests.mountCapability(), secrets: ["passphrase": "k"])
            try await NodeServerTests.publish(f, "enc-1")
            #expect(throttle.lines.withLock { $0["uid-1"] } == "253:9 rbps=max wbps=max riops=max wiops=50")
            try await NodeServerTests.unpublish(f, "enc-1")
            try await NodeServerTests.publish(f, "vol-1", RequestValidationTests.capability(.singleNodeWriter, block: true), target: f.blockTarget)
            #expect(throttle.lines.withLock { $0["uid-1"] } == "253:4 rbps=max wbps=2097152 riops=100 wiops=max")
        }
    }

    @Test func noPodNoCgroupOrNoIOControllerIsFailedPreconditionAndMountsNothing() async throws {
        try await withLimits(FakeThrottle(pods: [])) { f in
            try await NodeServerTests.stage(f, "vol-1")
            let calls = f.mounter.calls.count
            #expect(await NodeServerTests.code { try await NodeServerTests.publish(f, "vol-1") } == .failedPrecondition)
            #expect(await NodeServerTests.code {
                try await NodeServerTests.publish(f, "vol-1", target: f.kubelet + "/pods/uid-1/volumes/other/mount")
            } == .failedPrecondition)
            #expect(f.mounter.calls.count == calls, "nothing was mounted")
        }
        try await withLimits(FakeThrottle(pods: ["uid-1"], unavailable: "no io controller")) { f in
            try await NodeServerTests.stage(f, "vol-1")
            #expect(await NodeServerTests.code { try await NodeServerTests.publish(f, "vol-1") } == .failedPrecondition)
            // A volume without limits publishes as ever.
            f.backend.state.withLock { $0.volumes["vol-1"]?.ioLimits = IOLimits() }
            try await NodeServerTests.publish(f, "vol-1")
        }
    }
}
