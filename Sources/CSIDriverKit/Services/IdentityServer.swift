public import CSI
import H2
public import Platform
public import RPCCore
public import Storage

/// csi.v1.Identity: who the driver is, what it can do, and whether its storage answers.
/// No call takes a volume lock: nothing here changes state.
public struct IdentityServer: IdentityService {
    let options: DriverOptions
    let backend: any VolumeBackend
    let log: RequestLog

    /// Creates the service.
    /// - Parameters:
    ///   - options: the name, version and manifest to report, and whether a controller is served.
    ///   - backend: asked by Probe; the driver is ready while `VolumeBackend.probe()` succeeds.
    ///   - logger: where each call is logged once (requests at debug level, secrets redacted).
    public init(options: DriverOptions, backend: any VolumeBackend, logger: Logger = .disabled) {
        self.init(options: options, backend: backend, log: RequestLog(logger: logger))
    }

    package init(options: DriverOptions, backend: any VolumeBackend, log: RequestLog) {
        self.options = options
        self.backend = backend
        self.log = log
    }

    package init(configuration: DriverConfiguration, backend: any VolumeBackend, log: RequestLog) {
        self.init(options: configuration.driverOptions, backend: backend, log: log)
    }

    public func getPluginInfo(_ request: GetPluginInfoRequest, context: ServerContext) async throws -> GetPluginInfoResponse {
        try await log.call("GetPluginInfo", request) {
            var response = GetPluginInfoResponse()
            response.name = options.name
            response.vendorVersion = options.version
            response.manifest = options.manifest
            return response
        }
    }

    public func getPluginCapabilities(
        _ request: GetPluginCapabilitiesRequest, context: ServerContext
    ) async throws -> GetPluginCapabilitiesResponse {
        try await log.call("GetPluginCapabilities", request) {
            var response = GetPluginCapabilitiesResponse()
            var services: [PluginCapability.Service.TypeEnum] = []
            if options.servesController { services.append(.controllerService) }
            if !options.topology.isEmpty { services.append(.volumeAccessibilityConstraints) }
            if options.servesController && options.groupSnapshots { services.append(.groupControllerService) }
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
