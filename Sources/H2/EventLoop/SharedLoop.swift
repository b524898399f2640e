#if canImport(Glibc)
import Glibc
#endif
import Platform
import Synchronization

/// The process-wide event loop, started on first use: client connections run on it, and so do
/// ``DescriptorWait``, ``TerminationSignals`` and ``HTTP1Server``.
enum SharedLoop {
    private static let shared = Mutex<EventLoop?>(nil)
    static func get() throws(SystemError) -> EventLoop {
        try shared.withLock { (l: inout EventLoop?) throws(SystemError) -> EventLoop in
            if let l { return l }
            // Trimmed like a server's loops, since a server may run on it (`usesSharedEventLoop`).
            let loop = try EventLoop(name: "h2-shared", heapTrimDelay: .seconds(1))
            l = loop
            return loop
        }
    }
}

/// Runs `main` as a task on the process-wide event loop and exits the process with the status it
/// returns; the calling thread, the executable's main thread, only waits.
///
/// For an executable whose work all runs on event loops: an async main (`exit(await main())`)
/// would park the main thread in Dispatch, start Dispatch's worker threads to run nothing, and end
/// the thread through `pthread_exit`, whose unwinding maps libgcc_s and the binary's unwind tables.
/// Call it from top-level code; `main` does not inherit the main actor.
package func runMainOnSharedLoop(_ main: @escaping @Sendable () async -> Int32) -> Never {
    let loop: EventLoop
    do { loop = try SharedLoop.get() } catch {
        writeStandardError("cannot start the event loop: \(error)\n")
        exit(1)
    }
    Task(executorPreference: loop) { exit(await main()) }
    while true { pause() }
}
