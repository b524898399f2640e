import RPCCore
import Testing

/// A request's header fields as a gRPC client sends them.
private let grpcHeaders: [(String, String)] = [
    (":method", "POST"), (":path", "/pkg.Svc/Method"), ("content-type", "application/grpc"), ("te", "trailers"),
]

/// A call whose headers are complete, before routing.
private func received(
    _ headers: [(String, String)] = grpcHeaders, endStream: Bool = false, maxMessageSize: Int = 1024
) -> ServerStreamStateMachine {
    var m = ServerStreamStateMachine(maxMessageSize: maxMessageSize, maxHeaderListSize: 16 * 1024)
    for (name, value) in headers {
        let accepted = m.receiveHeader(name, value)
        #expect(accepted)
    }
    let r1 = m.receiveHeadersEnd(endStream: endStream)
    #expect(r1 == .route(compression: nil))
    return m
}

/// A call routed to a handler.
private func routed(streaming: Bool, maxMessageSize: Int = 1024) -> ServerStreamStateMachine {
    var m = received(maxMessageSize: maxMessageSize)
    let r2 = m.nextStep()
    #expect(r2 == .route)
    let r3 = m.validate()
    #expect(r3 == .accept(path: "/pkg.Svc/Method", timeout: nil))
    m.handlerStarts(streaming: streaming)
    return m
}

/// Feeds `bytes` as DATA chunks of `chunk` bytes; returns the outcomes.
@discardableResult
private func feed(
    _ m: inout ServerStreamStateMachine, _ bytes: [UInt8], chunk: Int = 1 << 30, deliver: ([UInt8]) -> Bool = { _ in false }
) -> [ServerStreamStateMachine.DataOutcome] {
    var outcomes: [ServerStreamStateMachine.DataOutcome] = []
    var i = 0
    while i < bytes.count {
        let end = min(bytes.count, i + chunk)
        Array(bytes[i..<end]).withUnsafeBytes { outcomes.append(m.receiveData($0, deliver: deliver)) }
        i = end
    }
    return outcomes
}

private func failure(_ step: ServerStreamStateMachine.Step) -> RPCError? {
    if case .fail(let e) = step { return e }
    return nil
}

