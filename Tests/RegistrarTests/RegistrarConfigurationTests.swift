import Testing

@testable import Registrar

@Suite struct RegistrarConfigurationTests {
    static func raw(_ edit: (inout RegistrarConfiguration.Raw) -> Void = { _ in }) -> RegistrarConfiguration.Raw {
        var raw = RegistrarConfiguration.Raw()
        raw.csiAddress = "unix:///csi/csi.sock"
        raw.kubeletRegistrationPath = "/var/lib/kubelet/plugins/lvm.csi.swift-csi.io/csi.sock"
        edit(&raw)
        return raw
    }

    @Test func upstreamDefaults() throws {
        let configuration = try RegistrarConfiguration(validating: Self.raw())
        #expect(configuration.driverSocket == "/csi/csi.sock")
        #expect(configuration.registrationDirectory == "/registration")
        #expect(configuration.callTimeout == .seconds(1))
        #expect(configuration.healthEndpoint == nil)
        #expect(configuration.connectionTimeout == nil)
        #expect(configuration.registrationAckTimeout == .seconds(30))
        #expect(configuration.registrationSocket(for: "lvm.csi.swift-csi.io") == "/registration/lvm.csi.swift-csi.io-reg.sock")
    }

    @Test(arguments: [
        ("1s", Duration.seconds(1)), ("500ms", .milliseconds(500)), ("1m30s", .seconds(90)), ("1.5s", .milliseconds(1500)),
        ("2h", .seconds(7200)), ("250us", .microseconds(250)), ("0", .zero),
    ])
    func goDurations(text: String, expected: Duration) throws {
        #expect(try RegistrarConfiguration.duration(text, flag: "--timeout") == expected)
    }

    @Test(arguments: ["", "1", "s", "1x", "-1s", "1s2", "ms5"])
    func badDurationsNameTheFlag(text: String) {
        #expect {
            _ = try RegistrarConfiguration.duration(text, flag: "--timeout")
        } throws: { error in
            (error as? RegistrarError)?.message.hasPrefix("--timeout \(text) is not a duration") == true
        }
    }

    @Test func healthEndpointAndDeprecatedPort() throws {
        #expect(try RegistrarConfiguration(validating: Self.raw { $0.healthPort = 9809 }).healthEndpoint == ":9809")
        #expect(try RegistrarConfiguration(validating: Self.raw { $0.healthPort = 0 }).healthEndpoint == nil)
        #expect(try RegistrarConfiguration(validating: Self.raw { $0.httpEndpoint = "127.0.0.1:9809" }).healthEndpoint == "127.0.0.1:9809")
        #expect {
            _ = try RegistrarConfiguration(validating: Self.raw { $0.httpEndpoint = ":9809"; $0.healthPort = 9810 })
        } throws: { error in
            let message = (error as? RegistrarError)?.message ?? ""
            return message.contains("--http-endpoint :9809") && message.contains("--health-port 9810")
        }
    }

    @Test func errorsNameTheirFlag() {
        let cases: [(RegistrarConfiguration.Raw, String)] = [
            (Self.raw { $0.kubeletRegistrationPath = nil }, "--kubelet-registration-path is required"),
            (Self.raw { $0.kubeletRegistrationPath = "csi.sock" }, "--kubelet-registration-path csi.sock is not absolute"),
            (Self.raw { $0.csiAddress = "" }, "--csi-address is empty"),
            (Self.raw { $0.csiAddress = "/" + String(repeating: "a", count: 120) }, "bytes long"),
            (Self.raw { $0.timeout = "0s" }, "--timeout 0s must be more than zero"),
            (Self.raw { $0.connectionTimeout = "soon" }, "--connection-timeout soon is not a duration"),
            (Self.raw { $0.registrationAckTimeout = "0" }, "--registration-ack-timeout 0 must be more than zero"),
            (Self.raw { $0.httpEndpoint = "9809" }, "health endpoint 9809 has no port"),
            (Self.raw { $0.pluginRegistrationPath = "/r/"; $0.kubeletRegistryLinkDir = "/r" }, "is the registration directory itself"),
        ]
        for (raw, expected) in cases {
            #expect {
                _ = try RegistrarConfiguration(validating: raw)
            } throws: { error in
                (error as? RegistrarError)?.message.contains(expected) == true
            }
        }
    }

    @Test func explicitConnectionTimeoutAndLinkDirectory() throws {
        let configuration = try RegistrarConfiguration(validating: Self.raw {
            $0.connectionTimeout = "30s"
            $0.pluginRegistrationPath = "/vdata/storage/plugins_registry"
            $0.kubeletRegistryLinkDir = "/var/lib/kubelet/plugins_registry"
        })
        #expect(configuration.connectionTimeout == .seconds(30))
        #expect(configuration.registryLinkDirectory == "/var/lib/kubelet/plugins_registry")
    }
}

@Suite struct RegistrationStateTests {
    @Test func acknowledgementDrivesRecreation() {
        let state = RegistrationState(
            announcement: PluginAnnouncement(type: "CSIPlugin", name: "d", endpoint: "/p/csi.sock", supportedVersions: ["1.0.0"]))
        #expect(state.acknowledgement == .pending)
        #expect(state.getInfo().name == "d")
        #expect(state.getInfoCalls == 1)
        #expect(state.notify(registered: true, error: "") == .none)
        #expect(state.acknowledgement == .registered)
        #expect(state.notify(registered: false, error: "version 0.3 not supported") == .recreateSocket(reason: "version 0.3 not supported"))
        #expect(state.acknowledgement == .failed("version 0.3 not supported"))
        state.socketRecreated()
        #expect(state.acknowledgement == .pending)
    }
}
