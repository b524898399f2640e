import Glibc
import Synchronization
import Platform

/// Whether device-mapper can be used here, asked again while it cannot.
///
/// On a fresh node `dm_mod` is often not loaded until something first needs it, so an answer
/// taken once at start-up would disable activation for the life of the process. A positive answer
/// is final (the module is not unloaded under a running driver); a negative one is kept for
/// ``retryInterval`` (5 s) and then probed again, so a node whose device-mapper appears later works
/// without a restart, while a host that has none does not run `modprobe` on every call.
final class DeviceMapperAvailability: Sendable {
    /// One probe's result.
    struct Answer: Sendable, Equatable {
        var available: Bool
        /// How it was found out, or why it is missing ("modprobe dm_mod exited with status 1: ...").
        var detail: String
    }

    /// How long a negative answer stands before the next probe.
    static let retryInterval: Duration = .seconds(5)

    private struct State {
        var answer: Answer?
        var probedAt: ContinuousClock.Instant?
        var probing = false
        var probes = 0
    }

    private let state = Mutex(State())
    private let probe: @Sendable () -> Answer
    private let now: @Sendable () -> ContinuousClock.Instant
    private let retryInterval: Duration
    private let changed: @Sendable (Answer) -> Void

    /// - Parameters:
    ///   - probe: finds the answer; may block (it may run `modprobe`).
    ///   - now: the clock.
    ///   - changed: called with the first answer, and when device-mapper appears.
    init(
        retryInterval: Duration = DeviceMapperAvailability.retryInterval, probe: @escaping @Sendable () -> Answer,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }, changed: @escaping @Sendable (Answer) -> Void = { _ in }
    ) {
        self.retryInterval = retryInterval
        self.probe = probe
        self.now = now
        self.changed = changed
    }

    /// The answer when no probe is due (known available, or unavailable and probed less than
    /// `retryInterval` ago, or being probed right now), else nil. Never blocks.
    var cached: Answer? {
        let time = now()
        return state.withLock { s in
            guard let answer = s.answer else { return nil }
            if answer.available || s.probing { return answer }
            if let at = s.probedAt, time - at < retryInterval { return answer }
            return nil
        }
    }

    /// The answer, probing first when one is due. Blocks while probing: call it where blocking is
    /// allowed (the LVM thread). A caller arriving while another probes gets the previous answer.
    func current() -> Answer {
        let time = now()
        let due: Answer? = state.withLock { s in
            if let answer = s.answer {
                if answer.available || s.probing { return answer }
                if let at = s.probedAt, time - at < retryInterval { return answer }
            } else if s.probing {
                return Answer(available: false, detail: "device-mapper is being looked for")
            }
            s.probing = true
            return nil
        }
        if let due { return due }
        let answer = probe()
        let previous: Answer? = state.withLock { s in
            defer {
                s.answer = answer
                s.probedAt = now()
                s.probing = false
                s.probes += 1
            }
            return s.answer
        }
        if previous == nil || previous?.available != answer.available { changed(answer) }
        return answer
    }

    /// How many probes ran (tests).
    var probes: Int { state.withLock { $0.probes } }

    /// Opens `/dev/mapper/control`; when it cannot be opened, loads `dm_mod` the way LVM does
    /// (`modprobe dm_mod`, from /sbin, /usr/sbin or `PATH`) and opens it again.
    static func probeSystem() -> Answer {
        let control = "/dev/mapper/control"
        if let missing = openFails(control) {
            guard let modprobe = findProgram("modprobe") else {
                return Answer(
                    available: false, detail: "\(control) cannot be opened (\(missing)) and modprobe is not in /sbin, /usr/sbin or PATH")
            }
            let outcome: String
            do {
                let result = try runProgram(modprobe, ["dm_mod"])
                let first = (result.error + result.output).split(separator: "\n").first.map { ": " + $0 } ?? ""
                outcome = result.status == 0 ? "\(modprobe) dm_mod succeeded" : "\(modprobe) dm_mod exited with status \(result.status)\(first)"
            } catch {
                outcome = "\(modprobe) dm_mod could not run: \(error.message)"
            }
            if let still = openFails(control) {
                return Answer(available: false, detail: "\(control) cannot be opened (\(still)); \(outcome)")
            }
            return Answer(available: true, detail: "\(control) opens after \(outcome)")
        }
        return Answer(available: true, detail: "\(control) opens")
    }

    /// Why `path` cannot be opened read-write, or nil when it can.
    private static func openFails(_ path: String) -> String? {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        if fd >= 0 {
            close(fd)
            return nil
        }
        return errnoText(errno)
    }

    /// The absolute path of an executable `name` in /sbin, /usr/sbin or a `PATH` directory.
    static func findProgram(_ name: String, path: String? = getenvString("PATH")) -> String? {
        let directories = ["/sbin", "/usr/sbin"] + (path ?? "").split(separator: ":").map(String.init).filter { $0.hasPrefix("/") }
        return directories.map { $0 + "/" + name }.first { access($0, X_OK) == 0 }
    }
}