@Suite struct ServerStreamStateMachineTests {
    @Test func unaryCallFromHeadersToTrailers() {
        var m = routed(streaming: false)
        #expect(m.phase == .awaitingUnaryRequest)
        let r4 = feed(&m, GRPCFraming.frame([1, 2, 3]))
        #expect(r4 == [.processed(ready: false, failure: nil)])
        let r5 = m.acknowledge(received: 8)
        #expect(r5 == 8)  // unary: acknowledged at once
        let r6 = m.nextStep()
        #expect(r6 == .none)  // the request has not ended
        let r7 = m.receiveEnd()
        #expect(r7)
        let r8 = m.nextStep()
        #expect(r8 == .startUnary([1, 2, 3]))
        #expect(m.phase == .running && m.bufferedBytes == 0)
        let r9 = m.nextStep()
        #expect(r9 == .none)  // started once
        let finish = m.finish(status: nil, messagesQueued: true)
        #expect(finish.cleanUp && finish.response == .submitHeaders)
        #expect(m.isDone)
        let r10 = m.read(copied: 13, queueEmpty: false)
        #expect(r10 == .send)
        let r11 = m.read(copied: 0, queueEmpty: true)
        #expect(r11 == .sendTrailers(RPCError(code: .ok, message: "")))
        let r12 = m.streamClosed(errorCode: 0)
        #expect(r12 == .init(abort: nil, consume: 0))
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7])
    func messageSplitAcrossFrames(chunk: Int) {
        var m = routed(streaming: false)
        let payload = Array(0..<40).map { UInt8($0) }
        for outcome in feed(&m, GRPCFraming.frame(payload), chunk: chunk) {
            #expect(outcome == .processed(ready: false, failure: nil))
        }
        let r13 = m.receiveEnd()
        #expect(r13)
        let r14 = m.nextStep()
        #expect(r14 == .startUnary(payload))
    }

    @Test func requestEndingInsideAMessageIsInternal() {
        var m = routed(streaming: false)
        feed(&m, Array(GRPCFraming.frame([1, 2, 3, 4]).prefix(7)))
        #expect(m.hasPartialMessage)
        let r15 = m.receiveEnd()
        #expect(r15)
        let error = failure(m.nextStep())
        #expect(error?.code == .internalError)
        #expect(error?.message == "the request ended inside a message")
    }

    @Test func oversizedMessageIsResourceExhausted() {
        var m = routed(streaming: false, maxMessageSize: 4)
        let outcome = feed(&m, GRPCFraming.frame([1, 2, 3, 4, 5]))
        guard case .processed(_, let error?) = outcome.first else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(error.code == .resourceExhausted)
        #expect(error.message == "message of 5 bytes exceeds the limit of 4 bytes")
    }

    @Test func secondUnaryMessageIsInternal() {
        var m = routed(streaming: false)
        let r16 = feed(&m, GRPCFraming.frame([1]) + GRPCFraming.frame([2]))
        #expect(r16 == [.processed(ready: true, failure: nil)])
        let error = failure(m.nextStep())
        #expect(error?.code == .internalError)
        #expect(error?.message == "/pkg.Svc/Method is unary but the client sent more than one request message")
    }

    @Test func unaryWithoutMessageIsInternal() {
        var m = routed(streaming: false)
        let r17 = m.receiveEnd()
        #expect(r17)
        let error = failure(m.nextStep())
        #expect(error?.code == .internalError)
        #expect(error?.message == "/pkg.Svc/Method is unary but the client sent no request message")
    }

    @Test func badContentTypeIsHTTP415WithInternalStatus() {
        var headers = grpcHeaders
        headers[2] = ("content-type", "application/json")
        var m = received(headers)
        let r18 = m.validate()
        #expect(r18 == .httpError(status: 415, message: "content-type application/json is not application/grpc"))
        #expect(m.isDone && m.response == .headersOnly)
        let fields = ServerStreamStateMachine.httpErrorHeaders(status: 415, message: "content-type application/json is not application/grpc")
        #expect(fields.map(\.0) == [":status", "grpc-status", "grpc-message"])
        #expect(fields.map(\.1) == ["415", "13", "content-type application/json is not application/grpc"])
        #expect(ServerStreamStateMachine.httpErrorHeaders(status: 405, message: "x")[1].1 == "12")
        // Nothing more is looked at.
        let r19 = feed(&m, GRPCFraming.frame([1]))
        #expect(r19 == [.ignored])
        let r20 = m.receiveEnd()
        #expect(!r20)
        let r21 = m.nextStep()
        #expect(r21 == .none)
        let r22 = m.finish(status: nil, messagesQueued: false)
        #expect(r22 == .init())
    }

    @Test(arguments: ["1s", "S", "123456789S", "-1S"])
    func badTimeoutIsInternal(value: String) {
        var m = received(grpcHeaders + [("grpc-timeout", value)])
        let r23 = m.validate()
        #expect(r23 == .grpcError(RPCError(code: .internalError, message: "malformed grpc-timeout \(value)")))
        #expect(!m.isDone)  // the transport answers with finish(status:)
        let finish = m.finish(status: RPCError(code: .internalError, message: "malformed grpc-timeout \(value)"), messagesQueued: false)
        #expect(finish.response == .trailersOnly(RPCError(code: .internalError, message: "malformed grpc-timeout \(value)")))
    }

    @Test func timeoutAndMetadataReachTheHandler() {
        var m = received(grpcHeaders + [("grpc-timeout", "250m"), ("x-trace", "abc"), ("grpc-encoding", "identity")])
        let r24 = m.validate()
        #expect(r24 == .accept(path: "/pkg.Svc/Method", timeout: .milliseconds(250)))
        let metadata = m.takeMetadata()
        #expect(metadata.count == 1 && metadata["x-trace"] == "abc")
        let r25 = m.takeMetadata()
        #expect(r25.count == 0)
    }

    @Test func errorBeforeAnyMessageIsTrailersOnly() {
        var m = routed(streaming: true)
        let status = RPCError(code: .notFound, message: "volume pvc-1 not found")
        let finish = m.finish(status: status, messagesQueued: false)
        #expect(finish == .init(response: .trailersOnly(status), cleanUp: true))
        #expect(m.response == .headersOnly)
        let r26 = m.sendMessage()
        #expect(r26 == .reject)
    }

    @Test func errorAfterQueuedMessagesFollowsThem() {
        var m = routed(streaming: true)
        let status = RPCError(code: .aborted, message: "stop")
        let r27 = m.finish(status: status, messagesQueued: true)
        #expect(r27.response == .submitHeaders)
        let r28 = m.read(copied: 10, queueEmpty: true)
        #expect(r28 == .sendTrailers(status))
    }

    @Test func streamingDeliversToAWaitingHandlerAndHoldsTheWindowOtherwise() {
        var m = routed(streaming: true)
        #expect(m.phase == .running && m.streaming)
        let r29 = m.takeMessage()
        #expect(r29 == .wait)
        // A waiting handler takes the message directly: nothing queued, window released.
        var delivered: [[UInt8]] = []
        feed(&m, GRPCFraming.frame([7])) { delivered.append($0); return true }
        #expect(delivered == [[7]])
        let r30 = m.acknowledge(received: 6)
        #expect(r30 == 6)
        // Nobody waits: queued, and the window is held until the handler takes it.
        feed(&m, GRPCFraming.frame([8, 9]))
        #expect(m.bufferedBytes == 2)
        let r31 = m.acknowledge(received: 7)
        #expect(r31 == 0)
        #expect(m.unconsumed == 7)
        let r32 = m.takeMessage()
        #expect(r32 == .message([8, 9], consume: 7))
        #expect(m.unconsumed == 0)
        let r33 = m.receiveEnd()
        #expect(r33)
        let r34 = m.nextStep()
        #expect(r34 == .endInbound)
        #expect(m.inbound == .ended)
        let r35 = m.takeMessage()
        #expect(r35 == .end)
    }

    @Test func responseMessagesSubmitHeadersOnceAndResumeADeferredSource() {
        var m = routed(streaming: true)
        let r36 = m.sendMessage()
        #expect(r36 == .submitHeaders)
        let r37 = m.sendMessage()
        #expect(r37 == .queue)
        let r38 = m.read(copied: 12, queueEmpty: true)
        #expect(r38 == .send)
        let r39 = m.read(copied: 0, queueEmpty: true)
        #expect(r39 == .deferred)
        #expect(m.response == .streaming(deferred: true))
        let r40 = m.sendMessage()
        #expect(r40 == .resumeData)
        let r41 = m.read(copied: 0, queueEmpty: true)
        #expect(r41 == .deferred)
        let r42 = m.finish(status: nil, messagesQueued: false)
        #expect(r42.response == .resumeData)
        let r43 = m.read(copied: 0, queueEmpty: true)
        #expect(r43 == .sendTrailers(RPCError(code: .ok, message: "")))
        let r44 = m.sendMessage()
        #expect(r44 == .reject)
    }

    @Test func finishingTwiceDoesNothingTheSecondTime() {
        var m = routed(streaming: false)
        let r45 = m.finish(status: nil, messagesQueued: true)
        #expect(r45.cleanUp)
        let r46 = m.finish(status: RPCError(code: .internalError, message: "late"), messagesQueued: false)
        #expect(r46 == .init())
        #expect(m.trailers == RPCError(code: .ok, message: ""))
    }

    @Test func resetCancelsARunningCall() {
        var m = routed(streaming: true)
        feed(&m, GRPCFraming.frame([1]) + [0, 0])
        let r47 = m.acknowledge(received: 8)
        #expect(r47 == 0)
        let close = m.streamClosed(errorCode: 8)
        #expect(close.abort == RPCError(code: .cancelled, message: "the client reset the stream (HTTP/2 error 8)"))
        #expect(close.consume == 8)
        #expect(m.isDone && m.closed && m.bufferedBytes == 0)
        #expect(m.inbound == .cancelled)
        let r48 = m.takeMessage()
        #expect(r48 == .cancelled)
        let r49 = m.sendMessage()
        #expect(r49 == .reject)
        let r50 = m.deadlineExpired()
        #expect(r50 == nil)
    }

    @Test func deadlineCancelsTheHandlerOnce() {
        var m = routed(streaming: true)
        let r51 = m.deadlineExpired()
        #expect(r51 == RPCError(code: .deadlineExceeded, message: "the deadline of /pkg.Svc/Method expired"))
        let r52 = m.cancelHandler()
        #expect(r52)  // nothing queued: a waiting read is woken
        let r53 = m.takeMessage()
        #expect(r53 == .cancelled)
        _ = m.finish(status: RPCError(code: .deadlineExceeded, message: "x"), messagesQueued: false)
        #expect(m.inbound == .cancelled)
        let r54 = m.deadlineExpired()
        #expect(r54 == nil)
    }

    @Test func headerListOverTheLimitIsRefused() {
        var m = ServerStreamStateMachine(maxMessageSize: 10, maxHeaderListSize: 100)
        let r55 = m.receiveHeader("x-a", String(repeating: "a", count: 40))
        #expect(r55)
        let r56 = m.receiveHeader("x-b", String(repeating: "b", count: 40))
        #expect(!r56)
    }

    @Test func trailersAndSecondHeadersAreIgnored() {
        var m = routed(streaming: true)
        let r57 = m.receiveHeader(":path", "/other.Svc/Method")
        #expect(r57)
        let r58 = m.receiveHeadersEnd(endStream: true)
        #expect(r58 == .none)
        #expect(m.pathDescription == "/pkg.Svc/Method")
    }

    @Test func compressedMessageWithoutEncodingIsInternal() {
        var m = routed(streaming: false)
        let outcome = feed(&m, [1, 0, 0, 0, 1, 7])
        guard case .processed(_, let error?) = outcome.first else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(error.code == .internalError)
    }

    @Test func unsupportedEncodingIsUnimplementedAndItsDataIgnored() {
        var m = ServerStreamStateMachine(maxMessageSize: 100, maxHeaderListSize: 16 * 1024)
        for (n, v) in grpcHeaders + [("grpc-encoding", "snappy")] { _ = m.receiveHeader(n, v) }
        let r59 = m.receiveHeadersEnd(endStream: false)
        #expect(r59 == .route(compression: nil))
        let r60 = feed(&m, [1, 0, 0, 0, 1, 7])
        #expect(r60 == [.ignored])
        guard case .grpcError(let error) = m.validate() else {
            Issue.record("expected a gRPC error")
            return
        }
        #expect(error.code == .unimplemented)
    }

    @Test func negotiatedEncodingIsReported() {
        var m = ServerStreamStateMachine(maxMessageSize: 100, maxHeaderListSize: 16 * 1024)
        for (n, v) in grpcHeaders + [("grpc-encoding", "gzip")] { _ = m.receiveHeader(n, v) }
        let r61 = m.receiveHeadersEnd(endStream: false)
        #expect(r61 == .route(compression: .gzip))
    }

    @Test func thrownErrorsBecomeStatuses() {
        struct Oops: Error, CustomStringConvertible { var description: String { "oops" } }
        #expect(ServerStreamStateMachine.status(for: RPCError(code: .notFound, message: "x")).code == .notFound)
        #expect(ServerStreamStateMachine.status(for: CancellationError()) == RPCError(code: .cancelled, message: "the handler was cancelled"))
        #expect(ServerStreamStateMachine.status(for: Oops()) == RPCError(code: .unknown, message: "oops"))
    }
}
