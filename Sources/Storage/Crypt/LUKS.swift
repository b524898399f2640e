import Glibc
import Platform

/// A passphrase: it prints as `<redacted>` and reaches a program only on its standard input.
public struct Passphrase: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    let bytes: [UInt8]

    /// Wraps a passphrase taken from a CSI secret.
    public init(_ text: String) { bytes = Array(text.utf8) }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// LUKS2 encryption of a volume's block device with `cryptsetup`: format once, open under a name
/// derived from the volume id, resize, close. Every call blocks (run it from ``offload(_:)``) and
/// is idempotent, so a repeated NodeStageVolume after a crash finishes what the first began. The
/// passphrase goes to cryptsetup on a pipe (`--key-file -`): never on its command line, in its
/// environment or in a file.
public enum LUKS {
    /// The magic bytes a LUKS (1 or 2) header starts with: `LUKS\xba\xbe`.
    static let magic: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]

    /// The device-mapper name a volume's opened mapping gets: `luks-` and the volume id when it
    /// is made of letters, digits, `-`, `_` and `.` and short enough, else `luks-` and a hash of it
    /// (device-mapper names are at most 127 bytes and must not hold `/`).
    public static func mappingName(forVolume id: String) -> String {
        let safe = id.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: ".")
        }
        if safe && !id.isEmpty && id.utf8.count <= 100 && !id.hasPrefix(".") { return "luks-" + id }
        // FNV-1a, 64 bits, twice with different offsets: stable across runs and builds.
        func fnv(_ seed: UInt64) -> String {
            var hash = seed
            for byte in id.utf8 {
                hash ^= UInt64(byte)
                hash &*= 0x100_0000_01b3
            }
            let text = String(hash, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }
        return "luks-" + fnv(0xcbf2_9ce4_8422_2325) + fnv(0x8422_2325_cbf2_9ce4)
    }

    /// The path of an opened mapping.
    public static func mappingPath(_ name: String) -> String { "/dev/mapper/" + name }

    /// Whether `device` starts with a LUKS header.
    ///
    /// - Throws: `.notFound` when the device is not there; `.failed` when it cannot be read.
    public static func hasHeader(device: String) throws(StorageError) -> Bool {
        let fd = try syscall("open", device) { Glibc.open(device, O_RDONLY | O_CLOEXEC) }
        defer { Glibc.close(fd) }
        var header = [UInt8](repeating: 0, count: magic.count)
        let count = try syscall("read", device) { header.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
        return count == magic.count && header == magic
    }

    /// Formats `device` as LUKS2 with `passphrase`, unless it holds a LUKS header already.
    ///
    /// A device that holds anything else that `blkid` recognises (a filesystem from an
    /// unencrypted life) is refused with `.busy`, never overwritten.
    public static func formatIfNeeded(
        device: String, volume: String, passphrase: Passphrase, tuning: [String] = []
    ) throws(StorageError) {
        if try hasHeader(device: device) { return }
        let probe = try runProgram("blkid", ["-p", "-o", "value", "-s", "TYPE", device])
        let type = probe.output.split(whereSeparator: \.isWhitespace).first.map(String.init) ?? ""
        if probe.status == 0 && !type.isEmpty {
            throw StorageError(
                .busy, "volume \(volume) is to be encrypted but its device \(device) already holds \(type) data, which would be lost")
        }
        try runChecked(
            "cryptsetup",
            ["luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "argon2id"] + tuning + ["--key-file", "-", device],
            what: "formatting volume \(volume) (\(device)) with LUKS2", input: passphrase.bytes)
    }

    /// Opens `device` as `/dev/mapper/<name>` with `passphrase`. An existing mapping of that name
    /// (`backing`, the device under it, from ``backingDevice(ofMapping:)``) over the same device is
    /// kept (a repeated stage); one over another device is `.alreadyExists`.
    /// A wrong passphrase is `.invalidArgument`, naming the volume and never the passphrase.
    public static func open(
        device: String, name: String, volume: String, passphrase: Passphrase, backing: DeviceNumber?
    ) throws(StorageError) {
        if let backing {
            let wanted = try deviceNumber(of: device)
            guard backing == wanted else {
                throw StorageError(
                    .alreadyExists,
                    "volume \(volume): the mapping \(name) is open over device \(backing), not over \(device) (\(wanted))")
            }
            return
        }
        // --disable-keyring keeps the volume key in the mapping, so a later resize needs no passphrase.
        let result = try runProgram(
            "cryptsetup", ["open", "--type", "luks2", "--disable-keyring", "--key-file", "-", device, name], input: passphrase.bytes)
        switch result.status {
        case 0: return
        case 2:
            throw StorageError(.invalidArgument, "volume \(volume): the passphrase in the node-stage secret does not open its LUKS2 device \(device)")
        default:
            let lines = (result.error + result.output).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            throw StorageError(
                .failed, "opening the LUKS2 device \(device) of volume \(volume) as \(name): cryptsetup exited with status \(result.status)",
                command: "cryptsetup open --type luks2 --disable-keyring --key-file - \(device) \(name)", details: lines)
        }
    }

    /// Closes the mapping `name`; nothing to do when it is not open.
    public static func close(name: String, volume: String) throws(StorageError) {
        guard backingDevice(ofMapping: name) != nil else { return }
        try runChecked("cryptsetup", ["close", name], code: .busy, what: "closing the LUKS2 mapping \(name) of volume \(volume)")
    }

    /// Grows the mapping `name` to its device's new size.
    public static func resize(name: String, volume: String) throws(StorageError) {
        try runChecked("cryptsetup", ["resize", name], what: "resizing the LUKS2 mapping \(name) of volume \(volume)")
    }

    /// The device under the open mapping `name`, from sysfs; nil when no such mapping is open.
    static func backingDevice(ofMapping name: String) -> DeviceNumber? {
        var info = stat()
        guard stat(mappingPath(name), &info) == 0, info.st_mode & S_IFMT == S_IFBLK else { return nil }
        return slave(of: DeviceNumber(info.st_rdev))
    }

    /// The one device under the device-mapper device `device` (`/sys/dev/block/M:m/slaves`), or nil.
    static func slave(of device: DeviceNumber) -> DeviceNumber? {
        let slaves = "/sys/dev/block/\(device)/slaves"
        guard let directory = opendir(slaves) else { return nil }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if entryName == "." || entryName == ".." { continue }
            if let text = readWholeFile("/sys/class/block/\(entryName)/dev") {
                let parts = text.split(whereSeparator: \.isWhitespace).first?.split(separator: ":") ?? []
                if parts.count == 2, let major = UInt32(parts[0]), let minor = UInt32(parts[1]) {
                    return DeviceNumber(major: major, minor: minor)
                }
            }
        }
        return nil
    }

    static func deviceNumber(of device: String) throws(StorageError) -> DeviceNumber {
        var info = stat()
        _ = try syscall("stat", device) { stat(device, &info) }
        guard info.st_mode & S_IFMT == S_IFBLK else { throw StorageError(.invalidArgument, "\(device) is not a block device") }
        return DeviceNumber(info.st_rdev)
    }
}

