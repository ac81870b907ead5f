/// The strategy matrix: for each value tier × risk band cell, the offers that may be used there.
/// Absent and empty cells mean "no action". Held as one list of offer indices per cell, sorted by
/// offer order, so that deciding reads two arrays and never hashes a name.
public struct StrategyMatrix: Sendable, Equatable {
    /// Number of value tiers (`value_tiers.count + 1`).
    public let tierCount: Int
    /// `cells[tier * 4 + band]`: offer indices in file order of the offers.
    private var cells: [[Int]]

    /// An empty matrix (no action anywhere) of `tierCount` tiers.
    public init(tierCount: Int) {
        self.tierCount = max(1, tierCount)
        cells = Array(repeating: [], count: self.tierCount * RiskBand.allCases.count)
    }

    /// The offers allowed in the cell (empty for no action, and for a tier out of range).
    public func offers(tier: Int, band: RiskBand) -> [Int] {
        guard tier >= 0 && tier < tierCount else { return [] }
        return cell(tier * RiskBand.allCases.count + Int(band.rawValue))
    }

    func cell(_ i: Int) -> [Int] { cells.indices.contains(i) ? cells[i] : [] }

    /// Sets the offers of a cell (sorted and deduplicated); ignored for a tier out of range.
    public mutating func set(tier: Int, band: RiskBand, offers: [Int]) {
        guard tier >= 0 && tier < tierCount else { return }
        cells[tier * RiskBand.allCases.count + Int(band.rawValue)] = Array(Set(offers)).sorted()
    }

    /// Whether any cell allows an offer.
    public var isEmpty: Bool { cells.allSatisfy(\.isEmpty) }
}
