package import Platform

/// Waits for the CSI driver's socket to exist and answer, instead of giving up after a timeout.
///
/// The socket's directory (or, while it does not exist, its nearest existing ancestor) is watched with
/// inotify, so the driver is seen the moment it creates its socket; a socket that exists but does not
/// answer yet is retried with capped exponential backoff. The wait logs the path it waits for when it
/// starts, when what it sees changes, and every ``progressInterval``.
package struct DriverWatcher: Sendable {
    /// The driver's socket path (no `unix://`).
    package let socketPath: String
    /// Where progress is logged.
    package let logger: Logger
    /// The first retry delay for a socket that exists but does not answer.
    package var initialBackoff: Duration = .milliseconds(5)
    /// The longest delay between two looks, whatever happens.
    package var maxBackoff: Duration = .milliseconds(500)
    /// How often a wait that makes no progress is logged again.
    package var progressInterval: Duration = .seconds(10)

    /// Watches `socketPath`, logging to `logger`.
    package init(socketPath: String, logger: Logger) {
        self.socketPath = PathInspection.absolute(socketPath)
        self.logger = logger
    }

    /// Waits until the socket exists, accepts connections and `probe` succeeds, and returns its result.
    ///
    /// - Parameters:
    ///   - timeout: give up after this long (`--connection-timeout`); nil waits for ever.
    ///   - probe: the call that proves the driver is ready, for example `GetPluginInfo`.
    /// - Throws: ``RegistrarError/Code-swift.struct/timeout`` naming the path and what was last seen,
    ///   `CancellationError` when the task is cancelled, or what `probe` throws as ``RegistrarError``
    ///   (a driver that answers with the wrong name is not retried).
    package func waitForDriver<T: Sendable>(
        timeout: Duration? = nil, _ probe: @Sendable () async throws -> T
    ) async throws -> T {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = timeout.map { start + $0 }
        var backoff = initialBackoff
        var lastState: String?
        var lastLog = start
        let directory = PathInspection.directoryName(of: socketPath)
        while true {
            try Task.checkCancellation()
            // Arm the watch before looking, so a socket created right after the look still wakes us.
            let watch = try? DirectoryWatch.nearestExisting(directory)
            defer { watch?.close() }
            let state: String
            let socketExists: Bool
            switch PathInspection.resolvedKind(of: socketPath) {
            case .socket:
                socketExists = true
                if PathInspection.socketAnswers(socketPath) {
                    do {
                        let result = try await probe()
                        if lastState != nil {
                            logger.info("driver socket \(socketPath) answered after \(Self.seconds(clock.now - start))")
                        }
                        return result
                    } catch let error as RegistrarError where error.code == .driverMismatch {
                        throw error
                    } catch is CancellationError {
                        throw CancellationError()
                    } catch {
                        state = "driver socket \(socketPath) accepts connections but the driver did not answer: \(error)"
                    }
                } else {
                    state = "driver socket \(socketPath) exists but nothing accepts connections on it (driver not started, or stopped)"
                }
            case .missing:
                socketExists = false
                state = "waiting for driver socket \(socketPath) (it does not exist yet"
                    + (watch.map { $0.directory == directory ? "; watching \(directory))" : "; watching \($0.directory) until \(directory) exists)" } ?? ")")
            case let other:
                socketExists = false
                state = "waiting for driver socket \(socketPath): expected a Unix socket, found \(other)"
            }
            let now = clock.now
            if state != lastState {
                if lastState == nil { logger.info(state) } else { logger.warning(state) }
                lastState = state
                lastLog = now
            } else if now - lastLog >= progressInterval {
                logger.warning("still \(state.hasPrefix("waiting") ? "" : "waiting: ")\(state), for \(Self.seconds(now - start))")
                lastLog = now
            }
            var delay = socketExists ? backoff : maxBackoff
            if let deadline {
                if now >= deadline {
                    throw RegistrarError(
                        code: .timeout,
                        message: "error connecting to CSI driver at \(socketPath): no answer within \(Self.seconds(timeout!)) (--connection-timeout); last seen: \(state)")
                }
                delay = min(delay, deadline - now)
            }
            if let watch {
                if case .cancelled = await watch.wait(timeout: delay) { try Task.checkCancellation() }
            } else {
                try await Task.sleep(for: delay)
            }
            backoff = socketExists ? min(backoff * 2, maxBackoff) : initialBackoff
        }
    }

    static func seconds(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return ms < 1000 ? "\(ms) ms" : "\(Double(ms) / 1000) s"
    }
}
