/// The contact policy of a campaign file (`contact_policy`): how often a subscriber may be
/// contacted, per channel and over all channels, how long to wait after a refusal, and when a
/// channel must stay quiet. `ContactPolicy` applies it to a subscriber's history.
public struct ContactPolicyRules: Sendable, Equatable {
    /// At most `max` contacts in the last `days` days (both ≥ 1).
    public struct Cap: Sendable, Equatable {
        public var max: Int
        public var days: Int
        public init(max: Int, days: Int) {
            self.max = max
            self.days = days
        }
    }

    /// Caps per channel (`channels`); a channel without one is capped only globally.
    public var channels: [Channel: Cap]
    /// The cap over all channels together (`global`), if any.
    public var global: Cap?
    /// Days without any contact after a refusal (`cooldown_after_refusal_days`); 0 for none.
    public var cooldownAfterRefusalDays: Int
    /// Quiet hours per channel (`quiet_hours`), in the subscriber's region's local time.
    public var quietHours: [Channel: QuietHours]

    public init(channels: [Channel: Cap] = [:], global: Cap? = nil, cooldownAfterRefusalDays: Int = 0,
                quietHours: [Channel: QuietHours] = [:]) {
        self.channels = channels
        self.global = global
        self.cooldownAfterRefusalDays = cooldownAfterRefusalDays
        self.quietHours = quietHours
    }
}

/// A daily window in which a channel does not contact anyone: from `from` (inclusive) to `to`
/// (exclusive), minutes after local midnight. `from > to` crosses midnight (21:00–09:00).
public struct QuietHours: Sendable, Equatable {
    /// Start, minutes after midnight (0…1439).
    public var from: Int
    /// End, minutes after midnight (0…1439), different from `from`.
    public var to: Int

    public init(from: Int, to: Int) {
        self.from = from
        self.to = to
    }

    /// Whether the local minute of the day `minute` (0…1439) is quiet.
    public func contains(minute: Int) -> Bool {
        from < to ? (minute >= from && minute < to) : (minute >= from || minute < to)
    }

    /// `HH:MM` of a minute of the day.
    static func clock(_ minute: Int) -> String {
        let h = minute / 60, m = minute % 60
        return (h < 10 ? "0" : "") + String(h) + ":" + (m < 10 ? "0" : "") + String(m)
    }
}
