/// A way to reach a subscriber with an offer. The wire and file name is the raw value.
public enum Channel: String, Sendable, CaseIterable, Codable, Hashable, Comparable {
    case sms, push, email, call
    case robotCall = "robot_call"

    public static func < (a: Channel, b: Channel) -> Bool {
        (allCases.firstIndex(of: a) ?? 0) < (allCases.firstIndex(of: b) ?? 0)
    }

    /// Whether a person at the call centre makes the contact (the action carries a script).
    public var isCall: Bool { self == .call }
}
