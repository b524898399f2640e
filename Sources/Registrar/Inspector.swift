internal import Glibc
package import Platform

/// Walks a kubelet plugin registry directory the way the kubelet's plugin watcher does and reports, for each
/// entry, what the kubelet will record (the CSINode driver entry and the node-id annotation) or why it will not.
package struct Inspector: Sendable {
    /// The directory inspected, for example `/var/lib/kubelet/plugins_registry`.
    package let registryDirectory: String
    /// The limit for each call.
    package let timeout: Duration

    /// The kubelet's annotation of driver names to node ids.
    package static let nodeIDAnnotation = "csi.volume.kubernetes.io/nodeid"

    /// Where the running kubelet is looked for.
    package let kubeletDiscovery: KubeletDiscovery

    /// Inspects `registryDirectory`, bounding each call by `timeout`; the running kubelet is looked for
    /// with `kubeletDiscovery`.
    package init(
        registryDirectory: String, timeout: Duration = RegistrarConfiguration.defaultCallTimeout,
        kubeletDiscovery: KubeletDiscovery = KubeletDiscovery()
    ) {
        self.registryDirectory = PathInspection.absolute(registryDirectory)
        self.timeout = timeout
        self.kubeletDiscovery = kubeletDiscovery
    }

    /// What one entry of the registry is and what the kubelet will do with it.
    package struct Entry: Sendable, Hashable {
        /// The file name in the registry.
        package var fileName: String
        /// The full path in the registry.
        package var path: String
        /// `socket`, `link`, `dangling-link`, `not-a-socket`.
        package var kind: String
        /// The link's target, for links.
        package var linkTarget: String?
        /// The GetInfo answer, when the socket answered.
        package var announcement: PluginAnnouncement?
        /// The endpoint's GetPluginInfo answer.
        package var pluginName: String?
        package var vendorVersion: String?
        /// The endpoint's Probe answer (nil: not asked or no answer, or the driver did not say).
        package var ready: Bool?
        /// The endpoint's NodeGetInfo answer.
        package var nodeInfo: DriverNodeInfo?
        /// Notes that do not stop registration (for example a GetPluginInfo name that differs).
        package var warnings: [String] = []
        /// Why the kubelet will not register this entry; nil when it will.
        package var failure: String?

        /// Whether the kubelet will register the plugin.
        package var registers: Bool { failure == nil }

        /// The `CSINode.spec.drivers[]` entry the kubelet writes.
        package var csiNodeDriver: JSONValue? {
            guard registers, let announcement, let nodeInfo else { return nil }
            var members: [(String, JSONValue)] = [
                ("name", .string(announcement.name)), ("nodeID", .string(nodeInfo.nodeID)),
                ("topologyKeys", .array(nodeInfo.topologySegments.keys.sorted().map { .string($0) })),
            ]
            if nodeInfo.maxVolumesPerNode > 0 {
                members.append(("allocatable", .object([("count", .int(nodeInfo.maxVolumesPerNode))])))
            }
            return .object(members)
        }
    }

    /// The whole registry.
    package struct Report: Sendable, Hashable {
        package var registryDirectory: String
        package var entries: [Entry]
        /// The kubelets running on this machine (none found: empty, and nothing is checked against them).
        package var kubelets: [KubeletProcess] = []
        /// Why no running kubelet watches ``registryDirectory``; nil when one does, or none was found.
        package var registryProblem: String?

        /// The annotation value the kubelet keeps on the Node: every registering driver's node id.
        package var annotation: String? {
            let pairs = entries.compactMap { e -> (String, JSONValue)? in
                guard e.registers, let name = e.announcement?.name, let id = e.nodeInfo?.nodeID else { return nil }
                return (name, .string(id))
            }
            return pairs.isEmpty ? nil : JSON.print(.object(pairs.sorted { $0.0 < $1.0 }))
        }

        /// Whether every entry registers, in a directory the running kubelet (if one was found) watches.
        package var allRegister: Bool { registryProblem == nil && entries.allSatisfy(\.registers) }
    }

    /// Looks at every entry of the registry (names starting with a dot are skipped, as the kubelet does).
    /// - Throws: ``RegistrarError`` when the directory cannot be read.
    package func inspect() async throws(RegistrarError) -> Report {
        var names: [String] = []
        guard let dir = opendir(registryDirectory) else {
            throw RegistrarError(
                code: .systemCall,
                message: "cannot read registry directory \(registryDirectory) (expected the kubelet's plugins_registry)",
                underlying: String(cString: strerror(errno)))
        }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }
            names.append(name)
        }
        closedir(dir)
        let kubelets = kubeletDiscovery.runningKubelets()
        var entries: [Entry] = []
        for name in names.sorted() {
            var entry = await inspectEntry(name)
            // The announced endpoint must exist where the kubelet looks, not only where this process does.
            if entry.failure == nil, let endpoint = entry.announcement?.endpoint, !kubelets.isEmpty {
                let problems = kubelets.map { KubeletReach.endpointProblem(endpoint: endpoint, kubelet: $0) }
                if !problems.contains(where: { $0 == nil }), let problem = problems.first ?? nil {
                    entry.failure = problem
                }
            }
            entries.append(entry)
        }
        var report = Report(registryDirectory: registryDirectory, entries: entries, kubelets: kubelets)
        let problems = kubelets.map { KubeletReach.registryProblem(directory: registryDirectory, kubelet: $0) }
        if !kubelets.isEmpty, !problems.contains(where: { $0 == nil }) {
            let watched = kubelets.map(\.registryDirectory).joined(separator: ", ")
            let problem = (problems.first ?? nil) ?? "no running kubelet watches \(registryDirectory)"
            report.registryProblem = "\(problem): nothing in this directory registers (inspect --registry-dir=\(watched) shows what the kubelet sees)"
            for index in report.entries.indices where report.entries[index].failure == nil {
                report.entries[index].failure = "the running kubelet does not watch \(registryDirectory)"
            }
        }
        return report
    }

    func inspectEntry(_ name: String) async -> Entry {
        let path = registryDirectory + "/" + name
        var entry = Entry(fileName: name, path: path, kind: "socket")
        switch PathInspection.kind(of: path) {
        case .symlink(let target):
            entry.linkTarget = target
            let resolved = target.hasPrefix("/") ? target : registryDirectory + "/" + target
            switch PathInspection.resolvedKind(of: resolved) {
            case .socket: entry.kind = "link"
            case .missing:
                entry.kind = "dangling-link"
                entry.failure = "dangling link: \(target) does not exist (a registrar that did not exit cleanly?); the kubelet ignores it"
                return entry
            case let other:
                entry.kind = "not-a-socket"
                entry.failure = "link to \(target), which is \(other), not a Unix socket; the kubelet ignores it"
                return entry
            }
        case .socket: break
        case .directory:
            entry.kind = "not-a-socket"
            entry.failure = "a directory, not a Unix socket; the kubelet ignores it"
            return entry
        case let other:
            entry.kind = "not-a-socket"
            entry.failure = "\(other), not a Unix socket; the kubelet ignores it"
            return entry
        }

        // What the kubelet's plugin watcher does: GetInfo, then validation.
        let announcement: PluginAnnouncement
        do {
            announcement = try await RegistrationClient(socketPath: path, timeout: timeout).getInfo()
            entry.announcement = announcement
        } catch {
            entry.failure = PathInspection.socketAnswers(path)
                ? "GetInfo on \(path) failed: \(error)"
                : "nothing answers on \(path) (a stale socket: its registrar is gone)"
            return entry
        }
        if let problem = Self.validate(announcement) {
            entry.failure = problem
            return entry
        }

        // What the kubelet's CSI plugin handler does: dial the endpoint and ask for the node's info.
        let endpoint = PathInspection.socketPath(fromAddress: announcement.endpoint)
        let driver = DriverClient(socketPath: endpoint, timeout: timeout)
        switch PathInspection.resolvedKind(of: endpoint) {
        case .socket: break
        case .missing:
            entry.failure = "the announced endpoint \(endpoint) does not exist (driver not running, or --kubelet-registration-path names the wrong path)"
            return entry
        case let other:
            entry.failure = "the announced endpoint \(endpoint) is \(other), not a Unix socket"
            return entry
        }
        do {
            let info = try await driver.pluginInfo()
            entry.pluginName = info.name
            entry.vendorVersion = info.vendorVersion
            if info.name != announcement.name {
                entry.warnings.append(
                    "the endpoint's GetPluginInfo name \"\(info.name)\" differs from the registered name \"\(announcement.name)\"")
            }
        } catch {
            entry.warnings.append("GetPluginInfo on \(endpoint) failed: \(error)")
        }
        do {
            entry.ready = try await driver.probe()
            if entry.ready == false { entry.warnings.append("the driver says it is not ready (Probe ready: false)") }
        } catch {
            entry.warnings.append("Probe on \(endpoint) failed: \(error)")
        }
        do {
            let info = try await driver.nodeInfo()
            entry.nodeInfo = info
            if info.nodeID.isEmpty {
                entry.failure = "NodeGetInfo on \(endpoint) returned an empty node_id; the kubelet rejects the driver (\"node ID is empty\")"
            }
        } catch {
            entry.failure = PathInspection.socketAnswers(endpoint)
                ? "NodeGetInfo on \(endpoint) failed: \(error); the kubelet rejects the driver"
                : "nothing answers on the announced endpoint \(endpoint) (driver stopped, or a stale socket); the kubelet cannot call NodeGetInfo"
        }
        return entry
    }

    /// The kubelet's checks on a GetInfo answer; the reason it refuses, or nil.
    static func validate(_ info: PluginAnnouncement) -> String? {
        guard info.type == RegistrarConfiguration.pluginType else {
            return "GetInfo type is \"\(info.type)\"; the kubelet's CSI handler only takes \"CSIPlugin\""
        }
        guard !info.name.isEmpty else { return "GetInfo returned an empty name" }
        guard !info.endpoint.isEmpty else { return "GetInfo returned an empty endpoint" }
        guard !info.supportedVersions.isEmpty else { return "GetInfo returned no supported versions; the kubelet needs 1.x" }
        let usable = info.supportedVersions.filter { version in
            let trimmed = version.hasPrefix("v") ? String(version.dropFirst()) : version
            return trimmed.split(separator: ".").first == "1"
        }
        guard !usable.isEmpty else {
            return "none of the versions \(info.supportedVersions) is supported; the kubelet needs a 1.x version"
        }
        return nil
    }
}

