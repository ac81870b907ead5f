import Retention

/// One part of the base with the month's working columns: what the model said, what each
/// strategy decided, what happened. The driver runs the parts' phases on their own threads.
final class Part: @unchecked Sendable {
    // @unchecked: touched by one thread at a time (see `Population`).

    /// What a month's decision made of a subscriber.
    enum Arm: UInt8 {
        case untouched = 0, treatment, control
    }

    /// The part's position among the world's parts.
    let index: Int
    let population: Population
    var probabilities: [Double] = []
    var margins: [Double] = []
    var clv: [Double] = []
    var valueIfRetained: [Double] = []
    var arm: [Arm] = []
    /// The offer (campaign index) of a treatment or control row; −1 otherwise.
    var offer: [Int16] = []
    var histogram = ValueHistogram()
    /// NBA candidates of this part and their rows.
    var candidates = FillCandidates()
    var candidateRows: [Int32] = []
    /// Baseline strategies' ranking entries of this part.
    var ranking: [RankEntry] = []
    var tally = MonthTally()

    init(index: Int, _ population: Population) {
        self.index = index
        self.population = population
    }

    /// Every row untouched by the month's decision, before a strategy marks its choices.
    func resetDecisions() {
        arm = [Arm](repeating: .untouched, count: population.count)
        offer = [Int16](repeating: -1, count: population.count)
    }
}

/// A subscriber in a baseline strategy's ranking: its priority (probability, value or a random
/// number) and where it lives.
struct RankEntry: Sendable {
    var priority: Double
    var id: Int64
    var part: Int32
    var row: Int32

    /// Priority descending, then id ascending: `CampaignFill`'s own order.
    static func before(_ a: RankEntry, _ b: RankEntry) -> Bool {
        a.priority != b.priority ? a.priority > b.priority : a.id < b.id
    }
}
