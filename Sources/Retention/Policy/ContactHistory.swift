/// One past contact of a subscriber.
public struct ContactRecord: Sendable, Equatable {
    public var channel: Channel
    /// When, in seconds since 1970-01-01 UTC.
    public var at: Int64

    public init(channel: Channel, at: Int64) {
        self.channel = channel
        self.at = at
    }
}

/// What the contact policy needs to know of a subscriber's past: the contacts made (by any
/// campaign, as `contact_history` records them) and the offers refused. Times are seconds since
/// 1970-01-01 UTC.
public struct ContactHistory: Sendable, Equatable {
    public var contacts: [ContactRecord]
    /// Times of refusals.
    public var refusals: [Int64]

    public init(contacts: [ContactRecord] = [], refusals: [Int64] = []) {
        self.contacts = contacts
        self.refusals = refusals
    }

    /// Records a contact (a run's treatment action, once it is written).
    public mutating func record(_ channel: Channel, at time: Int64) { contacts.append(ContactRecord(channel: channel, at: time)) }

    /// Records a refusal.
    public mutating func recordRefusal(at time: Int64) { refusals.append(time) }

    /// Forgets what happened before `time` (what `ContactPolicy.historyDays` allows to drop).
    public mutating func prune(before time: Int64) {
        contacts.removeAll { $0.at < time }
        refusals.removeAll { $0 < time }
    }
}

/// What a subscriber allows: consent per channel and the do-not-contact list.
public struct ContactPermissions: Sendable, Equatable {
    /// On the do-not-contact list: no channel at all.
    public var doNotContact: Bool
    /// Channels the subscriber has not consented to.
    public var withheld: ChannelSet

    /// Everything allowed by default.
    public init(doNotContact: Bool = false, withheld: ChannelSet = []) {
        self.doNotContact = doNotContact
        self.withheld = withheld
    }
}
