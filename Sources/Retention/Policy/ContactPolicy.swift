/// The contact policy of a campaign applied to one subscriber: may it be contacted on a channel
/// now, and when may a message be sent given the channel's quiet hours. A pure function of the
/// history, the permissions and the time, which is passed in (tests and the real-time path use
/// their own clocks).
///
/// Rules, checked in this order (the first that applies is the reason reported):
/// 1. `doNotContact`: the subscriber is on the do-not-contact list.
/// 2. `noConsent`: the subscriber withheld consent for the channel.
/// 3. `refusalCooldown`: a refusal within the last `cooldown_after_refusal_days` days.
/// 4. `channelCap`: `max` contacts on the channel within its last `days` days.
/// 5. `globalCap`: `max` contacts on any channel within the global `days` days.
///
/// **Days** are UTC calendar days (`floor(seconds / 86400)`): "the last D days" are today and
/// the D − 1 days before, so a contact made exactly D days ago no longer counts, and a daily run
/// gets the same answer whatever time of day it runs. Contacts dated in the future (a clock ahead)
/// count as recent.
public struct ContactPolicy: Sendable {
    public let rules: ContactPolicyRules
    /// UTC offset in minutes per home region code (for quiet hours).
    public let regionUTCOffsetsMinutes: [Int]
    /// Caps per channel index (`Channel.index`); `max == Int.max` for none.
    private let channelCaps: [ContactPolicyRules.Cap]
    private let quiet: [QuietHours?]

    /// The policy of `rules`, with `regionUTCOffsetsMinutes` for quiet hours.
    public init(rules: ContactPolicyRules, regionUTCOffsetsMinutes: [Int] = Array(repeating: 0, count: Campaign.regionCount)) {
        self.rules = rules
        self.regionUTCOffsetsMinutes = regionUTCOffsetsMinutes
        channelCaps = Channel.allCases.map { rules.channels[$0] ?? .init(max: Int.max, days: 1) }
        quiet = Channel.allCases.map { rules.quietHours[$0] }
    }

    /// The policy of `campaign`.
    public init(campaign: Campaign) {
        self.init(rules: campaign.contactPolicy, regionUTCOffsetsMinutes: campaign.regionUTCOffsetsMinutes)
    }

    /// The UTC day of `time` (seconds since 1970).
    public static func day(_ time: Int64) -> Int64 { time >= 0 ? time / 86_400 : (time - 86_399) / 86_400 }

    /// How many days of history the policy reads: what is older may be pruned.
    public var historyDays: Int {
        max(rules.cooldownAfterRefusalDays, rules.global?.days ?? 0, rules.channels.values.map(\.days).max() ?? 0)
    }

    /// Whether the subscriber may be contacted on `channel` at `now` (seconds since 1970).
    public func verdict(for channel: Channel, history: ContactHistory, permissions: ContactPermissions, now: Int64) -> PolicyVerdict {
        verdicts(history: history, permissions: permissions, now: now)[channel]
    }

    /// The verdicts for every channel at `now`, reading the history once.
    public func verdicts(history: ContactHistory, permissions: ContactPermissions, now: Int64) -> ChannelVerdicts {
        if permissions.doNotContact { return ChannelVerdicts(all: .suppressed(.doNotContact)) }
        let today = Self.day(now)
        if rules.cooldownAfterRefusalDays > 0 {
            for r in history.refusals where today - Self.day(r) < Int64(rules.cooldownAfterRefusalDays) {
                var out = ChannelVerdicts(all: .suppressed(.refusalCooldown))
                for c in Channel.allCases where permissions.withheld.contains(c) { out[c] = .suppressed(.noConsent) }
                return out
            }
        }
        // Contacts per channel within its window, and over all channels within the global window.
        var perChannel = (0, 0, 0, 0, 0)
        var global = 0
        let globalDays = Int64(rules.global?.days ?? 0)
        for c in history.contacts {
            let age = today - Self.day(c.at)
            if age < globalDays { global += 1 }
            let capIndex = c.channel.index
            guard channelCaps.indices.contains(capIndex), age < Int64(channelCaps[capIndex].days) else { continue }
            switch c.channel {
            case .sms: perChannel.0 += 1
            case .push: perChannel.1 += 1
            case .email: perChannel.2 += 1
            case .call: perChannel.3 += 1
            case .robotCall: perChannel.4 += 1
            }
        }
        var out = ChannelVerdicts(all: .allowed)
        for c in Channel.allCases {
            let n: Int
            switch c {
            case .sms: n = perChannel.0
            case .push: n = perChannel.1
            case .email: n = perChannel.2
            case .call: n = perChannel.3
            case .robotCall: n = perChannel.4
            }
            if permissions.withheld.contains(c) {
                out[c] = .suppressed(.noConsent)
            } else if channelCaps.indices.contains(c.index), n >= channelCaps[c.index].max {
                out[c] = .suppressed(.channelCap)
            } else if let g = rules.global, global >= g.max {
                out[c] = .suppressed(.globalCap)
            }
        }
        return out
    }

    /// The earliest moment at or after `now` (seconds since 1970) outside `channel`'s quiet hours
    /// in home region `region`'s local time: `now` itself when the channel has no quiet hours or
    /// is not quiet then, otherwise the window's end (`to`, at second 0) that follows. A region
    /// code outside 0–11 or missing is taken as UTC.
    public func earliestSend(_ channel: Channel, region: Double, at now: Int64) -> Int64 {
        guard channel.index < quiet.count, let window = quiet[channel.index] else { return now }
        var offset = 0
        if region.isFinite, region >= 0, region < Double(regionUTCOffsetsMinutes.count) { offset = regionUTCOffsetsMinutes[Int(region)] }
        let local = now + Int64(offset) * 60
        let secondOfDay = local - Self.day(local) * 86_400
        guard window.contains(minute: Int(secondOfDay / 60)) else { return now }
        var wait = Int64(window.to) * 60 - secondOfDay
        if wait <= 0 { wait += 86_400 }
        return now + wait
    }

    /// Whether `channel` is in its quiet hours at `now` in region `region`.
    public func isQuiet(_ channel: Channel, region: Double, at now: Int64) -> Bool {
        earliestSend(channel, region: region, at: now) != now
    }
}
