import TestSupport
import Testing

@Suite struct OwnThreadTests {
    @Test(.ownThread) func testBodyRunsOnItsOwnThread() {
        #expect(callingThreadName() == "test-own-thread")
    }

    /// An expectation failing on the thread is recorded against this test: the known-issue
    /// matcher only sees issues of the current test.
    @Test(.ownThread) func failuresThereAreThisTestsIssues() {
        withKnownIssue("recorded from the test's own thread") {
            #expect(callingThreadName() != "test-own-thread")
        }
    }

    @Test(.ownThread, arguments: [1, 2]) func eachCaseGetsAThread(_ n: Int) async throws {
        #expect(callingThreadName() == "test-own-thread")
        try await Task.sleep(for: .milliseconds(n))
        #expect(callingThreadName() == "test-own-thread")
    }
}

@Suite(.ownThread) struct OwnThreadSuiteTests {
    @Test func aSuitesTraitReachesItsTests() {
        #expect(callingThreadName() == "test-own-thread")
    }

    @Test(arguments: [1, 2]) func andTheirCases(_ n: Int) {
        #expect(callingThreadName() == "test-own-thread")
    }
}
