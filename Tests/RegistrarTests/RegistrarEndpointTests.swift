import CSI
import Glibc
import H2
import RPCCore
import ProtoWire
import Platform
import Testing

@testable import Registrar

@Suite struct RegistrarEndpointTests {
    static let announcement = PluginAnnouncement(
        type: "CSIPlugin", name: "lvm.csi.swift-csi.io", endpoint: "/vdata/storage/plugins/lvm.csi.swift-csi.io/csi.sock",
        supportedVersions: ["1.0.0"])

    @Test func servesGetInfoAndRecordsTheKubeletsVerdict() async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/lvm.csi.swift-csi.io-reg.sock"
        let state = RegistrationState(announcement: Self.announcement)
        let actions = NSLockLike()
        nonisolated(unsafe) var seen: [RegistrationState.Action] = []
        let endpoint = try await RegistrationEndpoint.start(socketPath: path, state: state, logger: .disabled) { action in
            actions.withLock { seen.append(action) }
        }
        defer { Task { await endpoint.stop() } }

        var st = stat()
        #expect(lstat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)

        // A bound for a call that takes milliseconds, generous for a loaded machine.
        let info = try await RegistrationClient(socketPath: path, timeout: .seconds(30)).getInfo()
        #expect(info == Self.announcement)

        let channel = GRPCChannel(target: "unix://" + path)
        defer { channel.close() }
        let client = PluginRegistration.RegistrationClient(channel: channel)
        var refused = PluginRegistration.RegistrationStatus()
        refused.pluginRegistered = false
        refused.error = "plugin validation failed"
        _ = try await client.notifyRegistrationStatus(refused)
        #expect(state.acknowledgement == .failed("plugin validation failed"))
        var accepted = PluginRegistration.RegistrationStatus()
        accepted.pluginRegistered = true
        _ = try await client.notifyRegistrationStatus(accepted)
        #expect(state.acknowledgement == .registered)
        #expect(actions.withLock { seen } == [.recreateSocket(reason: "plugin validation failed"), .none])
    }

    @Test func logsTheKubeletsVerdictInWords() async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/lvm.csi.swift-csi.io-reg.sock"
        let sink = CollectingLogSink()
        let endpoint = try await RegistrationEndpoint.start(
            socketPath: path, state: RegistrationState(announcement: Self.announcement), logger: Logger(sink: sink, level: .info)
        ) { _ in }
        defer { Task { await endpoint.stop() } }
        let channel = GRPCChannel(target: "unix://" + path)
        defer { channel.close() }
        let client = PluginRegistration.RegistrationClient(channel: channel)
        var status = PluginRegistration.RegistrationStatus()
        status.pluginRegistered = true
        _ = try await client.notifyRegistrationStatus(status)
        status.pluginRegistered = false
        status.error = "plugin \"x\" failed validation"
        _ = try await client.notifyRegistrationStatus(status)
        let received = sink.messages.filter { $0.hasPrefix("Received NotifyRegistrationStatus call: ") }
        #expect(received.count == 2)
        #expect(received.first?.hasPrefix("Received NotifyRegistrationStatus call: registered=true (peer pid \(getpid()), uid ") == true)
        #expect(received.last?.hasPrefix("Received NotifyRegistrationStatus call: registered=false error=\"plugin \\\"x\\\" failed validation\" (peer pid") == true)
        #expect(!sink.messages.contains { $0.contains("RegistrationStatus(") })
    }

    @Test func describesARegistrationStatus() {
        var status = PluginRegistration.RegistrationStatus()
        #expect(RegistrationService.describe(status) == "registered=false (no error given)")
        status.pluginRegistered = true
        #expect(RegistrationService.describe(status) == "registered=true")
        status.error = "odd\nbut registered"
        #expect(RegistrationService.describe(status) == "registered=true error=\"odd\\nbut registered\"")
        status.pluginRegistered = false
        status.error = "no"
        #expect(RegistrationService.describe(status) == "registered=false error=\"no\"")
    }

    @Test func reflectionDescribesTheRegistrationService() async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/lvm.csi.swift-csi.io-reg.sock"
        let endpoint = try await RegistrationEndpoint.start(
            socketPath: path, state: RegistrationState(announcement: Self.announcement), logger: .disabled
        ) { _ in }
        defer { Task { await endpoint.stop() } }
        let channel = GRPCChannel(target: "unix://" + path)
        defer { channel.close() }
        let (requests, continuation) = AsyncStream<GRPCReflection.ServerReflectionRequest>.makeStream()
        continuation.yield(GRPCReflection.ServerReflectionRequest(messageRequest: .fileContainingSymbol("pluginregistration.Registration.GetInfo")))
        continuation.yield(GRPCReflection.ServerReflectionRequest(messageRequest: .fileContainingSymbol("csi.v1.Identity")))
        continuation.finish()
        var answers: [GRPCReflection.ServerReflectionResponse] = []
        for try await answer in channel.bidirectionalStreaming(ReflectionService.info, requests: requests, options: CallOptions(timeout: .seconds(30)))
            as AsyncThrowingStream<GRPCReflection.ServerReflectionResponse, any Error>
        {
            answers.append(answer)
        }
        #expect(answers.count == 2)
        #expect(answers.first?.fileDescriptorResponse?.fileDescriptorProto == [PluginRegistration.PluginregistrationProtoFile.descriptor.serializedBytes])
        #expect(answers.last?.errorResponse?.errorCode == 5)  // the registrar does not serve CSI
    }

    @Test func clientErrorsNameTheSocketAndMethod() async throws {
        let path = "/tmp/registrar-nothing-\(getpid())/x-reg.sock"
        await #expect {
            _ = try await RegistrationClient(socketPath: path, timeout: .milliseconds(300)).getInfo()
        } throws: { error in
            let message = "\(error)"
            return message.contains("GetInfo on \(path) failed")
        }
    }
}

