public import Platform
internal import H2
internal import RPCCore
internal import Glibc
internal import Synchronization

/// The whole registrar: waits for the driver, serves the registration socket, keeps it registered,
/// answers `/healthz`, and on cancellation removes its socket and link so the kubelet deregisters the driver.
public final class Registrar: Sendable {
    /// The validated configuration.
    public let configuration: RegistrarConfiguration
    let logger: Logger
    /// How often the supervision loop looks when nothing wakes it.
    let tick: Duration = .milliseconds(250)

    private struct Live {
        var state: RegistrationState?
        var socketPath: String?
        var socketIdentity: FileIdentity?
        var endpoint: RegistrationEndpoint?
        var link: RegistryLink?
        var health: HealthServer?
        var pendingActions: [RegistrationState.Action] = []
        var conflict: String?
        var linkProblem: String?
    }
    private let live = Mutex(Live())

    /// Where the running kubelet is looked for.
    let kubeletDiscovery: KubeletDiscovery
    /// Told what happens, for metrics.
    let observer: (any RegistrarObserver)?
    /// The text served at `/metrics` beside `/healthz`; nil: no `/metrics`.
    let metricsExposition: (@Sendable () -> String)?

    /// Creates a registrar; nothing happens until ``run()``.
    /// - Parameters:
    ///   - observer: told each ``RegistrarEvent``, for metrics.
    ///   - metricsExposition: the Prometheus text served at `/metrics` on the health endpoint
    ///     (`--http-endpoint`); nil: `/metrics` is not served.
    public convenience init(
        configuration: RegistrarConfiguration, logger: Logger, observer: (any RegistrarObserver)? = nil,
        metricsExposition: (@Sendable () -> String)? = nil
    ) {
        self.init(
            configuration: configuration, logger: logger, kubeletDiscovery: KubeletDiscovery(), observer: observer,
            metricsExposition: metricsExposition)
    }

    /// Creates a registrar that looks for the kubelet with `kubeletDiscovery`.
    package init(
        configuration: RegistrarConfiguration, logger: Logger, kubeletDiscovery: KubeletDiscovery,
        observer: (any RegistrarObserver)? = nil, metricsExposition: (@Sendable () -> String)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        self.kubeletDiscovery = kubeletDiscovery
        self.observer = observer
        self.metricsExposition = metricsExposition
    }

