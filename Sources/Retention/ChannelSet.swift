/// A set of channels in one byte: consent withheld, channels seen in a history. A bit set rather
/// than `Set<Channel>` so that the per-subscriber policy check allocates nothing.
public struct ChannelSet: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The set holding just `channel`.
    public init(_ channel: Channel) { self.init(rawValue: 1 << channel.index) }

    /// The set of `channels`.
    public init(_ channels: some Sequence<Channel>) {
        self.init(rawValue: 0)
        for c in channels { insert(ChannelSet(c)) }
    }

    public static let sms = ChannelSet(Channel.sms)
    public static let push = ChannelSet(Channel.push)
    public static let email = ChannelSet(Channel.email)
    public static let call = ChannelSet(Channel.call)
    public static let robotCall = ChannelSet(Channel.robotCall)

    /// Whether `channel` is in the set.
    public func contains(_ channel: Channel) -> Bool { rawValue & (1 << channel.index) != 0 }
}

extension Channel {
    /// The channel's position in `allCases` (0…4): per-channel tables are arrays indexed by it.
    public var index: Int {
        switch self {
        case .sms: 0
        case .push: 1
        case .email: 2
        case .call: 3
        case .robotCall: 4
        }
    }

    /// The channel at `index` in `allCases`, or nil.
    public init?(index: Int) {
        guard (0..<Channel.allCases.count).contains(index) else { return nil }
        self = Channel.allCases[index]
    }
}
