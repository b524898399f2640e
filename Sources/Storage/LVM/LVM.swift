internal import CLVM2Cmd
import Dispatch
import Glibc
import Synchronization

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
/// handle never misses a device udev has not processed yet. On a machine without device-mapper every command gets
/// `--driverloaded n`, so metadata operations work with activation disabled.
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

    /// Whether `/dev/mapper/control` could be opened: LVs are activated and get device nodes.
    let deviceMapperAvailable: Bool
    /// The private configuration directory the handle reads (`LVM_SYSTEM_DIR`), if it could be made.
    let systemDirectory: String?

    private let thread = SerialThread()
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
    }

    private init(scanning devices: [String]?) {
        scannedDevices = devices
        let control = open("/dev/mapper/control", O_RDWR | O_CLOEXEC)
        if control >= 0 { close(control) }
        deviceMapperAvailable = control >= 0
        systemDirectory = LVM.makeSystemDirectory(scanning: devices)
        let mask = umask(0o022)
        umask(mask)
        processUmask = mask
        processLocale = setlocale(LC_ALL, nil).map { String(cString: $0) }
    }

    /// Loads liblvm2cmd if needed and opens a handle; on `thread`. The outcome is in `session`.
    private func openHandle() {
        let directory = systemDirectory
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
        _ = malloc_trim(0)
        let failure =
            api.error.map { "liblvm2cmd could not be loaded: " + String(cString: $0) }
            ?? (h == nil ? "liblvm2cmd could not be initialised (lvm2_init returned NULL)" : nil)
        session.withLock {
            $0.handle = UInt(bitPattern: h)
            $0.openError = failure
            if h != nil { $0.opened += 1 }
        }
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
        _ = malloc_trim(0)
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
        (try? await thread.run { () throws(StorageError) -> T in body() })!
    }

    /// The umask and locale the process had before LVM was set up.
    var processState: (umask: mode_t, locale: String?) { (processUmask, processLocale) }

    /// Runs one command and returns what it reported.
    /// - Throws: ``StorageError`` with the command line and LVM's error lines when LVM returns
    ///   anything but success: `.invalidArgument` for a rejected command line, `.notFound`,
    ///   `.alreadyExists`, `.insufficientCapacity`, `.busy` when the error lines say so, else `.failed`.
    func run(_ command: LVMCommand) async throws(StorageError) -> LVMOutput {
        var words = command.words
        if !deviceMapperAvailable && !words.isEmpty { words.insert(contentsOf: [LVMWord("--driverloaded"), LVMWord("n")], at: 1) }
        let line = LVMCommand(words).line
        let mask = processUmask
        return try await thread.run { () throws(StorageError) -> LVMOutput in
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
            _ = malloc_trim(0)
            self.scheduleRelease(after: count)
            if rc != LVM2_COMMAND_SUCCEEDED { throw output.error(command: line) }
            return output
        }
    }

    /// Closes the handle `idleRelease` after the `count`-th command unless another ran since.
    private func scheduleRelease(after count: UInt64) {
        let delay = Self.idleRelease.components
        let nanoseconds = Int(delay.seconds) * 1_000_000_000 + Int(delay.attoseconds / 1_000_000_000)
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { [self] in
            thread.submit { self.closeHandle(ifIdleSince: count) }
        }
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

    private static func makeSystemDirectory(scanning devices: [String]?) -> String? {
        let host = getenv("LVM_SYSTEM_DIR").map { String(cString: $0) } ?? "/etc/lvm"
        var base = "/run/swift-csi"
        if mkdir(base, 0o700) != 0 && errno != EEXIST { base = "/tmp" }
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
        if let hostText = readWholeFile(host + "/lvm.conf") { text += hostText + "\n" }
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
            devices {
                obtain_device_list_from_udev = 0
                hints = "none"
            }

            """
        if let devices {
            // Scanning only the volume groups' devices saves ~1-3 ms per command on a machine
            // with many block devices.
            let accept = devices.map { "\"a|^\($0.replacingDots())$|\"" }.joined(separator: ", ")
            text += "devices {\n    global_filter = [ \(accept), \"r|.*|\" ]\n}\n"
        }
        guard writeWholeFile(path + "/lvm.conf", text) else {
            _ = rmTree(path)
            return nil
        }
        return path
    }

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
