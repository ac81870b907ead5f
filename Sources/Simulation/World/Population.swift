import Retention
import SubscriberProfiles

/// One part of the simulated base: profiles held column by column (the layout the scorer
/// reads), with each subscriber's id, hidden traits and contact history in parallel arrays.
/// Churners are removed by moving the last row into their place, so rows stay dense.
///
/// The base is split into a few populations that are scored, decided and advanced on their own
/// threads; a subscriber's population never matters to the result (every draw is keyed by id,
/// `WorldDraw`), only to the speed.
final class Population: @unchecked Sendable {
    // @unchecked: a population is only touched by one thread at a time — the driver between
    // phases, and inside a phase the one `concurrentPerform` iteration that owns its index.

    let featureCount: Int
    private(set) var count = 0
    /// Rows the columns have room for (their stride).
    private(set) var capacity: Int
    /// Feature-major: feature `j` of row `r` at `values[j * capacity + r]`.
    private(set) var values: [Float]
    private(set) var ids: [Int64] = []
    var traits: [HiddenTraits] = []
    /// Contact histories (empty arrays allocate nothing, so the uncontacted cost 16 bytes each).
    var histories: [ContactHistory] = []
    /// Whether the subscriber was in the base at month 0 (for the cohort's retention rate).
    private(set) var initial: [Bool] = []

    init(featureCount: Int = FeatureCatalogue.count, capacity: Int) {
        self.featureCount = featureCount
        self.capacity = max(1024, capacity)
        values = [Float](repeating: .nan, count: featureCount * self.capacity)
        ids.reserveCapacity(self.capacity)
        traits.reserveCapacity(self.capacity)
        histories.reserveCapacity(self.capacity)
        initial.reserveCapacity(self.capacity)
    }

    /// A copy that shares nothing mutable with `other` (each strategy starts from the same base).
    init(copying other: Population) {
        featureCount = other.featureCount
        count = other.count
        capacity = other.capacity
        values = other.values
        ids = other.ids
        traits = other.traits
        histories = other.histories
        initial = other.initial
    }

    @inline(__always)
    func value(_ row: Int, _ feature: Int) -> Float {
        feature >= 0 ? values[feature * capacity + row] : .nan
    }

    @inline(__always)
    func set(_ row: Int, _ feature: Int, _ v: Float) {
        if feature >= 0 { values[feature * capacity + row] = v }
    }

    /// The profile of `row` as the world reads it.
    func view(_ row: Int) -> ProfileView { ProfileView { self.value(row, $0) } }

    /// Adds a subscriber.
    func append(id: Int64, profile: UnsafeBufferPointer<Float>, traits t: HiddenTraits, initial isInitial: Bool) {
        if count == capacity { grow() }
        let r = count
        for j in 0..<min(featureCount, profile.count) { values[j * capacity + r] = profile[j] }
        ids.append(id)
        traits.append(t)
        histories.append(ContactHistory())
        initial.append(isInitial)
        count += 1
    }

    /// Removes `row`; the last row takes its place.
    func remove(_ row: Int) {
        let last = count - 1
        if row != last {
            for j in 0..<featureCount { values[j * capacity + row] = values[j * capacity + last] }
            ids[row] = ids[last]
            traits[row] = traits[last]
            histories[row] = histories[last]
            initial[row] = initial[last]
        }
        ids.removeLast()
        traits.removeLast()
        histories.removeLast()
        initial.removeLast()
        count -= 1
    }

    /// A quarter more room; columns are copied once.
    private func grow() {
        let newCapacity = capacity + max(1024, capacity / 4)
        var grown = [Float](repeating: .nan, count: featureCount * newCapacity)
        for j in 0..<featureCount {
            for r in 0..<count { grown[j * newCapacity + r] = values[j * capacity + r] }
        }
        values = grown
        capacity = newCapacity
    }

    /// Calls `body` with the base of the columns (feature `j` starts at `base + j * capacity`).
    func withColumns<T>(_ body: (UnsafePointer<Float>) throws -> T) rethrows -> T? {
        try values.withUnsafeBufferPointer { b in try b.baseAddress.map(body) }
    }
}
