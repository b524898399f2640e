/// The IO limits of a volume: for each of read IOPS, write IOPS, read bytes per second and write
/// bytes per second, an absolute limit or one per GiB of the volume's size, or none.
///
/// They come from CSI mutable parameters (a VolumeAttributesClass): `readIOPS`, `writeIOPS`,
/// `readBytesPerSecond`, `writeBytesPerSecond`, each also as `…PerGiB`. A value is a decimal
/// integer of at least 2 (the kernel's `io.max` refuses 0 and 1), or `max` for no limit. The
/// node writes the effective limits into the `io.max` of the pod's cgroup (``CgroupIOThrottle``).
public struct IOLimits: Sendable, Hashable, CustomStringConvertible {
    /// One of the four limited quantities.
    public enum Quantity: String, Sendable, Hashable, CaseIterable, Comparable {
        case readBytesPerSecond, writeBytesPerSecond, readIOPS, writeIOPS

        /// The parameter key of an absolute limit (`readIOPS`).
        public var absoluteKey: String { rawValue }
        /// The parameter key of a limit per GiB (`readIOPSPerGiB`).
        public var perGiBKey: String { rawValue + "PerGiB" }
        /// Its key in `io.max`: `rbps`, `wbps`, `riops`, `wiops`.
        public var ioMaxKey: String {
            switch self {
            case .readBytesPerSecond: "rbps"
            case .writeBytesPerSecond: "wbps"
            case .readIOPS: "riops"
            case .writeIOPS: "wiops"
            }
        }
        /// The largest value the kernel keeps: IOPS limits are 32-bit there (larger ones read `max`).
        var ceiling: UInt64 { self == .readIOPS || self == .writeIOPS ? UInt64(UInt32.max) : UInt64.max }

        public static func < (a: Self, b: Self) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// How one quantity is limited.
    public enum Limit: Sendable, Hashable {
        /// This many operations or bytes per second.
        case absolute(UInt64)
        /// This many per GiB of the volume's size.
        case perGiB(UInt64)
    }

    /// The smallest value `io.max` takes.
    public static let minimumValue: UInt64 = 2

    /// The limit of each limited quantity; a quantity not in it is unlimited.
    public var limits: [Quantity: Limit]

    /// Limits from a table (empty: none).
    public init(_ limits: [Quantity: Limit] = [:]) { self.limits = limits }

    /// Whether nothing is limited.
    public var isEmpty: Bool { limits.isEmpty }

    /// Whether a limit depends on the volume's size.
    public var dependsOnSize: Bool {
        limits.values.contains { if case .perGiB = $0 { return true } else { return false } }
    }

    /// Every parameter key these limits understand, sorted.
    public static var keys: [String] { Quantity.allCases.flatMap { [$0.absoluteKey, $0.perGiBKey] }.sorted() }

    /// The limits as parameters (`readIOPS: "100"`, `writeBytesPerSecondPerGiB: "1048576"`).
    public var parameters: [String: String] {
        var out: [String: String] = [:]
        for (quantity, limit) in limits {
            switch limit {
            case .absolute(let value): out[quantity.absoluteKey] = String(value)
            case .perGiB(let value): out[quantity.perGiBKey] = String(value)
            }
        }
        return out
    }

    public var description: String {
        limits.isEmpty ? "none" : parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    }

    /// A change to some quantities, read from mutable parameters: each named quantity gets a new
    /// limit, or none (`max`). Quantities not named keep theirs (CSI: "SPs MUST NOT modify volumes
    /// based on the absence of keys").
    public struct Change: Sendable, Hashable {
        /// The new limit of each named quantity; nil removes its limit.
        public var limits: [Quantity: Limit?]

        /// Parses mutable parameters; every key must be an IO-limit key.
        /// - Parameter volume: the volume (or request name), for messages.
        /// - Throws: `.invalidArgument` naming the key and the volume: an unknown key, a value that
        ///   is not `max` or a decimal integer from 2 up, an IOPS value above 4294967295, or an
        ///   absolute and a per-GiB key for the same quantity.
        public init(parameters: [String: String], volume: String) throws(StorageError) {
            var limits: [Quantity: Limit?] = [:]
            var keyOf: [Quantity: String] = [:]
            for key in parameters.keys.sorted() {
                let value = parameters[key]!
                guard let (quantity, perGiB) = Self.quantity(forKey: key) else {
                    throw StorageError(
                        .invalidArgument,
                        "volume \(volume): mutable parameter \(LVMName.quoted(key)) is not known; expected one of \(IOLimits.keys.joined(separator: ", "))"
                    )
                }
                if let other = keyOf[quantity] {
                    throw StorageError(
                        .invalidArgument,
                        "volume \(volume): mutable parameters \(other) and \(key) both limit \(quantity.rawValue); give one of them")
                }
                keyOf[quantity] = key
                if value == "max" {
                    limits[quantity] = .some(nil)
                    continue
                }
                let number = try Self.number(value, key: key, volume: volume)
                if !perGiB && number > quantity.ceiling {
                    throw StorageError(
                        .invalidArgument,
                        "volume \(volume): mutable parameter \(key) is \(number), above the kernel's largest IOPS limit \(quantity.ceiling); use max for no limit"
                    )
                }
                limits[quantity] = .some(perGiB ? .perGiB(number) : .absolute(number))
            }
            self.limits = limits
        }

