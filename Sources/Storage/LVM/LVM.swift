internal import CLVM2Cmd
import Glibc
import Synchronization
import Platform

/// An in-process LVM client over liblvm2cmd.
///
/// One process-wide handle serves every command; commands run one at a time on a dedicated thread,
/// and callers `await` them without blocking their own thread. The handle is opened (`lvm2_init`)
/// by the first command and closed (`lvm2_exit`, library unloaded) after ``idleRelease`` without
/// commands, so an idle process does not keep LVM's caches and libraries resident. Reports come back
/// as JSON through LVM's log callback and are separated from warnings and errors per command.
///
/// The handle reads a private copy of the host's `lvm.conf` with `global/use_aio = 0` appended: with
/// asynchronous I/O on, every command ends by tearing down a kernel AIO context (`io_destroy`), a
/// fixed cost of ~30 ms, and `--config` cannot switch it off because the I/O layer is set up before
/// command-line settings apply. `devices/obtain_device_list_from_udev = 0` is appended too, so the
/// handle never misses a device udev has not processed yet. While udev is not running
/// (`/run/udev/control` is absent, decided each time the handle opens), `activation/udev_rules = 0`
/// and `activation/udev_sync = 0` are appended as well: LVM then makes the device nodes itself
/// instead of waiting for udev, without which `lvcreate` fails ("Failed to wipe start of new LV").
///
/// While device-mapper is not available (``DeviceMapperAvailability``: looked for again, loading
/// `dm_mod`, at most every 5 s until it is) every command gets `--driverloaded n`, so metadata
/// operations work with activation disabled.
final class LVM: Sendable {
    /// The process-wide client without a device restriction (liblvm2cmd's log callback and the
    /// handle's configuration are process-global).
    static var shared: LVM { try! client(scanning: nil) }

    private static let instance = Mutex<LVM?>(nil)

