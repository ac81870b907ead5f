/// Why the contact policy keeps a subscriber from being contacted on a channel.
public enum PolicyReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// On the do-not-contact list.
    case doNotContact = 0
    /// No consent for this channel.
    case noConsent
    /// Within the cool-down after a refusal.
    case refusalCooldown
    /// The channel's cap (K contacts per D days) is reached.
    case channelCap
    /// The cap across all channels is reached.
    case globalCap

    /// The reason's name in reports and the database.
    public var wireName: String {
        switch self {
        case .doNotContact: "do_not_contact"
        case .noConsent: "no_consent"
        case .refusalCooldown: "refusal_cooldown"
        case .channelCap: "channel_cap"
        case .globalCap: "global_cap"
        }
    }

    public var description: String { wireName }
}

/// The contact policy's answer for one subscriber and channel.
public enum PolicyVerdict: Sendable, Equatable {
    case allowed
    case suppressed(PolicyReason)

    /// Whether the contact may be made.
    public var isAllowed: Bool { self == .allowed }
}

/// The verdicts for all five channels of one subscriber, computed once and read per offer.
public struct ChannelVerdicts: Sendable, Equatable {
    private var verdicts: (PolicyVerdict, PolicyVerdict, PolicyVerdict, PolicyVerdict, PolicyVerdict)

    /// The same verdict for every channel.
    public init(all v: PolicyVerdict) { verdicts = (v, v, v, v, v) }

    /// The verdict for `channel`.
    public subscript(channel: Channel) -> PolicyVerdict {
        get {
            switch channel {
            case .sms: verdicts.0
            case .push: verdicts.1
            case .email: verdicts.2
            case .call: verdicts.3
            case .robotCall: verdicts.4
            }
        }
        set {
            switch channel {
            case .sms: verdicts.0 = newValue
            case .push: verdicts.1 = newValue
            case .email: verdicts.2 = newValue
            case .call: verdicts.3 = newValue
            case .robotCall: verdicts.4 = newValue
            }
        }
    }

    public static func == (a: Self, b: Self) -> Bool { Channel.allCases.allSatisfy { a[$0] == b[$0] } }
}
