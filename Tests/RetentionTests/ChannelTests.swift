import Retention
import Testing

@Suite("Channels")
struct ChannelTests {
    @Test("channel names are the file's names")
    func names() {
        #expect(Channel.allCases.map(\.rawValue) == ["sms", "push", "email", "call", "robot_call"])
        #expect(Channel(rawValue: "fax") == nil)
        #expect(Channel.call.isCall && !Channel.robotCall.isCall)
    }
}
