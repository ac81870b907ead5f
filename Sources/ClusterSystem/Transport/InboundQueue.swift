import Synchronization

/// A call received from a peer, waiting to be executed.
struct InboundCall: @unchecked Sendable {
    // @unchecked: the messages are handed over by the I/O thread and only read afterwards, by
    // the one task that executes the call.
    /// Where the result goes: the ROUTER connection the call came on.
    let rid: [UInt8]
    /// Who called, as authenticated by the handshake.
    let caller: Caller
    let header: CallHeader
    let payload: ZMQPayload
    let received: ContinuousClock.Instant
}

/// The bounded hand-off from the I/O thread to the fixed set of tasks that execute inbound
/// calls. `outstanding` counts calls queued or executing: the I/O thread stops reading when it
/// reaches the limit, so nothing here grows without bound.
final class InboundQueue: Sendable {
    private struct State: ~Copyable {
        var items: [InboundCall] = []
        var head = 0
        var waiters: [UnsafeContinuation<InboundCall?, Never>] = []
        var outstanding = 0
        var finished = false
    }

    private let state = Mutex(State())

    /// Adds a call (or hands it straight to a waiting task).
    /// - Returns: calls outstanding after this one.
    func push(_ call: InboundCall) -> Int {
        let (waiter, outstanding) = state.withLock { s -> (UnsafeContinuation<InboundCall?, Never>?, Int) in
            s.outstanding += 1
            if !s.waiters.isEmpty { return (s.waiters.removeLast(), s.outstanding) }
            s.items.append(call)
            return (nil, s.outstanding)
        }
        waiter?.resume(returning: call)
        return outstanding
    }

    /// The next call, or nil once the queue is finished.
    func next() async -> InboundCall? {
        await withUnsafeContinuation { c in
            let call = state.withLock { s -> InboundCall?? in
                if s.head < s.items.count {
                    let call = s.items[s.head]
                    s.head += 1
                    if s.head == s.items.count || s.head > 1024 && s.head * 2 > s.items.count {
                        s.items.removeFirst(s.head)
                        s.head = 0
                    }
                    return .some(call)
                }
                if s.finished { return .some(nil) }
                s.waiters.append(c)
                return .none
            }
            if let call { c.resume(returning: call) }
        }
    }

    /// Calls queued or executing.
    var outstanding: Int { state.withLock { $0.outstanding } }

    /// One call finished executing.
    /// - Returns: calls still outstanding.
    func done() -> Int {
        state.withLock { s in
            s.outstanding -= 1
            return s.outstanding
        }
    }

    /// Removes a queued call the caller has given up on.
    /// - Returns: whether it was still queued.
    func cancel(rid: [UInt8], callID: UInt64) -> Bool {
        state.withLock { s in
            guard let i = s.items[s.head...].firstIndex(where: { $0.header.callID == callID && $0.rid == rid }) else { return false }
            s.items.remove(at: i)
            s.outstanding -= 1
            return true
        }
    }

    /// Wakes every waiting task with nil; later `next()` calls return what is left, then nil.
    func finish() {
        let waiters = state.withLock { s -> [UnsafeContinuation<InboundCall?, Never>] in
            s.finished = true
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume(returning: nil) }
    }
}
