import H2
import RPCCore
import Storage
import Testing

@testable import CSIDriverKit

@Suite struct ErrorMappingTests {
    /// Without details, the message is exactly the action and the backend's own message.
    @Test(arguments: [
        StorageError.Code.notFound, .alreadyExists, .insufficientCapacity, .outOfRange, .invalidName, .invalidArgument, .busy,
        .unsupported, .failed,
    ])
    func messagesNameTheActionAndTheObject(code: StorageError.Code) {
        let error = ErrorMapping.rpcError(StorageError(code, "volume pvc-1 in vg0"), while: "creating volume pvc-1")
        #expect(error.code == ErrorMapping.code(for: code))
        #expect(error.message == "creating volume pvc-1: volume pvc-1 in vg0")
    }

    @Test func volumeWithoutDeviceNodeIsAFailedPrecondition() {
        let error = ErrorMapping.deviceUnavailable(volumeID: "pvc-1", reason: "device-mapper is not available")
        #expect(error.code == .failedPrecondition)
        #expect(error.message.contains("pvc-1") && error.message.hasSuffix("device-mapper is not available"))
    }

    @Test(arguments: [
        (StorageError.Code.notFound, RPCError.Code.notFound),
        (.alreadyExists, .alreadyExists),
        (.insufficientCapacity, .resourceExhausted),
        (.outOfRange, .outOfRange),
        (.invalidName, .invalidArgument),
        (.invalidArgument, .invalidArgument),
        (.busy, .failedPrecondition),
        (.unsupported, .failedPrecondition),
        (.failed, .internalError),
    ])
    func storageCodes(code: StorageError.Code, expected: RPCError.Code) {
        let error = ErrorMapping.rpcError(
            StorageError(code, "vg0/pvc-1", command: "lvcreate", details: ["Insufficient free space"]), while: "creating")
        #expect(error.code == expected)
        #expect(error.message.contains("vg0/pvc-1"))
        #expect(error.message.contains("Insufficient free space"))
    }

    @Test func rpcErrorsPassThroughAndOthersAreInternal() {
        let aborted = RPCError(code: .aborted, message: "busy")
        #expect(ErrorMapping.rpcError(aborted, while: "x") == aborted)
        struct Odd: Error, CustomStringConvertible { var description: String { "odd thing" } }
        let other = ErrorMapping.rpcError(Odd(), while: "mounting /a")
        #expect(other.code == .internalError)
        #expect(other.message == "mounting /a: odd thing")
    }
}

@Suite struct PagingTests {
    let ids = ["d", "a", "c", "b", "e"]

    @Test func pagesCoverEverythingOnce() throws {
        var token = ""
        var seen: [String] = []
        for _ in 0..<10 {
            let page = try Rules.page(ids, id: { $0 }, maxEntries: 2, token: token)
            #expect(page.items.count <= 2)
            seen += page.items
            token = page.next
            if token.isEmpty { break }
        }
        #expect(seen == ["a", "b", "c", "d", "e"])
    }

    @Test func noLimitMeansEverything() throws {
        let page = try Rules.page(ids, id: { $0 }, maxEntries: 0, token: "")
        #expect(page.items == ["a", "b", "c", "d", "e"])
        #expect(page.next == "")
        let exact = try Rules.page(ids, id: { $0 }, maxEntries: 5, token: "")
        #expect(exact.next == "", "no token when nothing follows")
    }

    @Test func pageAfterDeletedEntryStillContinues() throws {
        let first = try Rules.page(ids, id: { $0 }, maxEntries: 2, token: "")
        let rest = try Rules.page(["a", "c", "d", "e"], id: { $0 }, maxEntries: 10, token: first.next)
        #expect(rest.items == ["c", "d", "e"])
    }

    @Test(arguments: ["invalid-token", "after:", "12", "AFTER:a"])
    func foreignTokensAreAborted(token: String) {
        let error = #expect(throws: RPCError.self) { try Rules.page(ids, id: { $0 }, maxEntries: 1, token: token) }
        #expect(error?.code == .aborted)
    }

    @Test func negativeMaxEntriesIsInvalid() {
        let error = #expect(throws: RPCError.self) { try Rules.page(ids, id: { $0 }, maxEntries: -1, token: "") }
        #expect(error?.code == .invalidArgument)
    }

    @Test(arguments: [
        ("pvc-1", true), ("csi-0123abcd", true), ("", false), ("-rf", false), ("a b", false),
        ("../etc", false), ("vg/lv", false), ("..", false), (String(repeating: "a", count: 128), false),
    ])
    func plausibleIDs(id: String, plausible: Bool) {
        #expect(Rules.isPlausibleID(id) == plausible)
    }
}
