import RPCCore
import CSI
import Glibc
import H2
import Synchronization
import Testing

@testable import CSIDriverKit

/// The serve-then-drain helper, stopped by a trigger of the test's instead of a signal (the
/// process-wide SIGTERM pipe belongs to whoever made it first).
@Suite struct CSIEndpointTests {
    /// An Identity service whose Probe takes `delay`.
    struct SlowIdentity: IdentityService {
        let delay: Duration
        func getPluginInfo(_ request: GetPluginInfoRequest, context: ServerContext) async throws -> GetPluginInfoResponse {
            var response = GetPluginInfoResponse()
            response.name = "slow.csi.example.com"
            return response
        }
        func getPluginCapabilities(_ request: GetPluginCapabilitiesRequest, context: ServerContext) async throws
            -> GetPluginCapabilitiesResponse
        { GetPluginCapabilitiesResponse() }
        func probe(_ request: ProbeRequest, context: ServerContext) async throws -> ProbeResponse {
            try await Task.sleep(for: delay)
            var response = ProbeResponse()
            response.ready = true
            return response
        }
    }

    /// Serves a slow Probe, starts one, stops the endpoint while it runs, and returns the Probe's
    /// outcome, whether the socket is gone, and whether a call after the stop still connects.
    static func stopDuringProbe(probe: Duration, grace: Duration) async throws -> (Result<Bool, any Error>, Bool, Bool) {
        let dir = DriverProcessTests.temporaryDirectory()
        defer { removeTree(dir) }
        let socket = dir + "/sock/csi.sock"
        var endpoint = CSIEndpoint(socketPath: socket)
        endpoint.shutdownGrace = grace
        let (stops, stop) = AsyncStream<Void>.makeStream()
        var router = GRPCRouter()
        router.register(SlowIdentity(delay: probe))
        let serving = Mutex(false)
        async let served: Void = endpoint.run(
            router: router, whenServing: { serving.withLock { $0 = true } },
            until: {
                for await _ in stops { break }
                return "the test"
            })
        var waited = 0
        while !serving.withLock({ $0 }) && waited < 500 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(serving.withLock { $0 })
        let channel = GRPCChannel(target: "unix://" + socket)
        defer { channel.close() }
        let identity = IdentityClient(channel: channel)
        #expect(try await identity.getPluginInfo(GetPluginInfoRequest()).name == "slow.csi.example.com")
        async let probed = Self.outcome { try await identity.probe(ProbeRequest()).ready ?? false }
        try await Task.sleep(for: .milliseconds(100))
        stop.yield()
        let outcome = await probed
        try await served
        var info = stat()
        let socketGone = lstat(socket, &info) != 0
        let later = GRPCChannel(target: "unix://" + socket)
        defer { later.close() }
        let connects = (try? await IdentityClient(channel: later).getPluginInfo(GetPluginInfoRequest())) != nil
        return (outcome, socketGone, connects)
    }

    static func outcome<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    /// A call in flight when the stop comes finishes within the grace period; then the socket is
    /// gone and nothing answers.
    @Test func inFlightCallsFinishWithinTheGrace() async throws {
        let (outcome, socketGone, connects) = try await Self.stopDuringProbe(probe: .milliseconds(400), grace: .seconds(5))
        #expect(try outcome.get() == true)
        #expect(socketGone)
        #expect(!connects)
    }

    /// A call that outlasts the grace period is cut off, and the endpoint still returns.
    @Test func callsPastTheGraceAreCutOff() async throws {
        let start = ContinuousClock.now
        let (outcome, socketGone, _) = try await Self.stopDuringProbe(probe: .seconds(20), grace: .milliseconds(200))
        #expect(throws: (any Error).self) { try outcome.get() }
        #expect(socketGone)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func aSocketPathThatCannotBeServedIsAStartError() async throws {
        let endpoint = CSIEndpoint(socketPath: "/proc/self/csi.sock")
        let error = await #expect(throws: DriverStartError.self) {
            try await endpoint.run(router: GRPCRouter(), whenServing: {}, until: { "never" })
        }
        #expect(error?.message.contains("/proc/self/csi.sock") == true)
    }
}