@Suite struct InspectorTests {
    @Test(arguments: [
        (["1.0.0"], nil as String?), (["v1.2.0", "2.0.0"], nil), (["0.3.0", "1.0.0"], nil),
        (["2.0.0"], "none of the versions"), ([], "no supported versions"),
    ])
    func validatesVersionsLikeTheKubelet(versions: [String], problem: String?) {
        var info = RegistrarEndpointTests.announcement
        info.supportedVersions = versions
        let result = Inspector.validate(info)
        if let problem { #expect(result?.contains(problem) == true) } else { #expect(result == nil) }
    }

    @Test func refusesOtherPluginTypesAndEmptyNames() {
        var info = RegistrarEndpointTests.announcement
        info.type = "DevicePlugin"
        #expect(Inspector.validate(info)?.contains("only takes \"CSIPlugin\"") == true)
        info.type = "CSIPlugin"
        info.name = ""
        #expect(Inspector.validate(info) == "GetInfo returned an empty name")
    }

    @Test func csiNodeEntryAndAnnotationAreWhatTheKubeletWrites() {
        var entry = Inspector.Entry(fileName: "d-reg.sock", path: "/r/d-reg.sock", kind: "socket")
        entry.announcement = RegistrarEndpointTests.announcement
        entry.nodeInfo = DriverNodeInfo(nodeID: "node0", maxVolumesPerNode: 0, topologySegments: ["openebs.io/nodename": "node0"])
        #expect(entry.csiNodeDriver.map { JSON.print($0) } == #"{"name":"lvm.csi.swift-csi.io","nodeID":"node0","topologyKeys":["openebs.io/nodename"]}"#)
        let report = Inspector.Report(registryDirectory: "/r", entries: [entry])
        #expect(report.annotation == #"{"lvm.csi.swift-csi.io":"node0"}"#)
        entry.failure = "nothing answers"
        #expect(entry.csiNodeDriver == nil)
        #expect(Inspector.Report(registryDirectory: "/r", entries: [entry]).annotation == nil)
    }

    @Test func jsonEscapesControlCharactersAndQuotes() {
        let value = JSONValue.object([("a\"b", .string("line\n\u{1}\\")), ("n", .int(-3)), ("x", .array([.bool(true), .null]))])
        #expect(JSON.print(value) == #"{"a\"b":"line\n\u0001\\","n":-3,"x":[true,null]}"#)
    }

    @Test func emptyAndUnreadableRegistries() async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let report = try await Inspector(registryDirectory: scratch.path).inspect()
        #expect(report.entries.isEmpty && report.allRegister)
        #expect(report.text.contains("(empty"))
        await #expect(throws: RegistrarError.self) {
            _ = try await Inspector(registryDirectory: scratch.path + "/missing").inspect()
        }
    }
}
