/// Where the registration stands, as metrics report it.
public enum RegistrationPhase: String, Sendable, Hashable, CaseIterable {
    /// The driver has not answered GetPluginInfo yet.
    case waitingForDriver = "waiting_for_driver"
    /// The registration socket is served; the kubelet has not called NotifyRegistrationStatus on it yet.
    case pending
    /// The kubelet acknowledged the registration.
    case registered
    /// The kubelet refused the registration; the socket is made again after a back-off.
    case refused
}

/// Why the registrar made its registration socket again, so the kubelet registers the driver anew.
public enum ReregistrationReason: String, Sendable, Hashable, CaseIterable {
    /// The kubelet refused the registration (NotifyRegistrationStatus with `plugin_registered: false`).
    case refused
    /// The kubelet did not call NotifyRegistrationStatus within `--registration-ack-timeout`.
    case acknowledgementTimeout = "ack_timeout"
    /// Another process removed the registration socket.
    case removed
}

/// One thing the registrar did or was told, reported to a ``RegistrarObserver``.
public enum RegistrarEvent: Sendable, Hashable {
    /// The registration moved to `phase`.
    case phase(RegistrationPhase)
    /// The driver answered GetPluginInfo with `name`.
    case driverIdentified(name: String)
    /// The kubelet called GetInfo (the registrar's own health check is not counted).
    case kubeletGetInfo
    /// The kubelet called NotifyRegistrationStatus with this verdict.
    case kubeletNotified(registered: Bool)
    /// The registration socket was made again.
    case reregistration(ReregistrationReason)
    /// A call to the driver finished: its full method name (`/csi.v1.Identity/Probe`), the gRPC status
    /// code (0 for OK) and how long it took.
    case driverCall(method: String, code: Int, duration: Duration)
}

/// Receives the registrar's events, for metrics. Called on the registrar's threads (the event
/// loop among them): it must return quickly and never block.
public protocol RegistrarObserver: Sendable {
    /// Records one event.
    func record(_ event: RegistrarEvent)
}
