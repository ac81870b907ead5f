/// A subscriber's top churn reasons: up to four feature indices into `FeatureCatalogue`, largest
/// contribution first, positive contributions only (what the scoring publishes, top three).
///
/// Stored inline (four `Int16`) rather than as an array so that deciding for ten million
/// subscribers allocates nothing per subscriber. Negative indices mean "no reason" and are
/// skipped, as in the cluster's score rows (−1 pads a row with fewer reasons).
public struct TopReasons: Sendable, Hashable, RandomAccessCollection, ExpressibleByArrayLiteral {
    /// The most reasons kept; further ones are dropped.
    public static let capacity = 4

    private var r0: Int16 = -1, r1: Int16 = -1, r2: Int16 = -1, r3: Int16 = -1
    /// Number of reasons held.
    public private(set) var count = 0

    /// No reasons.
    public init() {}

    /// The first `capacity` non-negative indices of `features` that fit an `Int16`, in order.
    public init(_ features: some Sequence<Int>) {
        for f in features where f >= 0 && f <= Int(Int16.max) {
            guard count < Self.capacity else { break }
            append(Int16(f))
        }
    }

    /// The cluster's score-row form: three `Int16` indices, −1 for none.
    public init(_ a: Int16, _ b: Int16, _ c: Int16) {
        self.init([Int(a), Int(b), Int(c)].lazy.filter { $0 >= 0 })
    }

    public init(arrayLiteral elements: Int...) { self.init(elements) }

    private mutating func append(_ f: Int16) {
        switch count {
        case 0: r0 = f
        case 1: r1 = f
        case 2: r2 = f
        default: r3 = f
        }
        count += 1
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    /// The reason at `i` (0 is the largest); −1 outside `0..<count`, never a trap.
    public subscript(i: Int) -> Int {
        guard i >= 0 && i < count else { return -1 }
        switch i {
        case 0: return Int(r0)
        case 1: return Int(r1)
        case 2: return Int(r2)
        default: return Int(r3)
        }
    }

    /// Whether `feature` is among the reasons.
    public func contains(feature: Int) -> Bool {
        for i in 0..<count where self[i] == feature { return true }
        return false
    }
}
