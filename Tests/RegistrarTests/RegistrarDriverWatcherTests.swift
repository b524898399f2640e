import Platform
import Glibc
import Testing

@testable import Registrar

@Suite struct RegistrarDriverWatcherTests {
    @Test func waitsForASocketWhoseDirectoryDoesNotExistYet() async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let socketPath = scratch.path + "/plugins/driver.example/csi.sock"
        let sink = CollectingLogSink()
        var watcher = DriverWatcher(socketPath: socketPath, logger: Logger(sink: sink, level: .debug))
        // Only inotify can wake the wait before a minute has passed: polling alone would answer after 60 s.
        watcher.maxBackoff = .seconds(60)
        let clock = ContinuousClock()
        let listenerBox = NSLockLike()
        nonisolated(unsafe) var listener: UnixListener?
        nonisolated(unsafe) var startedAt: ContinuousClock.Instant?
        // Each step waits for the watcher to report the one before: it watches the nearest existing
        // directory first, then the socket's own once that appears.
        let creator = Task {
            try await waitUntil("watch of \(scratch.path)") {
                sink.messages.contains { $0.contains("watching \(scratch.path) until \(scratch.path)/plugins/driver.example exists") }
            }
            try PathInspection.makeDirectories(scratch.path + "/plugins/driver.example")
            try await waitUntil("watch of the socket's directory") {
                sink.messages.contains { $0.contains("watching \(scratch.path)/plugins/driver.example)") }
            }
            let l = try UnixListener(path: socketPath)
            listenerBox.withLock {
                listener = l
                startedAt = clock.now
            }
        }
        let outcome: Result<String, any Error>
        do { outcome = .success(try await watcher.waitForDriver(timeout: .seconds(60)) { "driver.example" }) } catch { outcome = .failure(error) }
        let answeredAt = clock.now
        // Whatever happened, the creator is done before the scratch directory goes.
        creator.cancel()
        let created = await creator.result
        let name = try outcome.get()
        try created.get()
        defer { listenerBox.withLock { listener?.close() } }
        #expect(name == "driver.example")
        let latency = answeredAt - listenerBox.withLock { startedAt! }
        // Not a speed assertion: inotify answers in milliseconds, polling would take 60 s; the margin
        // leaves room for a loaded machine that runs no task of this process for seconds.
        #expect(latency < .seconds(30))
        #expect(sink.messages.first?.contains("waiting for driver socket \(socketPath)") == true)
    }

    @Test func retriesASocketThatDoesNotAnswerYet() async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let socketPath = scratch.path + "/csi.sock"
        let listener = try UnixListener(path: socketPath, listening: false)
        defer { listener.close() }
        let sink = CollectingLogSink()
        let watcher = DriverWatcher(socketPath: socketPath, logger: Logger(sink: sink, level: .debug))
        // Listen only once the watcher has seen the socket refuse connections, however late it looks.
        let starter = Task {
            let deadline = ContinuousClock.now + .seconds(10)
            while !sink.messages.contains(where: { $0.contains("exists but nothing accepts connections") }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            listener.listen()
        }
        try await watcher.waitForDriver(timeout: .seconds(15)) {}
        try await starter.value
        #expect(sink.messages.contains { $0.contains("exists but nothing accepts connections") })
    }

    @Test func connectionTimeoutNamesThePathAndLastState() async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let socketPath = scratch.path + "/never/csi.sock"
        let watcher = DriverWatcher(socketPath: socketPath, logger: .disabled)
        await #expect {
            try await watcher.waitForDriver(timeout: .milliseconds(200)) {}
        } throws: { error in
            guard let error = error as? RegistrarError else { return false }
            return error.code == .timeout && error.message.contains(socketPath) && error.message.contains("does not exist")
        }
    }

    @Test func aProbeFailureIsRetriedButAMismatchIsNot() async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let socketPath = scratch.path + "/csi.sock"
        let listener = try UnixListener(path: socketPath)
        defer { listener.close() }
        let watcher = DriverWatcher(socketPath: socketPath, logger: .disabled)
        let attempts = NSLockLike()
        nonisolated(unsafe) var count = 0
        // Generous bounds: the retries take milliseconds, but a loaded machine may not run this task for seconds.
        let value = try await watcher.waitForDriver(timeout: .seconds(30)) { () async throws -> Int in
            let n = attempts.withLock { count += 1; return count }
            if n < 3 { throw RegistrarError(code: .driverUnavailable, message: "not yet") }
            return n
        }
        #expect(value == 3)
        await #expect(throws: RegistrarError.self) {
            try await watcher.waitForDriver(timeout: .seconds(30)) { () async throws -> Int in
                throw RegistrarError(code: .driverMismatch, message: "wrong name")
            }
        }
    }

    @Test func cancellationEndsTheWait() async throws {
        let sink = CollectingLogSink()
        let watcher = DriverWatcher(socketPath: "/tmp/registrar-never-\(getpid())/csi.sock", logger: Logger(sink: sink, level: .debug))
        let task = Task { try await watcher.waitForDriver {} }
        // Cancelled once it is waiting, not before it starts.
        try await waitUntil("wait for the socket") { sink.messages.contains { $0.hasPrefix("waiting for driver socket") } }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }
}
