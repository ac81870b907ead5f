/// A count of events among subscribers (churned among treated, say) and its rate.
public struct Proportion: Sendable, Equatable, Codable {
    public var subscribers: Int
    public var events: Int

    public init(subscribers: Int, events: Int) {
        self.subscribers = subscribers
        self.events = events
    }

    /// events / subscribers; 0 when there is nobody.
    public var rate: Double { subscribers > 0 ? Double(events) / Double(subscribers) : 0 }
}
