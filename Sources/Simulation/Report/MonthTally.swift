/// What one month of one strategy produced, counted per part of the base and then merged.
/// Units are subscriber-months: a subscriber treated in two months counts twice.
public struct MonthTally: Sendable, Equatable {
    /// Counts of one arm among one response type (diagnostics only: the types are hidden).
    public struct TypeCounts: Sendable, Equatable {
        public var treated = 0
        public var treatedChurned = 0
        public var control = 0
        public var controlChurned = 0
        /// Σ over the treated of (untreated hazard − treated hazard): churners the contacts
        /// prevented in expectation (negative when they caused churn).
        public var expectedPrevented = 0.0
        public init() {}

        mutating func add(_ o: TypeCounts) {
            treated += o.treated; treatedChurned += o.treatedChurned
            control += o.control; controlChurned += o.controlChurned
            expectedPrevented += o.expectedPrevented
        }
    }

    /// Subscribers at the start of the month.
    public var subscribers = 0
    /// Churners of the month (all arms).
    public var churned = 0
    /// Churners of the month who were in the base at month 0.
    public var initialChurned = 0
    /// Subscribers who joined at the end of the month.
    public var joined = 0
    public var treated = 0
    public var treatedChurned = 0
    public var control = 0
    public var controlChurned = 0
    /// Offers accepted.
    public var accepted = 0
    /// Contacts whose offer addressed the subscriber's real reason.
    public var addressedRealReason = 0
    /// Σ CLV of the treated, and of the treated who churned (CLV at decision time).
    public var treatedCLV = 0.0
    public var treatedChurnedCLV = 0.0
    /// The same for the control arm.
    public var controlCLV = 0.0
    public var controlChurnedCLV = 0.0
    /// Σ over the treated of (untreated hazard − treated hazard) × CLV: the CLV the contacts
    /// saved in expectation, known only to the simulated world.
    public var expectedSavedCLV = 0.0
    /// What the month's run spent (offer costs of the treated).
    public var budgetUsed = 0.0
    /// Per response type, in `ResponseType` order.
    public var byResponse = [TypeCounts](repeating: TypeCounts(), count: ResponseType.allCases.count)

    public init() {}

    mutating func add(_ o: MonthTally) {
        subscribers += o.subscribers; churned += o.churned; initialChurned += o.initialChurned; joined += o.joined
        treated += o.treated; treatedChurned += o.treatedChurned; control += o.control; controlChurned += o.controlChurned
        accepted += o.accepted; addressedRealReason += o.addressedRealReason
        treatedCLV += o.treatedCLV; treatedChurnedCLV += o.treatedChurnedCLV
        controlCLV += o.controlCLV; controlChurnedCLV += o.controlChurnedCLV
        expectedSavedCLV += o.expectedSavedCLV; budgetUsed += o.budgetUsed
        for k in byResponse.indices { byResponse[k].add(o.byResponse[k]) }
    }
}