extension Inspector.Report {
    /// The report as JSON, for `inspect --output json`.
    package var json: String {
        var items: [JSONValue] = []
        for e in entries {
            var members: [(String, JSONValue)] = [
                ("file", .string(e.fileName)), ("path", .string(e.path)), ("kind", .string(e.kind)),
            ]
            if let target = e.linkTarget { members.append(("linkTarget", .string(target))) }
            if let a = e.announcement {
                members.append(("getInfo", .object([
                    ("type", .string(a.type)), ("name", .string(a.name)), ("endpoint", .string(a.endpoint)),
                    ("supportedVersions", .array(a.supportedVersions.map { .string($0) })),
                ])))
            }
            var endpoint: [(String, JSONValue)] = []
            if let name = e.pluginName { endpoint.append(("pluginName", .string(name))) }
            if let version = e.vendorVersion { endpoint.append(("vendorVersion", .string(version))) }
            if let ready = e.ready { endpoint.append(("ready", .bool(ready))) }
            if let info = e.nodeInfo {
                endpoint.append(("nodeID", .string(info.nodeID)))
                endpoint.append(("accessibleTopology", .object(info.topologySegments.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
                endpoint.append(("maxVolumesPerNode", .int(info.maxVolumesPerNode)))
            }
            if !endpoint.isEmpty { members.append(("endpoint", .object(endpoint))) }
            members.append(("registers", .bool(e.registers)))
            if let driver = e.csiNodeDriver {
                members.append(("csiNodeDriver", driver))
                if let a = e.announcement, let id = e.nodeInfo?.nodeID {
                    members.append(("annotation", .object([(Inspector.nodeIDAnnotation, .object([(a.name, .string(id))]))])))
                }
            }
            if let failure = e.failure { members.append(("reason", .string(failure))) }
            if !e.warnings.isEmpty { members.append(("warnings", .array(e.warnings.map { .string($0) }))) }
            items.append(.object(members))
        }
        var root: [(String, JSONValue)] = [("registryDirectory", .string(registryDirectory))]
        root.append(("kubelets", .array(kubelets.map { k in
            var members: [(String, JSONValue)] = [
                ("pid", .int(k.pid)), ("rootDir", .string(k.rootDirectory)), ("rootDirSource", .string(k.source.description)),
                ("registryDirectory", .string(k.registryDirectory)),
            ]
            if let problem = k.configProblem { members.append(("configProblem", .string(problem))) }
            return .object(members)
        })))
        root.append(("watchedByKubelet", kubelets.isEmpty ? .null : .bool(registryProblem == nil)))
        if let registryProblem { root.append(("verdict", .string(registryProblem))) }
        root.append(("entries", .array(items)))
        root.append(("annotation", annotation.map { .object([(Inspector.nodeIDAnnotation, .string($0))]) } ?? .null))
        return JSON.print(.object(root), pretty: true)
    }

    /// The report as text for an operator.
    package var text: String {
        var out = "Registry \(registryDirectory): \(entries.count) \(entries.count == 1 ? "entry" : "entries")\n"
        if kubelets.isEmpty {
            out += "  kubelet:         no running kubelet found; not checked that one watches this directory\n"
        }
        for k in kubelets {
            out += "  kubelet:         \(k.summary): watches \(k.registryDirectory)\n"
        }
        if let registryProblem {
            out += "  verdict:         NOT watched by the kubelet: \(registryProblem)\n"
        }
        if entries.isEmpty {
            out += "  (empty: the kubelet has no plugin to register here)\n"
        }
        for e in entries {
            out += "\n\(e.fileName)"
            switch e.kind {
            case "link": out += " -> \(e.linkTarget ?? "?") (link)"
            case "dangling-link": out += " -> \(e.linkTarget ?? "?") (DANGLING link)"
            case "not-a-socket": out += " (NOT a socket)"
            default: out += " (socket)"
            }
            out += "\n"
            if let a = e.announcement {
                out += "  GetInfo:         type \(a.type), name \(a.name), endpoint \(a.endpoint), versions \(a.supportedVersions.joined(separator: ","))\n"
            }
            if e.pluginName != nil || e.nodeInfo != nil || e.ready != nil {
                var parts: [String] = []
                if let name = e.pluginName { parts.append("GetPluginInfo \(name) \(e.vendorVersion ?? "")".trimmingSuffixSpace) }
                if let ready = e.ready { parts.append("Probe \(ready ? "ready" : "NOT ready")") }
                if let info = e.nodeInfo {
                    let topology = info.topologySegments.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                    parts.append("NodeGetInfo node_id \(info.nodeID)" + (topology.isEmpty ? "" : ", topology \(topology)")
                        + (info.maxVolumesPerNode > 0 ? ", max volumes \(info.maxVolumesPerNode)" : ""))
                }
                out += "  endpoint answers: \(parts.joined(separator: "; "))\n"
            }
            for warning in e.warnings { out += "  warning:         \(warning)\n" }
            if let driver = e.csiNodeDriver, let a = e.announcement, let id = e.nodeInfo?.nodeID {
                out += "  kubelet writes:\n"
                out += "    CSINode spec.drivers[]: \(JSON.print(driver))\n"
                out += "    Node annotation \(Inspector.nodeIDAnnotation): \(JSON.print(.object([(a.name, .string(id))])))\n"
                out += "  verdict:         registers\n"
            } else {
                out += "  verdict:         will NOT register: \(e.failure ?? "unknown")\n"
            }
        }
        if let annotation {
            out += "\nNode annotation \(Inspector.nodeIDAnnotation): '\(annotation)'\n"
        }
        return out
    }
}

extension String {
    fileprivate var trimmingSuffixSpace: String {
        var s = self
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }
}
