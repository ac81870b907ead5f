import Retention
import Testing

@Suite("Contact policy")
struct ContactPolicyTests {
    static let day: Int64 = 86_400
    /// Day 100, 12:00 UTC.
    static let now = 100 * day + 12 * 3_600

    static let rules = ContactPolicyRules(
        channels: [.sms: .init(max: 1, days: 7), .call: .init(max: 1, days: 30)],
        global: .init(max: 2, days: 30), cooldownAfterRefusalDays: 60,
        quietHours: [.call: QuietHours(from: 21 * 60, to: 9 * 60), .email: QuietHours(from: 12 * 60, to: 14 * 60)])
    static let policy = ContactPolicy(rules: rules, regionUTCOffsetsMinutes: [60, -300] + Array(repeating: 0, count: 10))

    static func history(_ contacts: [(Channel, Int64)], refusals: [Int64] = []) -> ContactHistory {
        ContactHistory(contacts: contacts.map { ContactRecord(channel: $0.0, at: $0.1) }, refusals: refusals)
    }

    func verdict(_ c: Channel, _ h: ContactHistory, _ p: ContactPermissions = .init(), at t: Int64 = now) -> PolicyVerdict {
        Self.policy.verdict(for: c, history: h, permissions: p, now: t)
    }

    @Test("a clean subscriber may be contacted on every channel")
    func clean() {
        #expect(Channel.allCases.allSatisfy { verdict($0, .init()) == .allowed })
    }

    @Test("do-not-contact stops every channel, before any other reason")
    func doNotContact() {
        let h = Self.history([(.sms, Self.now - Self.day)], refusals: [Self.now])
        #expect(Channel.allCases.allSatisfy { verdict($0, h, .init(doNotContact: true, withheld: [.sms])) == .suppressed(.doNotContact) })
    }

    @Test("withheld consent stops that channel only")
    func consent() {
        let p = ContactPermissions(withheld: ChannelSet([.sms, .call]))
        #expect(verdict(.sms, .init(), p) == .suppressed(.noConsent))
        #expect(verdict(.call, .init(), p) == .suppressed(.noConsent))
        #expect(verdict(.push, .init(), p) == .allowed)
    }

    @Test("channel cap: a contact 6 days ago blocks; exactly 7 days ago no longer counts, whatever the hour")
    func channelCap() {
        #expect(verdict(.sms, Self.history([(.sms, Self.now - 6 * Self.day)])) == .suppressed(.channelCap))
        #expect(verdict(.sms, Self.history([(.sms, 93 * Self.day + 23 * 3_600)])) == .allowed)  // day 93, late
        #expect(verdict(.sms, Self.history([(.sms, 94 * Self.day)])) == .suppressed(.channelCap))  // day 94, midnight
        #expect(verdict(.push, Self.history([(.sms, Self.now - Self.day)])) == .allowed)
        #expect(verdict(.sms, Self.history([(.sms, Self.now + Self.day)])) == .suppressed(.channelCap), "a future contact counts")
    }

    @Test("global cap across channels within its days; exactly D days ago no longer counts")
    func globalCap() {
        let two = Self.history([(.email, Self.now - 20 * Self.day), (.push, Self.now - 29 * Self.day)])
        #expect(verdict(.robotCall, two) == .suppressed(.globalCap))
        #expect(verdict(.sms, two) == .suppressed(.globalCap))
        let edge = Self.history([(.email, Self.now - 20 * Self.day), (.push, Self.now - 30 * Self.day)])
        #expect(verdict(.robotCall, edge) == .allowed)
    }

    @Test("refusal cool-down: 59 days after a refusal nothing goes out; on day 60 it may")
    func refusal() {
        #expect(Channel.allCases.allSatisfy { verdict($0, Self.history([], refusals: [Self.now - 59 * Self.day])) == .suppressed(.refusalCooldown) })
        #expect(verdict(.sms, Self.history([], refusals: [Self.now - 60 * Self.day])) == .allowed)
        let noRefusalRule = ContactPolicy(rules: ContactPolicyRules())
        #expect(noRefusalRule.verdict(for: .call, history: Self.history([], refusals: [Self.now]), permissions: .init(), now: Self.now) == .allowed)
    }