    /// The process-wide client; the first caller decides which devices LVM scans.
    /// - Parameter devices: absolute device paths LVM may scan (written as `devices/global_filter`),
    ///   or nil to scan every device.
    /// - Throws: `.invalidArgument` when the client already exists with another device list, or a
    ///   path has characters outside `[A-Za-z0-9/_.:+-]`.
    static func client(scanning devices: [String]?) throws(StorageError) -> LVM {
        if let devices {
            for device in devices
            where !device.hasPrefix("/")
                || !device.utf8.allSatisfy({ LVMName.isNameByte($0) || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") })
            {
                throw StorageError(
                    .invalidArgument, "device \(LVMName.quoted(device)) to scan must be an absolute path of [A-Za-z0-9/_.:+-]")
            }
        }
        let result: Result<LVM, StorageError> = instance.withLock { current in
            if let current {
                if devices == nil || current.scannedDevices == devices { return .success(current) }
                return .failure(
                    StorageError(
                        .invalidArgument,
                        "LVM is already set up in this process to scan \(current.scannedDevices?.joined(separator: ", ") ?? "every device"); it cannot also scan only \(devices!.joined(separator: ", "))"
                    ))
            }
            let created = LVM(scanning: devices)
            current = created
            return .success(created)
        }
        return try result.get()
    }

    /// The devices LVM is restricted to, or nil for all.
    let scannedDevices: [String]?

    /// Whether `/dev/mapper/control` opens (LVs are activated and get device nodes), looked for
    /// again while it does not; read it through ``deviceMapper()`` or on the LVM thread.
    let deviceMapperState: DeviceMapperAvailability
    /// Who is told when device-mapper is found, or found missing the first time.
    private let deviceMapperObservers: DeviceMapperObservers
    /// The private configuration directory the handle reads (`LVM_SYSTEM_DIR`), if it could be made.
    let systemDirectory: String?
    /// Its `lvm.conf` without the settings that depend on udev running.
    private let baseConfiguration: String

    private let thread = SerialThread(name: "lvm")
    /// The open `lvm2_init` handle and what happened to it; only touched on `thread`.
    private let session = Mutex(Session())
    /// The process's umask before LVM's: liblvm2cmd sets its own (0077) process-wide at
    /// initialisation and for each command, and it is put back afterwards.
    private let processUmask: mode_t
    /// The process's locale before LVM's (`setlocale(LC_ALL, nil)`), put back the same way.
    private let processLocale: String?

    /// How long the handle stays open after the last command. Then it is closed and liblvm2cmd
    /// unloaded: an open handle keeps its block cache (the metadata areas it read), device cache
    /// and configuration, and the library and its ~15 dependencies stay mapped — together ~8 MiB of
    /// an idle driver. Opening it again adds ~20 ms to the next command.
    static let idleRelease: Duration = .seconds(5)

    /// The state of the liblvm2cmd handle.
    private struct Session {
        /// The `lvm2_init` handle as a bit pattern, 0 while closed.
        var handle: UInt = 0
        /// Why liblvm2cmd could not be loaded or initialised, the last time it was tried.
        var openError: String?
        /// Counts commands, so an idle release scheduled after one command knows whether another ran since.
        var commands: UInt64 = 0
        /// How many times the handle was opened (tests).
        var opened = 0
        /// Whether the open handle was set up with device-mapper available.
        var openedWithDeviceMapper = false
        /// Whether `lvm.conf` was last written for a running udev (nil: not written).
        var writtenForUdev: Bool?
    }

    private init(scanning devices: [String]?) {
        scannedDevices = devices
        let observers = DeviceMapperObservers()
        deviceMapperObservers = observers
        deviceMapperState = DeviceMapperAvailability(probe: DeviceMapperAvailability.probeSystem, changed: observers.notify)
        let host = getenv("LVM_SYSTEM_DIR").map { String(cString: $0) } ?? "/etc/lvm"
        let base = LVM.configuration(host: host, hostText: readWholeFile(host + "/lvm.conf"), scanning: devices)
        let udev = LVM.udevRunning()
        var directory = LVM.makeSystemDirectory(host: host)
        if let path = directory, !writeWholeFile(path + "/lvm.conf", base + (udev ? "" : LVM.withoutUdev)) {
            _ = rmTree(path)
            directory = nil
        }
        systemDirectory = directory
        baseConfiguration = base
        let mask = umask(0o022)
        umask(mask)
        processUmask = mask
        processLocale = setlocale(LC_ALL, nil).map { String(cString: $0) }
        session.withLock { $0.writtenForUdev = udev }
    }

    /// Loads liblvm2cmd if needed and opens a handle; on `thread`. The outcome is in `session`.
    private func openHandle() {
        let directory = systemDirectory
        if let directory { writeConfiguration(in: directory) }
        let withDeviceMapper = deviceMapperState.cached?.available ?? false
        let mask = processUmask
        // lvm2_init reads LVM_SYSTEM_DIR once and keeps the path; set it only around the call.
        let previous = getenv("LVM_SYSTEM_DIR").map { String(cString: $0) }
        if let directory { setenv("LVM_SYSTEM_DIR", directory, 1) }
        // lvm2_init and commands call setlocale and set umask 0077 for the whole process;
        // both are put back after each call so the rest of the process is not affected.
        let api = clvm2_load().pointee
        var h: UnsafeMutableRawPointer?
        if let initialise = api.initialize, let setLog = api.log_fn {
            setLog(lvmLogCallback)
            h = initialise()
        }
        umask(mask)
        restoreLocale()
        if directory != nil {
            if let previous { setenv("LVM_SYSTEM_DIR", previous, 1) } else { unsetenv("LVM_SYSTEM_DIR") }
        }
        if let h { api.log_level?(h, 4) }
        ProcessMemory.trim()
        let failure =
            api.error.map { "liblvm2cmd could not be loaded: " + String(cString: $0) }
            ?? (h == nil ? "liblvm2cmd could not be initialised (lvm2_init returned NULL)" : nil)
        session.withLock {
            $0.handle = UInt(bitPattern: h)
            $0.openError = failure
            $0.openedWithDeviceMapper = withDeviceMapper
            if h != nil { $0.opened += 1 }
        }
    }

    /// Writes `lvm.conf` into `directory` for whether udev runs now, unless it already is; on `thread`.
    private func writeConfiguration(in directory: String) {
        let udev = Self.udevRunning()
        guard session.withLock({ $0.writtenForUdev != udev }) else { return }
        if writeWholeFile(directory + "/lvm.conf", baseConfiguration + (udev ? "" : Self.withoutUdev)) {
            session.withLock { $0.writtenForUdev = udev }
        }
    }

    /// Whether udev is running: its control socket exists.
    static func udevRunning() -> Bool { access("/run/udev/control", F_OK) == 0 }

    /// Whether device-mapper is available, probing (and loading `dm_mod`) when a probe is due.
    func deviceMapper() async -> DeviceMapperAvailability.Answer {
        if let known = deviceMapperState.cached { return known }
        return await betweenCommands { self.deviceMapperOnThread() }
    }

    /// ``deviceMapper()`` on `thread`: a handle opened before device-mapper appeared is closed,
    /// so the next command opens one that can activate.
    private func deviceMapperOnThread() -> DeviceMapperAvailability.Answer {
        let answer = deviceMapperState.current()
        if answer.available && session.withLock({ $0.handle != 0 && !$0.openedWithDeviceMapper }) {
            closeHandle(ifIdleSince: nil)
        }
        return answer
    }

    /// Calls `observer` with the first answer about device-mapper and when it appears later.
    func observeDeviceMapper(_ observer: @escaping @Sendable (DeviceMapperAvailability.Answer) -> Void) {
        deviceMapperObservers.add(observer)
    }

    /// Closes the handle and unloads liblvm2cmd when no command ran since the `after`-th; on `thread`.
    private func closeHandle(ifIdleSince after: UInt64?) {
        let handle: UInt? = session.withLock { s in
            guard s.handle != 0, after == nil || s.commands == after else { return nil }
            defer { s.handle = 0 }
            return s.handle
        }
        guard let handle, let h = UnsafeMutableRawPointer(bitPattern: handle) else { return }
        clvm2_load().pointee.exit?(h)
        clvm2_unload()
        umask(processUmask)
        restoreLocale()
        ProcessMemory.trim()
    }

    private func restoreLocale() {
        if let locale = processLocale, let current = setlocale(LC_ALL, nil), strcmp(current, locale) != 0 {
            _ = setlocale(LC_ALL, locale)
        }
    }

    /// Closes the liblvm2cmd handle now (it opens again on the next command).
    func releaseHandle() async {
        await betweenCommands { self.closeHandle(ifIdleSince: nil) }
    }

    /// How many times a handle was opened, and whether one is open now.
    var handleState: (opened: Int, open: Bool) {
        get async { await betweenCommands { self.session.withLock { ($0.opened, $0.handle != 0) } } }
    }

    /// Runs `body` on the LVM thread between commands (where process-wide state is the
    /// process's own again).
    func betweenCommands<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await thread.run(body)
    }

    /// The umask and locale the process had before LVM was set up.
    var processState: (umask: mode_t, locale: String?) { (processUmask, processLocale) }

    /// Runs one command and returns what it reported.
    /// - Throws: ``StorageError`` with the command line and LVM's error lines when LVM returns
    ///   anything but success: `.invalidArgument` for a rejected command line, `.notFound`,
    ///   `.alreadyExists`, `.insufficientCapacity`, `.busy` when the error lines say so, else `.failed`.
    func run(_ command: LVMCommand) async throws(StorageError) -> LVMOutput {
        let mask = processUmask
        return try await thread.run { () throws(StorageError) -> LVMOutput in
            var words = command.words
            if !self.deviceMapperOnThread().available && !words.isEmpty {
                words.insert(contentsOf: [LVMWord("--driverloaded"), LVMWord("n")], at: 1)
            }
            let line = LVMCommand(words).line
            if self.session.withLock({ $0.handle == 0 }) { self.openHandle() }
            let (handle, openError, count) = self.session.withLock { s -> (UInt, String?, UInt64) in
                s.commands &+= 1
                return (s.handle, s.openError, s.commands)
            }
            guard let h = UnsafeMutableRawPointer(bitPattern: handle), let run = clvm2_load().pointee.run else {
                throw StorageError(.failed, openError ?? "liblvm2cmd could not be initialised", command: line)
            }
            lvmCollector.reset()
            let rc = run(h, line)
            umask(mask)
            self.restoreLocale()
            let output = lvmCollector.finish(returnCode: rc)
            // liblvm2cmd allocates and frees megabytes per command (device scan, metadata
            // buffers); give the freed heap back to the kernel instead of keeping it resident.
            ProcessMemory.trim()
            self.scheduleRelease(after: count)
            if rc != LVM2_COMMAND_SUCCEEDED { throw output.error(command: line) }
            return output
        }
    }

    /// Closes the handle `idleRelease` after the `count`-th command unless another ran since.
    private func scheduleRelease(after count: UInt64) {
        thread.submit(after: Self.idleRelease) { [self] in closeHandle(ifIdleSince: count) }
    }

    /// Runs a report command (`lvs`, `vgs`, `pvs`) with JSON output in plain bytes and decodes the
    /// rows of the report named `key` (`"lv"`, `"vg"`, `"pv"`).
    func report<Row: LVMReportRow>(_ command: LVMCommand, key: String, as: Row.Type) async throws(StorageError) -> [Row] {
        var words = command.words
        words.insert(
            contentsOf: [LVMWord("--reportformat"), LVMWord("json"), LVMWord("--units"), LVMWord("b"), LVMWord("--nosuffix")], at: 1)
        let output = try await run(LVMCommand(words))
        return try output.rows(key: key, as: Row.self, command: command.line)
    }

    /// Makes the private configuration directory with the host's files but `lvm.conf` linked in.
    private static func makeSystemDirectory(host: String) -> String? {
        var base = "/run/swift-csi"
        if (try? makeDirectories(base, mode: 0o700)) == nil { base = "/tmp" }
        removeStaleSystemDirectories(in: base)
        let path = base + "/lvm.\(getpid())"
        _ = rmTree(path)
        guard mkdir(path, 0o700) == 0 else { return nil }
        // Everything but lvm.conf (lvmlocal.conf, profile/, devices/, archive/, backup/) is the host's.
        if let dir = opendir(host) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name == "." || name == ".." || name == "lvm.conf" { continue }
                _ = symlink(host + "/" + name, path + "/" + name)
            }
            closedir(dir)
        }
        return path
    }

    /// The private `lvm.conf`: the host's (`hostText`) between defaults it may override and
    /// settings the driver needs; ``withoutUdev`` is appended while udev is not running.
    static func configuration(host: String, hostText: String?, scanning devices: [String]?) -> String {
        var text = """
            # Written by swift-csi for its in-process LVM handle: the host's \(host)/lvm.conf
            # between defaults it may override and settings the driver needs.
            backup {
                backup_dir = "\(host)/backup"
                archive_dir = "\(host)/archive"
            }
            config {
                profile_dir = "\(host)/profile"
            }

            """
        if let hostText { text += hostText + "\n" }
        text += """

            # A kernel AIO context torn down after each command costs ~30 ms (io_destroy).
            global {
                use_aio = 0
            }
            # Scan /dev itself: a long-lived handle must see a device that udev has not processed
            # yet (a PV just attached), and containers often have no udev database at all.
            # LVM's hints file (/run/lvm/hints) is a cache shared between processes; while other
            # processes create and remove PVs a long-lived handle can read an empty list and miss
            # every volume group. Scanning costs the same here.
            # A device held suspended while a group snapshot is cut (an encryption mapping, an
            # origin) is skipped by the scan instead of waited for: the scan runs in the process
            # that holds it, inside the cut.
            devices {
                obtain_device_list_from_udev = 0
                hints = "none"
                ignore_suspended_devices = 1
            }

            """
        if let devices {
            // Scanning only the volume groups' devices saves ~1-3 ms per command on a machine
            // with many block devices.
            let accept = devices.map { "\"a|^\($0.replacingDots())$|\"" }.joined(separator: ", ")
            text += "devices {\n    global_filter = [ \(accept), \"r|.*|\" ]\n}\n"
        }
        return text
    }

    /// Appended to `lvm.conf` while udev is not running (no `/run/udev/control`; looked at each
    /// time the handle opens, so a udev started later is used from the next open): LVM would
    /// wait for udev to make the device node of a new LV and, without it, `lvcreate` fails with
    /// "Failed to wipe start of new LV". With these, libdevmapper makes the nodes itself and
    /// nothing waits for udev. A running udev keeps the host's settings.
    static let withoutUdev = """
        # udev is not running: make device nodes without it and do not wait for it.
        activation {
            udev_rules = 0
            udev_sync = 0
        }

        """

    private static func removeStaleSystemDirectories(in base: String) {
        guard let dir = opendir(base) else { return }
        var stale: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard name.hasPrefix("lvm."), let pid = Int32(name.dropFirst(4)) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { stale.append(base + "/" + name) }
        }
        closedir(dir)
        for path in stale { _ = rmTree(path) }
    }
}

