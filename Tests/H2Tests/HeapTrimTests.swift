import Synchronization
import TestSupport
import Testing

@testable import H2
import RPCCore

/// The event loop's idle heap trim: once per quiet spell after activity, never while idle.
@Suite struct HeapTrimTests {
    @Test func aQuietLoopTrimsOnceAfterActivityAndNotAgainUntilMoreActivity() async throws {
        let loop = try EventLoop(name: "h2-trim-test", heapTrimDelay: .milliseconds(20))
        defer {
            loop.stop()
            loop.join()
        }
        // Something runs on the loop; once it has been quiet for the delay, it trims.
        loop.execute {}
        #expect(await eventually { loop.heapTrimCount.load(ordering: .relaxed) == 1 })

        // Idle from here on: several trim delays pass without another trim.
        for _ in 0..<10 {
            try? await Task.sleep(for: .milliseconds(20))
            #expect(loop.heapTrimCount.load(ordering: .relaxed) == 1)
        }

        loop.execute {}
        #expect(await eventually { loop.heapTrimCount.load(ordering: .relaxed) == 2 })
    }

    @Test func withoutADelayTheLoopNeverTrims() async throws {
        let loop = try EventLoop(name: "h2-notrim-test")
        defer {
            loop.stop()
            loop.join()
        }
        let ran = Atomic<Bool>(false)
        loop.execute { ran.store(true, ordering: .relaxed) }
        #expect(await eventually { ran.load(ordering: .relaxed) })
        try? await Task.sleep(for: .milliseconds(100))
        #expect(loop.heapTrimCount.load(ordering: .relaxed) == 0)
    }

    @Test func serversTrimAfterOneSecondByDefault() {
        #expect(GRPCServerConfiguration(address: "/tmp/x.sock").heapTrimDelay == .seconds(1))
    }
}