        /// The quantity a key names and whether it is per GiB.
        static func quantity(forKey key: String) -> (Quantity, Bool)? {
            for quantity in Quantity.allCases {
                if key == quantity.absoluteKey { return (quantity, false) }
                if key == quantity.perGiBKey { return (quantity, true) }
            }
            return nil
        }

        /// A decimal integer from ``IOLimits/minimumValue`` up: digits only, no sign, no spaces.
        static func number(_ value: String, key: String, volume: String) throws(StorageError) -> UInt64 {
            guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let number = UInt64(value)
            else {
                throw StorageError(
                    .invalidArgument,
                    "volume \(volume): mutable parameter \(key) is \(LVMName.quoted(value)); expected a whole number from \(IOLimits.minimumValue) to \(UInt64.max) or max"
                )
            }
            guard number >= IOLimits.minimumValue else {
                throw StorageError(
                    .invalidArgument,
                    "volume \(volume): mutable parameter \(key) is \(number); the kernel's io.max takes \(IOLimits.minimumValue) or more (or max for no limit)"
                )
            }
            return number
        }
    }

    /// These limits with `change` applied: a quantity it names takes its new limit (absolute or
    /// per GiB, replacing the other kind) or loses its limit; the others stay.
    public func applying(_ change: Change) -> IOLimits {
        var out = self
        for (quantity, limit) in change.limits { out.limits[quantity] = limit }
        return out
    }

    /// The limits of a new volume from its mutable parameters (`max` and absent both mean none).
    /// - Throws: as ``Change/init(parameters:volume:)``.
    public init(parameters: [String: String], volume: String) throws(StorageError) {
        self = IOLimits().applying(try Change(parameters: parameters, volume: volume))
    }

    /// The limit of each limited quantity for a volume of `capacityBytes`. A per-GiB limit is
    /// multiplied by the size in GiB and rounded up (`ceil(perGiB × bytes / 2^30)`), so a 1.5 GiB
    /// volume at 100 IOPS per GiB gets 150, and a 100 MiB one gets 10; at least
    /// ``minimumValue``, at most what the kernel keeps (IOPS: 4294967295).
    public func effective(capacityBytes: UInt64) -> [Quantity: UInt64] {
        var out: [Quantity: UInt64] = [:]
        for (quantity, limit) in limits {
            switch limit {
            case .absolute(let value): out[quantity] = min(value, quantity.ceiling)
            case .perGiB(let value):
                let product = value.multipliedFullWidth(by: capacityBytes)
                // (product + 2^30 - 1) / 2^30, in 128 bits.
                let (low, carry) = product.low.addingReportingOverflow((1 << 30) - 1)
                let high = product.high + (carry ? 1 : 0)
                let scaled = high >> 30 != 0 ? UInt64.max : (high << 34) | (low >> 30)
                out[quantity] = min(max(scaled, Self.minimumValue), quantity.ceiling)
            }
        }
        return out
    }

    /// The `io.max` line that sets `effective` limits for `device`; quantities without a limit
    /// are `max`, so the line also lifts limits no longer wanted: `253:4 rbps=max wbps=2097152
    /// riops=max wiops=120` (the kernel's own order).
    public static func ioMaxLine(device: DeviceNumber, _ effective: [Quantity: UInt64]) -> String {
        "\(device) " + Quantity.allCases.map { "\($0.ioMaxKey)=\(effective[$0].map { String($0) } ?? "max")" }.joined(separator: " ")
    }

    // MARK: Tags

    /// The limits as tag texts `<prefix><key>=<value>` (`csi.swift-csi.io/readIOPS=100`), sorted.
    package func tags(prefix: String) -> [String] {
        parameters.map { prefix + $0.key + "=" + $0.value }.sorted()
    }

    /// The limits recorded in `tags` (those of ``tags(prefix:)``); other tags are ignored, and so
    /// is a limit tag whose value is not a number from ``minimumValue`` up.
    package init(tags: [String], prefix: String) {
        var limits: [Quantity: Limit] = [:]
        for tag in tags where tag.hasPrefix(prefix) {
            let rest = tag.dropFirst(prefix.count)
            guard let equals = rest.firstIndex(of: "="),
                let (quantity, perGiB) = Change.quantity(forKey: String(rest[..<equals])),
                let value = UInt64(rest[rest.index(after: equals)...]), value >= Self.minimumValue
            else { continue }
            limits[quantity] = perGiB ? .perGiB(value) : .absolute(value)
        }
        self.limits = limits
    }
}
