internal import Glibc

/// The symbolic link `<linkDirectory>/<driverName>-reg.sock` -> the registrar's socket in a custom directory.
///
/// With custom directories the kubelet never sees the registration socket; this link puts it in the
/// kubelet's registry. The link is replaced when it dangles (a registrar that crashed left it), refused when
/// the path holds anything else, and removed on exit only when it is still the registrar's own.
package struct RegistryLink: Sendable, Hashable {
    /// Where the link lives, for example `/var/lib/kubelet/plugins_registry/lvm.csi.swift-csi.io-reg.sock`.
    package let path: String
    /// What the link points to: the registrar's socket.
    package let target: String

    /// What ``place()`` found and did.
    package enum Placement: Sendable, Hashable {
        /// The link was created.
        case created
        /// The link was already there and pointed to ``target``.
        case alreadyPresent
        /// A dangling link to another path was replaced; its old target.
        case replacedDangling(String)
    }

    /// A link in `directory` named after `target`'s file name.
    package init(directory: String, target: String) {
        let absoluteTarget = PathInspection.absolute(target)
        self.path = PathInspection.absolute(directory) + "/" + PathInspection.baseName(of: absoluteTarget)
        self.target = absoluteTarget
    }

    /// Creates the link, or checks that it is already in place.
    ///
    /// - Throws: ``RegistrarError/Code-swift.struct/pathConflict`` when the path holds a socket, a file, a
    ///   directory or a link to another existing file: someone else's registration the link must not replace.
    @discardableResult
    package func place() throws(RegistrarError) -> Placement {
        let directory = PathInspection.directoryName(of: path)
        switch PathInspection.resolvedKind(of: directory) {
        case .directory: break
        case .missing:
            throw RegistrarError(
                code: .pathConflict,
                message: "cannot link \(path) -> \(target): the kubelet registry directory \(directory) does not exist (expected the kubelet's plugins_registry)")
        case let other:
            throw RegistrarError(
                code: .pathConflict, message: "cannot link \(path) -> \(target): expected a directory at \(directory), found \(other)")
        }
        switch PathInspection.kind(of: path) {
        case .missing:
            try create(replacing: false)
            return .created
        case .symlink(let existing):
            if existing == target { return .alreadyPresent }
            let resolved = existing.hasPrefix("/") ? existing : directory + "/" + existing
            if case .missing = PathInspection.resolvedKind(of: resolved) {
                try create(replacing: true)
                return .replacedDangling(existing)
            }
            throw RegistrarError(
                code: .pathConflict,
                message: "refusing to replace \(path): it is a link to \(existing), which exists and is not this registrar's socket \(target); remove it if that registration is stale")
        case let other:
            throw RegistrarError(
                code: .pathConflict,
                message: "refusing to replace \(path): expected nothing or a link to \(target), found \(other) (another registrar may register this driver directly in \(directory))")
        }
    }

    /// Whether the link is in place and points to ``target``.
    package var isPlaced: Bool { PathInspection.kind(of: path) == .symlink(target: target) }

    /// Removes the link if it is still this registrar's own; returns whether it removed it.
    @discardableResult
    package func remove() -> Bool {
        guard isPlaced else { return false }
        return unlink(path) == 0
    }

    /// Creates the link in one step (a dangling one is unlinked first). No temporary name: the kubelet's
    /// watcher stats every new entry, a hidden one included, and would log an error for a temporary
    /// link that is already gone.
    private func create(replacing: Bool) throws(RegistrarError) {
        if replacing && unlink(path) != 0 && errno != ENOENT { throw PathInspection.systemError("unlink", path) }
        guard symlink(target, path) == 0 else { throw PathInspection.systemError("symlink", "\(path) -> \(target)") }
    }
}