    @Test("consecutive daily runs never put a subscriber over a cap")
    func consecutiveRuns() {
        var h = ContactHistory()
        let order: [Channel] = [.call, .sms, .push, .email]
        for d in Int64(0)..<200 {
            let t = d * Self.day + Int64((d * 7_919) % 86_400)  // a different hour every run
            let v = Self.policy.verdicts(history: h, permissions: .init(), now: t)
            if let c = order.first(where: { v[$0] == .allowed }) { h.record(c, at: t) }
            h.prune(before: t - Int64(Self.policy.historyDays + 1) * Self.day)
        }
        #expect(Self.policy.historyDays == 60)
        // Check every window of every cap over the whole run.
        let all = h.contacts.map { ($0.channel, ContactPolicy.day($0.at)) }
        #expect(!all.isEmpty)
        for d in Int64(140)..<200 {
            let global = all.filter { d - $0.1 >= 0 && d - $0.1 < 30 }
            #expect(global.count <= 2, "day \(d): \(global)")
            #expect(global.filter { $0.0 == .call }.count <= 1)
            #expect(all.filter { $0.0 == .sms && d - $0.1 >= 0 && d - $0.1 < 7 }.count <= 1)
        }
    }

    @Test("quiet hours across midnight, in the region's local time")
    func quietHoursAcrossMidnight() {
        let p = Self.policy
        let base = 100 * Self.day
        // Region 0 is UTC+1: 19:30 UTC is 20:30 local, not quiet.
        #expect(p.earliestSend(.call, region: 0, at: base + 19 * 3_600 + 1_800) == base + 19 * 3_600 + 1_800)
        // 20:30 UTC is 21:30 local: quiet until 09:00 local, 08:00 UTC the next day.
        #expect(p.earliestSend(.call, region: 0, at: base + 20 * 3_600 + 1_800) == base + Self.day + 8 * 3_600)
        // 07:59:30 UTC is 08:59:30 local: 30 seconds to wait.
        #expect(p.earliestSend(.call, region: 0, at: base + 7 * 3_600 + 59 * 60 + 30) == base + 8 * 3_600)
        // Exactly 09:00 local is open, exactly 21:00 local is quiet.
        #expect(p.earliestSend(.call, region: 0, at: base + 8 * 3_600) == base + 8 * 3_600)
        #expect(p.isQuiet(.call, region: 0, at: base + 20 * 3_600))
        // Region 1 is UTC−5: 03:00 UTC is 22:00 the day before, quiet until 09:00 local = 14:00 UTC.
        #expect(p.earliestSend(.call, region: 1, at: base + 3 * 3_600) == base + 14 * 3_600)
        // Unknown or missing region: UTC.
        #expect(p.earliestSend(.call, region: .nan, at: base + 22 * 3_600) == base + Self.day + 9 * 3_600)
        #expect(p.earliestSend(.call, region: 99, at: base + 22 * 3_600) == base + Self.day + 9 * 3_600)
        // A channel without quiet hours.
        #expect(p.earliestSend(.sms, region: 0, at: base + 3 * 3_600) == base + 3 * 3_600)
    }

    @Test("quiet hours within a day")
    func quietHoursWithinDay() {
        let base = 100 * Self.day
        #expect(Self.policy.earliestSend(.email, region: 5, at: base + 13 * 3_600) == base + 14 * 3_600)
        #expect(Self.policy.earliestSend(.email, region: 5, at: base + 11 * 3_600) == base + 11 * 3_600)
        #expect(Self.policy.earliestSend(.email, region: 5, at: base + 14 * 3_600) == base + 14 * 3_600)
    }

    @Test("the campaign file's policy is the one applied")
    func fromCampaign() throws {
        let c = try CampaignTests.parse(CampaignTests.issueExample)
        let p = ContactPolicy(campaign: c)
        #expect(p.verdict(for: .call, history: Self.history([(.call, Self.now - 29 * Self.day)]), permissions: .init(), now: Self.now) == .suppressed(.channelCap))
        #expect(p.verdict(for: .push, history: Self.history([(.call, Self.now - 29 * Self.day)]), permissions: .init(), now: Self.now) == .allowed)
    }
}
