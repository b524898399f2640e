import H2
import ProtoWire

func runClient(_ args: [String]) async throws {
    print("client: not available")
}
