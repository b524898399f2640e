/// A volume group or logical volume name that satisfies LVM's naming rules, checked before it can be
/// placed on a command line.
///
/// `lvm2_run` splits its command line on white space itself, so a name is the only way a caller's
/// text reaches LVM. The rules (LVM 2.03 `lvm-string.c`): 1–127 characters from `[a-zA-Z0-9+_.-]`,
/// not starting with `-`, not `.` or `..`; logical volume names additionally may not start with
/// `snapshot` or `pvmove` nor contain an internal suffix such as `_mlog` or `_tdata`.
public struct LVMName: Hashable, Sendable, CustomStringConvertible {
    /// The validated name.
    public let rawValue: String

    /// What the name is used for; logical volume names have extra reserved words.
    public enum Kind: Sendable { case volumeGroup, logicalVolume }

    /// The longest name LVM accepts (NAME_LEN 128 including the terminating zero).
    public static let maximumLength = 127

    static let reservedPrefixes = ["snapshot", "pvmove"]
    static let reservedInfixes = [
        "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_iorig", "_mimage", "_mlog", "_pmspare",
        "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig",
    ]

    /// Validates `name` for use as `kind`.
    /// - Throws: ``StorageError`` `.invalidName` saying which rule the name breaks.
    public init(_ name: String, kind: Kind = .logicalVolume) throws(StorageError) {
        let what = kind == .volumeGroup ? "volume group name" : "logical volume name"
        func fail(_ reason: String) -> StorageError {
            StorageError(.invalidName, "\(what) \(Self.quoted(name)) \(reason)")
        }
        let bytes = Array(name.utf8)
        if bytes.isEmpty { throw fail("is empty") }
        if bytes.count > Self.maximumLength {
            throw fail("is \(bytes.count) bytes long; at most \(Self.maximumLength) are allowed")
        }
        if let bad = bytes.first(where: { !Self.isNameByte($0) }) {
            throw fail("contains \(Self.describe(byte: bad)); only [a-zA-Z0-9+_.-] are allowed")
        }
        if bytes[0] == UInt8(ascii: "-") { throw fail("starts with '-'") }
        if name == "." || name == ".." { throw fail("is reserved") }
        if kind == .logicalVolume {
            for prefix in Self.reservedPrefixes where name.hasPrefix(prefix) {
                throw fail("starts with the reserved word '\(prefix)'")
            }
            for infix in Self.reservedInfixes where name.contains(infix) {
                throw fail("contains the reserved suffix '\(infix)'")
            }
        }
        self.rawValue = name
    }

    public var description: String { rawValue }

    static func isNameByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "_"),
            UInt8(ascii: "."), UInt8(ascii: "-"):
            true
        default: false
        }
    }

    static func describe(byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        let hex = String(byte, radix: 16, uppercase: true)
        return "byte 0x\(hex.count == 1 ? "0" + hex : hex)"
    }

    static func quoted(_ text: String) -> String {
        let limit = 140
        var shown = ""
        for scalar in text.unicodeScalars.prefix(limit) {
            shown +=
                scalar.isASCII && scalar.value >= 0x20 && scalar.value < 0x7F
                ? String(scalar) : scalar.escaped(asASCII: true)
        }
        return "\"" + shown + (text.unicodeScalars.count > limit ? "…" : "") + "\""
    }
}

/// An LVM tag that satisfies LVM's tag rules: 1–1024 characters from `[a-zA-Z0-9_+.-/=!:&#]`, not
/// starting with `-`.
public struct LVMTag: Hashable, Sendable, CustomStringConvertible {
    /// The validated tag.
    public let rawValue: String

    /// The longest tag LVM 2.03 accepts.
    public static let maximumLength = 1024

    /// Validates `tag`.
    /// - Throws: ``StorageError`` `.invalidName` saying which rule the tag breaks.
    public init(_ tag: String) throws(StorageError) {
        func fail(_ reason: String) -> StorageError {
            StorageError(.invalidName, "LVM tag \(LVMName.quoted(tag)) \(reason)")
        }
        let bytes = Array(tag.utf8)
        if bytes.isEmpty { throw fail("is empty") }
        if bytes.count > Self.maximumLength {
            throw fail("is \(bytes.count) bytes long; at most \(Self.maximumLength) are allowed")
        }
        if let bad = bytes.first(where: { !Self.isTagByte($0) }) {
            throw fail("contains \(LVMName.describe(byte: bad)); only [a-zA-Z0-9_+.-/=!:&#] are allowed")
        }
        if bytes[0] == UInt8(ascii: "-") { throw fail("starts with '-'") }
        self.rawValue = tag
    }

    public var description: String { rawValue }

    static func isTagByte(_ b: UInt8) -> Bool {
        if LVMName.isNameByte(b) { return true }
        switch b {
        case UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "!"), UInt8(ascii: ":"),
            UInt8(ascii: "&"), UInt8(ascii: "#"):
            return true
        default: return false
        }
    }

    /// Encodes arbitrary text into tag characters: bytes outside the tag charset, and `#` itself,
    /// become `#` followed by two upper-case hex digits. ``decode(_:)`` reverses it.
    static func encode(_ text: String) -> String {
        var out = ""
        for b in text.utf8 {
            if isTagByte(b) && b != UInt8(ascii: "#") {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                let hex = String(b, radix: 16, uppercase: true)
                out += "#" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    /// Decodes text made by ``encode(_:)``; nil when it is malformed.
    static func decode(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var it = Array(text.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "#") {
                guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(v)
                it = it.dropFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// One word of an LVM command line. Only literals written in this module and validated names, tags
/// and numbers can become one, so no caller text can add an option or a second word.
struct LVMWord: Sendable {
    let text: String
    init(_ literal: StaticString) { text = literal.description }
    init(_ name: LVMName) { text = name.rawValue }
    init(_ tag: LVMTag) { text = tag.rawValue }
    /// `vg/lv`.
    init(_ vg: LVMName, _ lv: LVMName) { text = vg.rawValue + "/" + lv.rawValue }
    /// A size in bytes, `<n>b`.
    init(bytes: UInt64) { text = String(bytes) + "b" }
    /// An unsigned number.
    init(number: UInt64) { text = String(number) }
}

/// An LVM command line assembled from ``LVMWord``s.
struct LVMCommand: Sendable, CustomStringConvertible {
    var words: [LVMWord]
    init(_ words: [LVMWord]) { self.words = words }
    var line: String { words.map(\.text).joined(separator: " ") }
    var description: String { line }
    var verb: String { words.first?.text ?? "" }
}