/// Opens and closes the encryption layer of volumes on a node. ``LUKSEncryptor`` is the real one;
/// tests of the node service use a fake.
public protocol VolumeEncryptor: Sendable {
    /// Formats `device` for `volumeID` when it holds no encryption header yet (and `format` is
    /// set), opens it with `passphrase`, and returns the opened mapping's device path. Repeated,
    /// it returns the mapping already open.
    func open(device: String, volumeID: String, passphrase: Passphrase, format: Bool) async throws(StorageError) -> String
    /// The device path of `volumeID`'s open mapping, or nil when none is open.
    func openMapping(volumeID: String) async throws(StorageError) -> String?
    /// Closes `volumeID`'s mapping; nothing to do when it is not open.
    func close(volumeID: String) async throws(StorageError)
    /// Grows `volumeID`'s open mapping to its device's size.
    func resize(volumeID: String) async throws(StorageError)
    /// The device under the mapping `device`, when `device` is one of these mappings.
    func underlyingDevice(of device: DeviceNumber) async -> DeviceNumber?
}

/// ``VolumeEncryptor`` over LUKS2 and `cryptsetup`, off the event loop.
public struct LUKSEncryptor: VolumeEncryptor, Hashable {
    /// Memory the key derivation (argon2id) may use, in KiB. cryptsetup's own default may take up
    /// to 1 GiB per open, which would kill a node plugin under a container memory limit.
    public var pbkdfMemoryKiB: Int
    /// How long one key derivation is made to take on this node, in milliseconds.
    public var iterationTimeMilliseconds: Int

    /// An encryptor; by default 64 MiB and 1 s per key derivation.
    public init(pbkdfMemoryKiB: Int = 65_536, iterationTimeMilliseconds: Int = 1000) {
        self.pbkdfMemoryKiB = pbkdfMemoryKiB
        self.iterationTimeMilliseconds = iterationTimeMilliseconds
    }

    public func open(device: String, volumeID: String, passphrase: Passphrase, format: Bool) async throws(StorageError) -> String {
        let name = LUKS.mappingName(forVolume: volumeID)
        let settings = self
        return try await offload { () throws(StorageError) -> String in
            // A mapping open already (a repeated stage) is checked and kept; only a closed one is
            // formatted when it must be, then opened.
            let backing = LUKS.backingDevice(ofMapping: name)
            if backing == nil {
                if format {
                    try LUKS.formatIfNeeded(
                        device: device, volume: volumeID, passphrase: passphrase,
                        tuning: ["--pbkdf-memory", String(settings.pbkdfMemoryKiB), "--iter-time", String(settings.iterationTimeMilliseconds)])
                } else if try !LUKS.hasHeader(device: device) {
                    throw StorageError(.busy, "volume \(volumeID) is to be opened read-only, but its device \(device) has no LUKS2 header yet")
                }
            }
            try LUKS.open(device: device, name: name, volume: volumeID, passphrase: passphrase, backing: backing)
            return LUKS.mappingPath(name)
        }
    }

    public func openMapping(volumeID: String) async throws(StorageError) -> String? {
        let name = LUKS.mappingName(forVolume: volumeID)
        // stat and sysfs reads: off the event loop like the rest.
        return await offload { LUKS.backingDevice(ofMapping: name) != nil ? LUKS.mappingPath(name) : nil }
    }

    public func close(volumeID: String) async throws(StorageError) {
        let name = LUKS.mappingName(forVolume: volumeID)
        try await offload { () throws(StorageError) in try LUKS.close(name: name, volume: volumeID) }
    }

    public func resize(volumeID: String) async throws(StorageError) {
        let name = LUKS.mappingName(forVolume: volumeID)
        try await offload { () throws(StorageError) in try LUKS.resize(name: name, volume: volumeID) }
    }

    public func underlyingDevice(of device: DeviceNumber) async -> DeviceNumber? {
        LUKS.slave(of: device)
    }
}