/// Removes a directory of plain files and symbolic links (not following links).
func rmTree(_ path: String) -> Bool {
    guard let dir = opendir(path) else { return unlink(path) == 0 }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name == "." || name == ".." { continue }
        _ = unlink(path + "/" + name)
    }
    closedir(dir)
    return rmdir(path) == 0
}

/// Reads a whole file as UTF-8 text; nil when it cannot be read.
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, fsync, rename.
@discardableResult
func writeWholeFile(_ path: String, _ text: String, mode: mode_t = 0o644) -> Bool {
    let temporary = path + ".tmp.\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { return false }
    var ok = true
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            ok = false
            break
        }
        bytes = bytes.dropFirst(n)
    }
    if ok && fsync(fd) != 0 { ok = false }
    close(fd)
    if ok && rename(temporary, path) != 0 { ok = false }
    if !ok { unlink(temporary) }
    return ok
}

extension String {
    /// Escapes `.` and `+` for a regular expression in an LVM filter.
    func replacingDots() -> String {
        var out = ""
        for c in self {
            if c == "." || c == "+" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}

/// The callbacks told about device-mapper's availability.
private final class DeviceMapperObservers: Sendable {
    private let observers = Mutex<[@Sendable (DeviceMapperAvailability.Answer) -> Void]>([])

    func add(_ observer: @escaping @Sendable (DeviceMapperAvailability.Answer) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    func notify(_ answer: DeviceMapperAvailability.Answer) {
        for observer in observers.withLock({ $0 }) { observer(answer) }
    }
}
