/// Counts churn per arm for each value of a breakdown key (offer, channel, reason, cell), one
/// subscriber at a time, so a report over millions of actions needs no intermediate arrays.
///
/// Each group's `UpliftReport` compares that group's treated with that group's control
/// subscribers; both arms of a group share the key because a control row records the offer,
/// channel and cell it would have had.
public struct UpliftTally<Key: Hashable & Sendable>: Sendable {
    /// The two arms' counts of one group.
    public struct Arms: Sendable, Equatable {
        public var treatment = Proportion(subscribers: 0, events: 0)
        public var control = Proportion(subscribers: 0, events: 0)

        public init() {}

        /// The group's report.
        public var report: UpliftReport { UpliftReport(treatment: treatment, control: control) }
    }

    /// Counts by key, for the groups seen so far.
    public private(set) var groups: [Key: Arms] = [:]

    /// An empty tally.
    public init() {}

    /// Counts one subscriber of `arm` in group `key`.
    public mutating func record(_ key: Key, arm: UpliftReport.Arm, churned: Bool) {
        let event = churned ? 1 : 0
        switch arm {
        case .treatment:
            groups[key, default: Arms()].treatment.subscribers += 1
            groups[key, default: Arms()].treatment.events += event
        case .control:
            groups[key, default: Arms()].control.subscribers += 1
            groups[key, default: Arms()].control.events += event
        }
    }

    /// Every group's report. A group with nobody in one arm has a report whose uplift is nil.
    public var reports: [Key: UpliftReport] { groups.mapValues(\.report) }

    /// Reports per key for parallel columns: subscriber i is in group `keys[i]`, arm `arms[i]`,
    /// and churned when `churned[i]`. Rows beyond the shortest column are ignored.
    public static func reports(keys: [Key], arms: [UpliftReport.Arm], churned: [Bool]) -> [Key: UpliftReport] {
        var tally = UpliftTally()
        for i in 0..<min(keys.count, arms.count, churned.count) {
            tally.record(keys[i], arm: arms[i], churned: churned[i])
        }
        return tally.reports
    }
}