    /// Runs until SIGTERM or SIGINT, then cleans up and returns.
    /// - Throws: what ``run()`` throws before a signal arrives.
    public func runUntilSignal() async throws {
        // Handlers first: a SIGTERM that arrives once the registrar has started (and said so in its log)
        // must neither kill it outright nor be lost.
        let termination = try TerminationSignals()
        try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask {
                try await self.run()
                return nil
            }
            group.addTask { await termination.wait() }
            let first = try await group.next()!
            if let signal = first {
                logger.info("received \(signal), removing the registration socket and exiting")
            }
            group.cancelAll()
            while let _ = try await group.next() {}
        }
    }

    /// Registers the driver and supervises the registration until the task is cancelled.
    ///
    /// - Throws: ``RegistrarError`` when the driver never answers within `--connection-timeout`, answers
    ///   with an empty name, or the registration socket's path is taken by something else.
    public func run() async throws {
        do {
            try await register()
            try await supervise()
        } catch is CancellationError {
            await cleanUp()
        } catch {
            await cleanUp()
            throw error
        }
    }

    // MARK: - Start

    private func register() async throws {
        observer?.record(.phase(.waitingForDriver))
        if let endpoint = configuration.healthEndpoint {
            let health = try HealthServer(endpoint: endpoint, metrics: metricsExposition) { await self.health() }
            live.withLock { $0.health = health }
            logger.info("health check served at http://\(endpoint)/healthz (port \(health.port))"
                + (metricsExposition == nil ? "" : ", metrics at /metrics"))
        }
        let driver = DriverClient(socketPath: configuration.driverSocket, timeout: configuration.callTimeout, observer: observer)
        logger.info("Attempting to open a gRPC connection with: \(configuration.driverSocket)")
        let info = try await DriverWatcher(socketPath: configuration.driverSocket, logger: logger)
            .waitForDriver(timeout: configuration.connectionTimeout) { try await self.fetchName(driver) }
        logger.info("CSI driver name: \"\(info.name)\"")
        observer?.record(.driverIdentified(name: info.name))

        let socketPath = configuration.registrationSocket(for: info.name)
        let state = RegistrationState(announcement: PluginAnnouncement(
            type: RegistrarConfiguration.pluginType, name: info.name,
            endpoint: configuration.kubeletRegistrationPath,
            supportedVersions: RegistrarConfiguration.supportedVersions))
        live.withLock {
            $0.state = state
            $0.socketPath = socketPath
        }
        try PathInspection.makeDirectories(configuration.registrationDirectory)
        // A link of ours that dangles now (our socket is gone) was left by a registrar that did not exit
        // cleanly; say so when it is replaced below.
        var leftOver: String?
        if let directory = configuration.registryLinkDirectory {
            let link = RegistryLink(directory: directory, target: socketPath)
            if link.isPlaced {
                switch PathInspection.resolvedKind(of: socketPath) {
                case .missing: leftOver = "dangling"
                case .socket where !PathInspection.socketAnswers(socketPath): leftOver = "stale"
                default: break
                }
            }
        }
        try await openSocket(socketPath, state: state)

        if let directory = configuration.registryLinkDirectory {
            let link = RegistryLink(directory: directory, target: socketPath)
            live.withLock { $0.link = link }
            let problem: RegistrarError?
            do {
                try placeLink(link, fresh: true)
                problem = nil
            } catch {
                problem = error
            }
            if let problem {
                // The kubelet makes its registry when it starts; wait for it rather than exit.
                guard case .missing = PathInspection.resolvedKind(of: directory) else { throw problem }
                logger.warning("\(problem); placing the link once the directory exists")
                live.withLock { $0.linkProblem = problem.message }
            }
            if let leftOver {
                logger.warning("replaced \(leftOver) link \(link.path) -> \(link.target) (left by a registrar that did not exit cleanly)")
            }
        }
        checkKubelet()
    }

    /// Compares the registry this registrar serves or links into, and the endpoint it announces, with
    /// what the running kubelet watches and can dial; logs a warning for each mismatch.
    /// - Returns: the warnings logged.
    @discardableResult
    func checkKubelet() -> [String] {
        let linked = configuration.registryLinkDirectory != nil
        let directory = configuration.registryLinkDirectory ?? configuration.registrationDirectory
        let flag = linked ? "--kubelet-registry-link-dir" : "--plugin-registration-path"
        let kubelets = kubeletDiscovery.runningKubelets()
        guard !kubelets.isEmpty else {
            logger.info("no running kubelet found in \(kubeletDiscovery.procDirectory); cannot check that it watches \(directory)")
            return []
        }
        var problems: [String] = []
        let registry = kubelets.map { ($0, KubeletReach.registryProblem(directory: directory, kubelet: $0)) }
        if let watching = registry.first(where: { $0.1 == nil })?.0 {
            logger.info("the running kubelet (\(watching.summary)) watches \(directory), where this registrar \(linked ? "links" : "serves") the registration socket")
        } else {
            for case (let kubelet, let problem?) in registry {
                problems.append(
                    "\(problem): it will never see the registration socket this registrar \(linked ? "links into" : "serves in") \(directory) (\(flag)); expected \(flag)=\(kubelet.registryDirectory)")
            }
        }
        let endpoint = configuration.kubeletRegistrationPath
        let reach = kubelets.map { KubeletReach.endpointProblem(endpoint: endpoint, kubelet: $0) }
        if !reach.contains(where: { $0 == nil }) {
            for case let problem? in reach {
                problems.append("--kubelet-registration-path \(endpoint) is not reachable by the kubelet: \(problem)")
            }
        }
        for problem in problems { logger.warning(problem) }
        return problems
    }

    private func fetchName(_ driver: DriverClient) async throws -> DriverPluginInfo {
        let info = try await driver.pluginInfo()
        guard !info.name.isEmpty else {
            throw RegistrarError(
                code: .driverMismatch,
                message: "driver at \(configuration.driverSocket) answered GetPluginInfo with an empty name; expected its CSI driver name")
        }
        return info
    }

    /// Makes the path free (a stale socket is removed, a live one or a non-socket is an error) and serves.
    private func openSocket(_ socketPath: String, state: RegistrationState) async throws {
        switch PathInspection.kind(of: socketPath) {
        case .missing: break
        case .socket:
            if PathInspection.socketAnswers(socketPath) {
                throw RegistrarError(
                    code: .pathConflict,
                    message: "registration socket \(socketPath) is served by another process (another registrar for the same driver?); expected nothing there or a stale socket")
            }
            logger.info("removing stale registration socket \(socketPath) (nothing answers on it)")
            try PathInspection.remove(socketPath)
        case let other:
            throw RegistrarError(
                code: .pathConflict,
                message: "cannot create registration socket \(socketPath): expected nothing or a stale socket there, found \(other)")
        }
        let endpoint = try await RegistrationEndpoint.start(socketPath: socketPath, state: state, logger: logger, observer: observer) {
            [weak self] action in
            self?.live.withLock { $0.pendingActions.append(action) }
        }
        guard chmod(socketPath, 0o600) == 0 else {
            await endpoint.stop()
            throw PathInspection.systemError("chmod 0600", socketPath)
        }
        let identity = PathInspection.identity(of: socketPath)
        live.withLock {
            $0.endpoint = endpoint
            $0.socketIdentity = identity
            $0.conflict = nil
        }
        state.socketRecreated()
        observer?.record(.phase(.pending))
        logger.info("Registration Server started at: \(socketPath)")
    }

    /// Places the link; one already in place is made again, so the kubelet's watcher sees a new entry
    /// for the new socket (it does not look behind a link that did not change).
    private func placeLink(_ link: RegistryLink, fresh: Bool = false) throws(RegistrarError) {
        if fresh && link.isPlaced { _ = link.remove() }
        switch try link.place() {
        case .created: logger.info("linked \(link.path) -> \(link.target) for the kubelet's plugin watcher")
        case .alreadyPresent: logger.info("link \(link.path) -> \(link.target) already in place")
        case .replacedDangling(let old):
            logger.warning("replaced dangling link \(link.path) -> \(old) (left by a registrar that did not exit cleanly) with -> \(link.target)")
        }
    }

    // MARK: - Supervision

    private func supervise() async throws {
        guard let (state, socketPath) = live.withLock({ l in l.state.map { ($0, l.socketPath!) } }) else { return }
        let clock = ContinuousClock()
        var socketSince = clock.now
        var driverIdentity = PathInspection.identity(of: configuration.driverSocket)
        // A restarted driver's socket whose GetPluginInfo has not answered yet: asked again every tick.
        var unansweredIdentity: FileIdentity?
        let driver = DriverClient(socketPath: configuration.driverSocket, timeout: configuration.callTimeout, observer: observer)
        // Recreations because the kubelet refused: 0.5 s doubling to 30 s, so a kubelet that keeps
        // refusing is not hammered; reset once it registers the driver.
        var refusals = 0
        var refusedRetryAt: ContinuousClock.Instant?
        var refusedReason = ""
        while true {
            try Task.checkCancellation()
            let watch = try? DirectoryWatch(directory: configuration.registrationDirectory)
            defer { watch?.close() }

            // 1. The kubelet said no: recreate so it tries again.
            let actions = live.withLock { l in defer { l.pendingActions = [] }; return l.pendingActions }
            var recreateReason: String?
            var reregistration = ReregistrationReason.refused
            for case .recreateSocket(let reason) in actions {
                refusals += 1
                let delay = Duration.milliseconds(min(30_000, 500 << min(refusals - 1, 6)))
                refusedRetryAt = clock.now + delay
                refusedReason = reason
                logger.warning("the kubelet reported the registration of \"\(state.announcement.name)\" failed: \(reason); recreating \(socketPath) in \(DriverWatcher.seconds(delay))")
            }
            if state.acknowledgement == .registered {
                // The kubelet retried on its own and succeeded: no recreation is due.
                refusals = 0
                refusedRetryAt = nil
            }
            if let at = refusedRetryAt, clock.now >= at {
                refusedRetryAt = nil
                recreateReason = "the kubelet refused the registration (\(refusedReason))"
            }
            // 2. No word from the kubelet in time.
            if recreateReason == nil, refusedRetryAt == nil, state.acknowledgement == .pending,
                live.withLock({ $0.linkProblem == nil }),
                clock.now - socketSince >= configuration.registrationAckTimeout
            {
                reregistration = .acknowledgementTimeout
                recreateReason = "the kubelet has not called NotifyRegistrationStatus within \(DriverWatcher.seconds(configuration.registrationAckTimeout)) (--registration-ack-timeout); is \(configuration.registryLinkDirectory ?? configuration.registrationDirectory) the kubelet's plugins_registry?"
                // The likeliest cause: the kubelet watches another directory. Say so again.
                checkKubelet()
            }
            // 3. Someone removed or replaced the socket.
            let expected = live.withLock { $0.socketIdentity }
            let current = PathInspection.identity(of: socketPath)
            if recreateReason == nil, current != expected {
                if current == nil {
                    reregistration = .removed
                    recreateReason = "registration socket \(socketPath) was removed by another process"
                } else if live.withLock({ $0.conflict == nil }) {
                    let problem = "registration socket \(socketPath) was replaced by \(PathInspection.kind(of: socketPath)) not made by this registrar; leaving it alone"
                    logger.error(problem)
                    live.withLock { $0.conflict = problem }
                }
            }
            if let reason = recreateReason {
                logger.warning("\(reason); recreating \(socketPath) so the kubelet registers the driver again")
                observer?.record(.reregistration(reregistration))
                await recreate(socketPath, state: state)
                socketSince = clock.now
            }
            // 4. The link, when asked for, must stay in place.
            if let link = live.withLock({ $0.link }), !link.isPlaced {
                do {
                    try placeLink(link)
                    live.withLock { $0.linkProblem = nil }
                } catch {
                    let previous = live.withLock { l in defer { l.linkProblem = error.message }; return l.linkProblem }
                    if previous != error.message { logger.error("\(error)") }
                }
            }
            // 5. The driver restarted: make sure it is still the same driver.
            let nowDriver = PathInspection.identity(of: configuration.driverSocket)
            if nowDriver == nil, driverIdentity != nil {
                logger.warning("driver socket \(configuration.driverSocket) disappeared (driver stopped?); the registration stays, as it does in the kubelet")
                driverIdentity = nil
            } else if nowDriver != driverIdentity, nowDriver != nil, PathInspection.socketAnswers(configuration.driverSocket) {
                // The new socket counts as checked only once the driver answered: one that accepts before
                // it serves (starting, or slow on a loaded node) is asked again on the next tick.
                if await recheckDriver(driver, state: state, quiet: nowDriver == unansweredIdentity) {
                    driverIdentity = nowDriver
                    unansweredIdentity = nil
                } else {
                    unansweredIdentity = nowDriver
                }
            }

            if let watch {
                if case .cancelled = await watch.wait(timeout: tick) { try Task.checkCancellation() }
            } else {
                try await Task.sleep(for: tick)
            }
        }
    }

    /// Removes the socket (and the link, which the kubelet watches instead) and makes both again: the
    /// kubelet sees the entry go (deregistration) and come back (a new registration attempt).
    private func recreate(_ socketPath: String, state: RegistrationState) async {
        let (endpoint, identity, link) = live.withLock { l in
            defer { l.endpoint = nil }
            return (l.endpoint, l.socketIdentity, l.link)
        }
        if let link { _ = link.remove() }
        await endpoint?.stop()
        if let identity, PathInspection.identity(of: socketPath) == identity { try? PathInspection.remove(socketPath) }
        do {
            try await openSocket(socketPath, state: state)
            if let link { try placeLink(link) }
        } catch {
            logger.error("cannot recreate registration socket \(socketPath): \(error)")
            live.withLock { $0.conflict = "cannot recreate registration socket \(socketPath): \(error)" }
        }
    }

    /// Asks a restarted driver its name; false when it did not answer (the warning is logged unless `quiet`).
    private func recheckDriver(_ driver: DriverClient, state: RegistrationState, quiet: Bool) async -> Bool {
        let registered = state.announcement.name
        do {
            let info = try await driver.pluginInfo()
            if info.name == registered {
                logger.info("driver at \(configuration.driverSocket) restarted; it is still \"\(registered)\"")
                state.setDriverProblem(nil)
            } else {
                let problem = "driver at \(configuration.driverSocket) now reports the name \"\(info.name)\", but this registrar registered \"\(registered)\" with the kubelet; restart the registrar (or the right driver) so the names agree"
                logger.error(problem)
                state.setDriverProblem(problem)
            }
            return true
        } catch {
            if !quiet {
                logger.warning("driver at \(configuration.driverSocket) restarted but did not answer GetPluginInfo: \(error); asking again")
            }
            return false
        }
    }

    // MARK: - Health

    /// The `/healthz` verdict: socket present and ours, GetInfo answers the driver's name, the driver
    /// answers Probe, and the kubelet acknowledged.
    func health() async -> HealthReport {
        let (state, socketPath, identity, conflict) = live.withLock { ($0.state, $0.socketPath, $0.socketIdentity, $0.conflict) }
        guard let state, let socketPath else {
            return HealthReport(healthy: false, reason: "waiting for the driver at \(configuration.driverSocket); not registered yet")
        }
        if let conflict { return HealthReport(healthy: false, reason: conflict) }
        if let problem = live.withLock({ $0.linkProblem }) { return HealthReport(healthy: false, reason: problem) }
        guard let current = PathInspection.identity(of: socketPath) else {
            return HealthReport(healthy: false, reason: "registration socket \(socketPath) does not exist")
        }
        guard current == identity else {
            return HealthReport(healthy: false, reason: "registration socket \(socketPath) is not the one this registrar created")
        }
        let name = state.announcement.name
        do {
            let info = try await RegistrationClient(socketPath: socketPath, timeout: configuration.callTimeout).getInfo()
            guard info.name == name else {
                return HealthReport(healthy: false, reason: "registration socket \(socketPath) answered GetInfo with name \"\(info.name)\", expected \"\(name)\"")
            }
        } catch {
            return HealthReport(healthy: false, reason: "registration socket \(socketPath) did not answer GetInfo: \(error)")
        }
        if let problem = state.driverProblem { return HealthReport(healthy: false, reason: problem) }
        do {
            let ready = try await DriverClient(socketPath: configuration.driverSocket, timeout: configuration.callTimeout, observer: observer)
                .probe()
            if ready == false {
                return HealthReport(healthy: false, reason: "driver at \(configuration.driverSocket) answered Probe with ready: false")
            }
        } catch {
            return HealthReport(healthy: false, reason: "driver at \(configuration.driverSocket) did not answer Probe: \(error)")
        }
        switch state.acknowledgement {
        case .registered:
            return HealthReport(
                healthy: true,
                reason: "\"\(name)\" registered with the kubelet: \(socketPath) answers GetInfo, the driver at \(configuration.driverSocket) answers Probe")
        case .pending:
            return HealthReport(healthy: false, reason: "the kubelet has not acknowledged the registration on \(socketPath) yet (no NotifyRegistrationStatus call)")
        case .failed(let reason):
            return HealthReport(healthy: false, reason: "the kubelet reported the registration failed: \(reason)")
        }
    }

    // MARK: - Exit

    /// Removes the link and the registration socket (only if they are still this registrar's) and stops serving.
    func cleanUp() async {
        let (endpoint, socketPath, identity, link, health) = live.withLock { l in
            defer {
                l.endpoint = nil
                l.link = nil
                l.health = nil
            }
            return (l.endpoint, l.socketPath, l.socketIdentity, l.link, l.health)
        }
        health?.stop()
        if let link, link.remove() { logger.info("removed link \(link.path)") }
        if let socketPath, let identity, PathInspection.identity(of: socketPath) == identity {
            try? PathInspection.remove(socketPath)
            logger.info("removed registration socket \(socketPath); the kubelet deregisters the driver")
        }
        await endpoint?.stop()
    }
}
