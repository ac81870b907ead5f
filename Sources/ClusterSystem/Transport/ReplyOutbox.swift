import ZeroMQ

/// Answers of executed calls on their way to the ROUTER, combined: the task that answers while
/// nobody else is sending becomes the sender and hands libzmq every answer added meanwhile by the
/// other executors, under one hold of the ROUTER's mutex and with one readiness check per burst
/// instead of one per answer. The others add theirs and return at once.
///
/// Bounded without a limit of its own: an answer is added only by an executor that finished a
/// call, and the sender takes everything at every round, so it holds at most one answer per
/// executor (`inboundConcurrency`) at a time.
final class ReplyOutbox: Sendable {
    struct Answer {
        let rid: [UInt8]
        let parts: [ZMQMessage]
    }

    struct State {
        var answers: [Answer] = []
        /// Whether a sender is at work (it takes what is added until it finds nothing).
        var sending = false

        /// Adds an answer. - Returns: true when the caller becomes the sender.
        mutating func add(_ answer: Answer) -> Bool {
            answers.append(answer)
            guard !sending else { return false }
            sending = true
            return true
        }

        /// The sender takes everything added; when nothing is left it stops being the sender
        /// (and returns an empty list).
        mutating func take() -> [Answer] {
            if answers.isEmpty { sending = false }
            defer { answers.removeAll(keepingCapacity: true) }
            return answers
        }
    }

    private let state = Guarded(State())

    /// Adds an answer. - Returns: true when the caller must send (`take` until it is empty).
    func add(rid: [UInt8], _ parts: [ZMQMessage]) -> Bool {
        state.withLock { $0.add(Answer(rid: rid, parts: parts)) }
    }

    /// What the sender sends next; empty: nothing is left, and it is no longer the sender.
    func take() -> [Answer] {
        state.withLock { $0.take() }
    }
}
