import Glibc
import Testing

@testable import H2
import RPCCore

/// Waiting for a descriptor on the shared loop: readable, timed out, cancelled.
@Suite struct DescriptorWaitTests {
    /// A pipe whose ends are closed afterwards.
    static func withPipe(_ body: (_ read: Int32, _ write: Int32) async throws -> Void) async rethrows {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        try await body(fds[0], fds[1])
    }

    @Test func readableOnceSomethingArrives() async {
        await Self.withPipe { readFD, writeFD in
            let waiting = Task { await DescriptorWait.readable(readFD, timeout: .seconds(60)) }
            try? await Task.sleep(for: .milliseconds(20))
            var byte: UInt8 = 1
            #expect(write(writeFD, &byte, 1) == 1)
            #expect(await waiting.value == .readable)
            // Level-triggered: unread data is readable at once on the next wait.
            #expect(await DescriptorWait.readable(readFD, timeout: .seconds(60)) == .readable)
        }
    }

    @Test func timesOutWhenNothingArrives() async {
        await Self.withPipe { readFD, _ in
            let start = ContinuousClock.now
            #expect(await DescriptorWait.readable(readFD, timeout: .milliseconds(50)) == .timedOut)
            #expect(ContinuousClock.now - start >= .milliseconds(50))
        }
    }

    @Test func cancellationEndsTheWait() async {
        await Self.withPipe { readFD, _ in
            let waiting = Task { await DescriptorWait.readable(readFD, timeout: nil) }
            try? await Task.sleep(for: .milliseconds(20))
            waiting.cancel()
            #expect(await waiting.value == .cancelled)
            // The descriptor was given back: it can be waited for again.
            #expect(await DescriptorWait.readable(readFD, timeout: .milliseconds(10)) == .timedOut)
        }
    }
}
