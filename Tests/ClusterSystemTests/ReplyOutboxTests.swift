@testable import ClusterSystem
import Testing

@Suite("Answers combined on their way to the ROUTER")
struct ReplyOutboxTests {
    static func answer(_ n: UInt8) -> ReplyOutbox.Answer { .init(rid: [n], parts: []) }

    @Test("the first answer makes its executor the sender; answers added meanwhile go with its next round; an empty round ends its turn")
    func oneSenderAtATime() {
        var s = ReplyOutbox.State()
        let first = s.add(Self.answer(1))
        #expect(first)  // nobody sends: this executor does
        let second = s.add(Self.answer(2))
        #expect(!second)  // the sender takes it along
        var round = s.take()
        #expect(round.map(\.rid) == [[1], [2]])
        let third = s.add(Self.answer(3))
        #expect(!third)  // still the sender's turn
        round = s.take()
        #expect(round.map(\.rid) == [[3]])
        round = s.take()
        #expect(round.isEmpty)  // nothing left: the turn ends
        #expect(!s.sending)
        let fourth = s.add(Self.answer(4))
        #expect(fourth)  // the next answer starts a new turn
        round = s.take()
        #expect(round.map(\.rid) == [[4]])
        round = s.take()
        #expect(round.isEmpty)
        #expect(s.answers.isEmpty && !s.sending)
    }
}
