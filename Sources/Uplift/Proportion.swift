/// A count of events among subscribers (churned among treated, say) and its rate.
public struct Proportion: Sendable, Equatable, Codable {
    /// How many subscribers were counted.
    public var subscribers: Int
    /// How many of them had the event (churned, say).
    public var events: Int

    public init(subscribers: Int, events: Int) {
        self.subscribers = subscribers
        self.events = events
    }

    /// events / subscribers; 0 when there is nobody.
    public var rate: Double { subscribers > 0 ? Double(events) / Double(subscribers) : 0 }

    /// Whether the counts describe a proportion at all: someone counted, and between none and all
    /// of them had the event. The intervals are nil otherwise rather than NaN, so a report shows
    /// "no estimate" instead of a number that would poison sums and JSON.
    public var isEstimable: Bool { subscribers > 0 && events >= 0 && events <= subscribers }
}
