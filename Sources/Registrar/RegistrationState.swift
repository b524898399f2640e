internal import Synchronization

/// What the registrar tells the kubelet in GetInfo.
public struct PluginAnnouncement: Sendable, Hashable {
    /// Always `CSIPlugin`.
    public var type: String
    /// The driver's name, from its GetPluginInfo.
    public var name: String
    /// The driver socket as the kubelet dials it (`--kubelet-registration-path`).
    public var endpoint: String
    /// The CSI versions, `["1.0.0"]`.
    public var supportedVersions: [String]
}

/// The registration's state as the kubelet and the driver have left it; shared by the gRPC handlers,
/// the supervision loop and the health check.
package final class RegistrationState: Sendable {
    /// What the last NotifyRegistrationStatus said.
    package enum Acknowledgement: Sendable, Hashable {
        /// No call since the socket was (re)created.
        case pending
        /// The kubelet registered the plugin.
        case registered
        /// The kubelet refused the plugin, with its reason.
        case failed(String)
    }

    /// What the supervision loop must do after a kubelet call.
    package enum Action: Sendable, Hashable {
        case none
        /// Remove and recreate the socket so the kubelet tries again.
        case recreateSocket(reason: String)
    }

    private struct Fields {
        var announcement: PluginAnnouncement
        var acknowledgement: Acknowledgement = .pending
        var getInfoCalls = 0
        var socketGeneration = 0
        var driverProblem: String?
    }
    private let fields: Mutex<Fields>

    /// Starts with the announcement made from the driver's name.
    package init(announcement: PluginAnnouncement) {
        fields = Mutex(Fields(announcement: announcement))
    }

    /// The GetInfo answer; counts the call.
    package func getInfo() -> PluginAnnouncement {
        fields.withLock {
            $0.getInfoCalls += 1
            return $0.announcement
        }
    }

    /// Records NotifyRegistrationStatus and says what to do next.
    package func notify(registered: Bool, error: String) -> Action {
        fields.withLock {
            if registered {
                $0.acknowledgement = .registered
                return .none
            }
            let reason = error.isEmpty ? "the kubelet reported plugin_registered: false without a reason" : error
            $0.acknowledgement = .failed(reason)
            return .recreateSocket(reason: reason)
        }
    }

    /// The kubelet's last word on the registration.
    package var acknowledgement: Acknowledgement { fields.withLock { $0.acknowledgement } }

    /// The announcement currently served.
    package var announcement: PluginAnnouncement { fields.withLock { $0.announcement } }

    /// How many GetInfo calls were answered in total.
    package var getInfoCalls: Int { fields.withLock { $0.getInfoCalls } }

    /// Forgets the acknowledgement: the socket was recreated and the kubelet must register again.
    package func socketRecreated() {
        fields.withLock {
            $0.acknowledgement = .pending
            $0.socketGeneration += 1
        }
    }

    /// Records (or clears, with nil) a problem with the driver, such as a name mismatch after a restart.
    package func setDriverProblem(_ problem: String?) { fields.withLock { $0.driverProblem = problem } }

    /// The recorded driver problem.
    package var driverProblem: String? { fields.withLock { $0.driverProblem } }
}
