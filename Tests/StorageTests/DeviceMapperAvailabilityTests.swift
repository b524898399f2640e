import Glibc
import Synchronization
import Testing

@testable import Storage

/// When device-mapper is looked for again: a positive answer is final, a negative one stands for
/// the retry interval; observers hear the first answer and the change to available.
@Suite struct DeviceMapperAvailabilityTests {
    typealias Answer = DeviceMapperAvailability.Answer

    /// A clock the test moves.
    final class TestClock: Sendable {
        let instant = Mutex(ContinuousClock.now)
        func now() -> ContinuousClock.Instant { instant.withLock { $0 } }
        func advance(_ duration: Duration) { instant.withLock { $0 += duration } }
    }

    /// A probe giving scripted answers (the last one repeats), and what observers were told.
    final class Script: Sendable {
        let answers: Mutex<[Bool]>
        let told = Mutex<[Bool]>([])
        init(_ answers: [Bool]) { self.answers = Mutex(answers) }
        func probe() -> Answer {
            let available = answers.withLock { $0.count > 1 ? $0.removeFirst() : $0[0] }
            return Answer(available: available, detail: available ? "opens" : "missing")
        }
    }

    func make(_ script: Script, _ clock: TestClock) -> DeviceMapperAvailability {
        DeviceMapperAvailability(
            retryInterval: .seconds(5), probe: script.probe, now: clock.now, changed: { answer in script.told.withLock { $0.append(answer.available) } })
    }

    @Test func aMissingDeviceMapperIsLookedForAgainAtMostEveryInterval() {
        let clock = TestClock()
        let script = Script([false])
        let dm = make(script, clock)
        #expect(dm.cached == nil)
        #expect(dm.current() == Answer(available: false, detail: "missing"))
        #expect(dm.probes == 1)
        for _ in 0..<10 { #expect(dm.current().available == false) }
        #expect(dm.cached?.available == false)
        clock.advance(.milliseconds(4999))
        #expect(dm.current().available == false)
        #expect(dm.probes == 1)
        clock.advance(.milliseconds(1))
        #expect(dm.cached == nil)
        #expect(dm.current().available == false)
        #expect(dm.probes == 2)
        // A missing device-mapper is reported once, not at every probe.
        #expect(script.told.withLock { $0 } == [false])
    }

    @Test func deviceMapperThatAppearsLaterIsFoundAndKept() {
        let clock = TestClock()
        let script = Script([false, false, true, false])
        let dm = make(script, clock)
        #expect(dm.current().available == false)
        clock.advance(.seconds(5))
        #expect(dm.current().available == false)
        clock.advance(.seconds(5))
        #expect(dm.current() == Answer(available: true, detail: "opens"))
        #expect(dm.probes == 3)
        // Positive is final: never probed again, however long.
        clock.advance(.seconds(3600))
        #expect(dm.cached?.available == true)
        #expect(dm.current().available == true)
        #expect(dm.probes == 3)
        #expect(script.told.withLock { $0 } == [false, true])
    }

    @Test func anAvailableDeviceMapperIsProbedOnce() {
        let clock = TestClock()
        let script = Script([true])
        let dm = make(script, clock)
        for _ in 0..<5 { #expect(dm.current().available) }
        #expect(dm.probes == 1)
        #expect(script.told.withLock { $0 } == [true])
    }

    @Test func theSystemProbeNamesTheControlDevice() {
        let answer = DeviceMapperAvailability.probeSystem()
        #expect(answer.detail.contains("/dev/mapper/control"))
        let opens = open("/dev/mapper/control", O_RDWR | O_CLOEXEC)
        if opens >= 0 { close(opens) }
        #expect(answer.available == (opens >= 0))
    }

    @Test func modprobeIsLookedForInSbinAndPath() throws {
        let directory = "/var/tmp/dmprobe-\(uniqueSuffix())"
        #expect(mkdir(directory, 0o700) == 0)
        defer { _ = rmTree(directory) }
        let name = "fake-modprobe-\(uniqueSuffix())"
        #expect(writeWholeFile(directory + "/" + name, "#!/bin/sh\n", mode: 0o700))
        #expect(DeviceMapperAvailability.findProgram(name, path: "/nonexistent:" + directory) == directory + "/" + name)
        #expect(DeviceMapperAvailability.findProgram(name, path: "relative:/nonexistent") == nil)
        #expect(DeviceMapperAvailability.findProgram(name, path: nil) == nil)
        chmod(directory + "/" + name, 0o600)
        #expect(DeviceMapperAvailability.findProgram(name, path: directory) == nil)
    }

    @Test func withoutUdevLVMMakesNodesItselfAndDoesNotWait() {
        let text = LVM.configuration(host: "/etc/lvm", hostText: "global {\n    umask = 077\n}", scanning: ["/dev/loop7"])
        #expect(text.contains("umask = 077") && text.contains("use_aio = 0") && text.contains("a|^/dev/loop7$|"))
        #expect(!text.contains("udev_sync"))
        for setting in ["activation {", "udev_rules = 0", "udev_sync = 0"] { #expect(LVM.withoutUdev.contains(setting)) }
    }
}

/// The private lvm.conf the process-wide handle reads follows whether udev runs here.
@Suite(.enabled(if: isRoot, rootReason))
struct LVMConfigurationFileTests {
    @Test func udevSettingsFollowTheHost() throws {
        let directory = try #require(LVM.shared.systemDirectory)
        let text = try #require(readWholeFile(directory + "/lvm.conf"))
        #expect(text.contains("udev_sync = 0") == !LVM.udevRunning())
        #expect(text.contains("use_aio = 0"))
    }
}
