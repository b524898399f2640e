#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CH2Sys
import Platform

/// Something registered with an ``EventLoop`` for readiness events on a descriptor.
protocol LoopSelectable: AnyObject {
    /// Called on the loop thread with the `epoll` event mask.
    func handleEvent(_ events: UInt32)
}

/// Something that has output to write at the end of a loop turn.
protocol LoopFlushable: AnyObject {
    /// Called on the loop thread once per turn after it asked with ``EventLoop/needsFlush(_:)``.
    func flush()
}

/// A one-shot timer scheduled on an ``EventLoop``; cancel it from the loop thread.
final class LoopTimer {
    let deadline: UInt64
    var action: (() -> Void)?
    init(deadline: UInt64, action: @escaping () -> Void) {
        self.deadline = deadline
        self.action = action
    }
    /// Prevents the action from running. Loop thread only.
    func cancel() { action = nil }
}

/// One thread running an `epoll` loop: it owns sockets, their buffers and nghttp2 sessions, and is
/// the `TaskExecutor` handler tasks prefer, so a handler that does not block runs where its request
/// was read.
///
/// Everything marked "loop thread only" is confined to the loop thread; that confinement is what
/// makes the `@unchecked Sendable` sound. Work from other threads enters through ``execute(_:)`` and
/// ``enqueue(_:)``, which lock.
final class EventLoop: TaskExecutor, @unchecked Sendable {
    private enum Work: @unchecked Sendable {
        case job(UnownedJob)
        case closure(() -> Void)
    }
    private struct Inbox: ~Copyable {
        var work: [Work] = []
        var sleeping = false
        var wakeSent = false
    }
    /// Moves a non-Sendable closure across the lock; the loop alone runs it.
    private struct UncheckedClosure: @unchecked Sendable { let body: () -> Void }

    let name: String
    private let epfd: Int32
    private let wakeFD: Int32
    private let inbox = Mutex(Inbox())
    private var local: [Work] = []             // loop thread only
    private var spare: [Work] = []             // loop thread only
    private var selectables: [UInt64: any LoopSelectable] = [:]  // loop thread only
    private var nextToken: UInt64 = 1           // loop thread only
    private var timers = TimerHeap()            // loop thread only
    private var flushQueue: [any LoopFlushable] = []  // loop thread only
    private var stopping = false                // loop thread only
    /// Written once by the loop thread before `started` is set; read after.
    private var thread: pthread_t? = nil
    private let started = Atomic<Bool>(false)
    /// After this long without events, timers or work, freed heap memory goes back to the system.
    private let heapTrimDelay: Duration?
    /// How many times the loop has trimmed the heap (for tests and diagnostics).
    let heapTrimCount = Atomic<Int>(0)
    private var sharedReadBuffer: UnsafeMutableRawBufferPointer? = nil  // loop thread only

    private static let wakeToken: UInt64 = 0
    /// Bytes one read takes from a socket into ``readBuffer``.
    static let readSize = 64 * 1024

    /// Creates a loop and starts its thread.
    ///
    /// - Parameters:
    ///   - name: The thread's name (15 bytes are kept).
    ///   - heapTrimDelay: When set, the loop calls `malloc_trim` once it has been quiet this long
    ///     after doing anything, so memory freed after a burst of calls leaves the process.
    init(name: String, heapTrimDelay: Duration? = nil) throws(SystemError) {
        self.name = name
        self.heapTrimDelay = heapTrimDelay
        epfd = try Epoll.create()
        let efd = h2_eventfd()
        if efd < 0 { throw SystemError(call: "eventfd", errno: errno) }
        wakeFD = efd
        try Epoll.add(epfd, wakeFD, events: Epoll.readable, token: Self.wakeToken)
        local.reserveCapacity(64)
        spare.reserveCapacity(64)
        try spawnThread(detached: false) { self.run() }
        // Wait until the thread has recorded its identity, so `inEventLoop` is exact from now on.
        while !started.load(ordering: .acquiring) { sched_yield() }
    }

    deinit {
        Sys.close(epfd)
        Sys.close(wakeFD)
        sharedReadBuffer?.deallocate()
    }

