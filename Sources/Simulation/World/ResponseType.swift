/// How a subscriber reacts to a retention contact: the four classic uplift segments. Hidden:
/// neither the model nor any strategy sees it; only the outcomes reveal it, on average.
public enum ResponseType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// An accepted offer lowers the churn hazard: strongly when the offer addresses the real
    /// churn reason, a little otherwise.
    case persuadable = 0
    /// Contact changes nothing; the hazard is lower than the profile suggests (stays anyway).
    case sureThing
    /// Contact changes nothing; the hazard is higher than the profile suggests (leaves anyway).
    case lostCause
    /// Any contact raises the hazard (a reminder to shop around); never accepts.
    case sleepingDog

    /// The name in reports and docs.
    public var wireName: String {
        switch self {
        case .persuadable: "persuadable"
        case .sureThing: "sure_thing"
        case .lostCause: "lost_cause"
        case .sleepingDog: "sleeping_dog"
        }
    }

    public var description: String { wireName }
}
