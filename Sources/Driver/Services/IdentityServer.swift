public import CSI
public import RPCCore
package import Storage

/// csi.v1.Identity: who the driver is, what it can do, and whether its storage answers.
/// No call takes a volume lock: nothing here changes state.
public struct IdentityServer: IdentityService {
    let configuration: DriverConfiguration
    let backend: any VolumeBackend
    let log: RequestLog

    package init(configuration: DriverConfiguration, backend: any VolumeBackend, log: RequestLog) {
        self.configuration = configuration
        self.backend = backend
        self.log = log
    }

    public func getPluginInfo(_ request: GetPluginInfoRequest, context: ServerContext) async throws -> GetPluginInfoResponse {
        try await log.call("GetPluginInfo", request) {
            var response = GetPluginInfoResponse()
            response.name = configuration.driverName
            response.vendorVersion = DriverConfiguration.version
            response.manifest = ["backend": configuration.backend.rawValue, "mode": configuration.mode.rawValue]
            return response
        }
    }

    public func getPluginCapabilities(
        _ request: GetPluginCapabilitiesRequest, context: ServerContext
    ) async throws -> GetPluginCapabilitiesResponse {
        try await log.call("GetPluginCapabilities", request) {
            var response = GetPluginCapabilitiesResponse()
            var services: [PluginCapability.Service.TypeEnum] = [.volumeAccessibilityConstraints]
            if configuration.mode.servesController { services.insert(.controllerService, at: 0) }
            for type in services {
                var service = PluginCapability.Service()
                service.type = type
                var capability = PluginCapability()
                capability.type = .service(service)
                response.capabilities.append(capability)
            }
            var expansion = PluginCapability.VolumeExpansion()
            expansion.type = .online
            var capability = PluginCapability()
            capability.type = .volumeExpansion(expansion)
            response.capabilities.append(capability)
            return response
        }
    }

    public func probe(_ request: ProbeRequest, context: ServerContext) async throws -> ProbeResponse {
        try await log.call("Probe", request) {
            do {
                try await backend.probe()
            } catch {
                throw RPCError(
                    code: .failedPrecondition, message: "not ready: \(ErrorMapping.rpcError(error, while: "probing the storage").message)")
            }
            var response = ProbeResponse()
            response.ready = true
            return response
        }
    }
}