    /// The buffer connections on this loop read into: one per loop, not one per connection, since
    /// every read is handed to nghttp2 (which copies what it keeps) before the next one. Loop
    /// thread only; allocated on first use.
    var readBuffer: UnsafeMutableRawBufferPointer {
        if let b = sharedReadBuffer { return b }
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readSize, alignment: 16)
        sharedReadBuffer = b
        return b
    }

    /// Whether the caller runs on this loop's thread.
    var inEventLoop: Bool {
        guard let t = thread else { return false }
        return pthread_equal(pthread_self(), t) != 0
    }

    // MARK: TaskExecutor

    func enqueue(_ job: consuming ExecutorJob) {
        submit(.job(UnownedJob(job)))
    }

    /// Runs `body` on the loop thread, soon. From the loop thread it runs later in this turn.
    func execute(_ body: @escaping @Sendable () -> Void) {
        submit(.closure(body))
    }

    /// Runs `body` on the loop thread: now when already there, otherwise soon.
    func executeOrRun(_ body: @escaping @Sendable () -> Void) {
        if inEventLoop { body() } else { submit(.closure(body)) }
    }

    /// Like ``execute(_:)`` for loop-internal closures. Loop thread only.
    func executeLocal(_ body: @escaping () -> Void) {
        local.append(.closure(body))
    }

    private func submit(_ work: Work) {
        if inEventLoop {
            local.append(work)
            return
        }
        let wake = inbox.withLock { inbox -> Bool in
            inbox.work.append(work)
            if inbox.sleeping && !inbox.wakeSent {
                inbox.wakeSent = true
                return true
            }
            return false
        }
        if wake {
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        }
    }

    // MARK: Registration (loop thread only)

    /// Registers `selectable` for `events` on `fd`; returns the token used to modify or remove it.
    func register(_ fd: Int32, events: UInt32, _ selectable: any LoopSelectable) throws(SystemError) -> UInt64 {
        let token = nextToken
        nextToken += 1
        try Epoll.add(epfd, fd, events: events, token: token)
        selectables[token] = selectable
        return token
    }

    func modify(_ fd: Int32, token: UInt64, events: UInt32) {
        try? Epoll.modify(epfd, fd, events: events, token: token)
    }

    func deregister(_ fd: Int32, token: UInt64) {
        Epoll.remove(epfd, fd)
        selectables[token] = nil
    }

    /// Asks for `flushable.flush()` at the end of this turn. The caller keeps its own "queued" flag.
    func needsFlush(_ flushable: any LoopFlushable) {
        flushQueue.append(flushable)
    }

    /// Schedules `action` after `delay`. Loop thread only.
    @discardableResult
    func schedule(after delay: Duration, _ action: @escaping () -> Void) -> LoopTimer {
        let t = LoopTimer(deadline: monotonicNanos() &+ UInt64(clamping: delay.wholeNanoseconds), action: action)
        timers.push(t)
        return t
    }

    /// Stops the loop after its current turn; its thread exits.
    func stop() {
        execute { [unowned self] in self.stopping = true }
    }

    /// Waits until the loop thread has exited.
    func join() {
        if inEventLoop { return }
        if let t = thread { pthread_join(t, nil); thread = nil }
    }

    // MARK: The loop

    private func run() {
        thread = pthread_self()
        started.store(true, ordering: .releasing)
        setCurrentThreadName(name)
        let capacity = 256
        let events = UnsafeMutableRawPointer.allocate(byteCount: h2_epoll_event_size() * capacity, alignment: 16)
        defer { events.deallocate() }
        let trimAfter = heapTrimDelay.map { Int32(clamping: max((UInt64(clamping: $0.wholeNanoseconds) + 999_999) / 1_000_000, 1)) }
        // Whether anything ran since the heap was last trimmed: a quiet loop trims once, not again.
        var trimDue = false
        while !stopping {
            var timeout: Int32 = -1
            if !local.isEmpty || !flushQueue.isEmpty {
                timeout = 0
            } else if let next = timers.peekDeadline() {
                let now = monotonicNanos()
                timeout = next <= now ? 0 : Int32(min((next - now + 999_999) / 1_000_000, 60_000))
            }
            if timeout != 0 {
                let hasWork = inbox.withLock { inbox -> Bool in
                    if inbox.work.isEmpty { inbox.sleeping = true; return false }
                    return true
                }
                if hasWork { timeout = 0 }
            }
            // The trim waits for the delay to pass without events; a nearer timer wins.
            var trimWait = false
            if trimDue, timeout != 0, let trimAfter, timeout < 0 || timeout > trimAfter {
                timeout = trimAfter
                trimWait = true
            }
            let n = h2_epoll_wait(epfd, events, Int32(capacity), timeout)
            if timeout != 0 {
                inbox.withLock { $0.sleeping = false; $0.wakeSent = false }
            }
            if trimWait && n == 0 {
                ProcessMemory.trim()
                heapTrimCount.add(1, ordering: .relaxed)
                trimDue = false
            } else if n > 0 || timeout == 0 {  // an interrupted wait (-1, EINTR) did nothing
                trimDue = trimAfter != nil
            }
            if n > 0 {
                for i in 0..<Int(n) {
                    let token = h2_epoll_event_token(events, Int32(i))
                    if token == Self.wakeToken {
                        var v: UInt64 = 0
                        _ = Glibc.read(wakeFD, &v, 8)
                        continue
                    }
                    selectables[token]?.handleEvent(h2_epoll_event_mask(events, Int32(i)))
                }
            }
            // Work from other threads, then work queued by this thread, repeatedly but bounded.
            inbox.withLock { inbox in
                if !inbox.work.isEmpty {
                    local.append(contentsOf: inbox.work)
                    inbox.work.removeAll(keepingCapacity: true)
                }
            }
            var rounds = 0
            while !local.isEmpty && rounds < 64 {
                swap(&local, &spare)
                for work in spare {
                    switch work {
                    case .job(let job): job.runSynchronously(on: asUnownedTaskExecutor())
                    case .closure(let body): body()
                    }
                }
                spare.removeAll(keepingCapacity: true)
                rounds += 1
            }
            if runTimers() { trimDue = trimAfter != nil }
            if !flushQueue.isEmpty {
                var i = 0
                while i < flushQueue.count {  // flushing may queue more
                    flushQueue[i].flush()
                    i += 1
                }
                flushQueue.removeAll(keepingCapacity: true)
            }
        }
        // Let tasks that were cancelled on the way down finish, then drop everything registered.
        for _ in 0..<8 {
            inbox.withLock { inbox in
                local.append(contentsOf: inbox.work)
                inbox.work.removeAll()
            }
            if local.isEmpty { break }
            swap(&local, &spare)
            for work in spare {
                switch work {
                case .job(let job): job.runSynchronously(on: asUnownedTaskExecutor())
                case .closure(let body): body()
                }
            }
            spare.removeAll()
        }
        selectables.removeAll()
        timers = TimerHeap()
    }

    /// Runs the timers that are due; returns whether any action ran.
    private func runTimers() -> Bool {
        guard timers.peekDeadline() != nil else { return false }
        let now = monotonicNanos()
        var ran = false
        while let d = timers.peekDeadline(), d <= now {
            let t = timers.pop()!
            if let action = t.action {
                t.action = nil
                action()
                ran = true
            }
        }
        return ran
    }
}

extension EventLoop {
    /// Stops watching the listening socket `fd` for a moment, then watches it for `events` again
    /// unless `closed` says it was closed meanwhile. For an accept that failed for want of
    /// descriptors or memory: the pending connection stays queued and would wake the loop at once.
    /// Loop thread only.
    func pauseAccepting(_ fd: Int32, token: UInt64, events: UInt32, closed: @escaping () -> Bool) {
        modify(fd, token: token, events: 0)
        schedule(after: .milliseconds(100)) { [weak self] in
            guard let self, !closed() else { return }
            self.modify(fd, token: token, events: events)
        }
    }
}

/// A binary min-heap of timers by deadline.
struct TimerHeap {
    private var items: [LoopTimer] = []

    func peekDeadline() -> UInt64? {
        // Skip nothing here: cancelled timers fire as no-ops.
        items.first?.deadline
    }

    mutating func push(_ t: LoopTimer) {
        items.append(t)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[p].deadline <= items[i].deadline { break }
            items.swapAt(p, i)
            i = p
        }
    }

    mutating func pop() -> LoopTimer? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l].deadline < items[m].deadline { m = l }
                if r < items.count && items[r].deadline < items[m].deadline { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// A group of event loops handed out round-robin.
final class EventLoopGroup: Sendable {
    let loops: [EventLoop]
    /// False for a group over a loop it did not start (``SharedLoop``): ``shutdown()`` leaves it running.
    private let owned: Bool
    private let next = Atomic<Int>(0)

    init(count: Int, name: String, heapTrimDelay: Duration? = nil) throws(SystemError) {
        var loops: [EventLoop] = []
        for i in 0..<max(1, count) {
            loops.append(try EventLoop(name: "\(name)-\(i)", heapTrimDelay: heapTrimDelay))
        }
        self.loops = loops
        owned = true
    }

    /// A group of one loop that others use too; it is not stopped with the group.
    init(sharing loop: EventLoop) {
        loops = [loop]
        owned = false
    }

    func nextLoop() -> EventLoop {
        let i = next.add(1, ordering: .relaxed).oldValue
        return loops[i % loops.count]
    }

    func shutdown() {
        guard owned else { return }
        for l in loops { l.stop() }
        for l in loops { l.join() }
    }
}
