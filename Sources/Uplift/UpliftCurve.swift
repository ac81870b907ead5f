/// How well a ranking finds the subscribers a campaign actually moves: the Qini curve, the Qini
/// coefficient and uplift@k, computed exactly as scikit-uplift 0.5 computes `qini_curve`,
/// `qini_auc_score(y, uplift, treatment)` (negative effects allowed) and
/// `uplift_at_k(y, uplift, treatment, strategy='overall', k)` — so the numbers can be checked
/// against the library the uplift literature uses (the tests do, on the same data).
///
/// Convention of uplift modelling: the outcome is the *desired* one, so `retained` (did not
/// churn) is the positive outcome, and a positive uplift means treatment kept more subscribers.
///
/// Ranking: subscribers are ordered by score, highest first; equal scores keep scikit-uplift's
/// order (`np.argsort(score, kind="mergesort")[::-1]`: a stable ascending sort, reversed, so among
/// equal scores the later row comes first). The curve has a point only after each run of equal
/// scores (its "distinct-value thresholds"), so tied subscribers enter together and their order
/// does not matter to the Qini coefficient; it can matter to uplift@k, where the cut may fall inside
/// a run of ties.
public struct UpliftCurve: Sendable {
    /// One point of the Qini curve: after targeting the `targeted` best-ranked subscribers,
    /// `incrementalRetained` = retained among them in treatment − retained among them in control ×
    /// (treated among them / control among them): the extra subscribers kept, control scaled to the
    /// treated count.
    public struct Point: Sendable, Equatable {
        /// Subscribers targeted, best-ranked first.
        public var targeted: Int
        /// Extra subscribers kept among them (see the type).
        public var incrementalRetained: Double

        public init(targeted: Int, incrementalRetained: Double) {
            self.targeted = targeted
            self.incrementalRetained = incrementalRetained
        }
    }

    /// Rows in ranking order.
    private let scores: [Double]
    private let treated: [Bool]
    private let retained: [Bool]
    private let treatedCount: Int
    private let retainedCount: Int

    /// Ranks the subscribers: row i has `scores[i]` (the ranking score, e.g. the action's expected
    /// value), was treated when `treated[i]`, and was retained (did not churn) when `retained[i]`.
    /// - Throws: `UpliftCurveError` when the columns differ in length or a score is NaN or infinite
    ///   (an infinite expected value is a bug upstream, and NaN has no place in a ranking).
    public init(scores: [Double], treated: [Bool], retained: [Bool]) throws(UpliftCurveError) {
        guard scores.count == treated.count, scores.count == retained.count else {
            throw UpliftCurveError(.lengthMismatch, row: nil,
                                   "\(scores.count) scores, \(treated.count) treatment flags and \(retained.count) outcomes; one of each per subscriber")
        }
        if let bad = scores.firstIndex(where: { !$0.isFinite }) {
            throw UpliftCurveError(.nonFiniteScore, row: bad, "score \(scores[bad]) of row \(bad) is not a finite number")
        }
        if scores.count > Int(Int32.max) {
            throw UpliftCurveError(.lengthMismatch, row: nil, "\(scores.count) rows; at most \(Int32.max) are supported")
        }
        // Descending score, and descending row among equal scores: the mergesort-reversed order.
        var order = [Int32](unsafeUninitializedCapacity: scores.count) { buffer, initialized in
            for i in 0..<scores.count { buffer[i] = Int32(truncatingIfNeeded: i) }
            initialized = scores.count
        }
        scores.withUnsafeBufferPointer { s in
            order.sort { a, b in
                let x = s[Int(a)], y = s[Int(b)]
                return x > y || (x == y && a > b)
            }
        }
        self.scores = order.map { scores[Int($0)] }
        self.treated = order.map { treated[Int($0)] }
        self.retained = order.map { retained[Int($0)] }
        treatedCount = treated.reduce(0) { $0 + ($1 ? 1 : 0) }
        retainedCount = retained.reduce(0) { $0 + ($1 ? 1 : 0) }
    }

    /// Number of subscribers ranked.
    public var count: Int { scores.count }

    /// Whether scikit-uplift would compute anything: both arms and both outcomes must be present
    /// (its `check_is_binary` refuses a constant treatment or outcome column).
    public var isDefined: Bool {
        treatedCount > 0 && treatedCount < count && retainedCount > 0 && retainedCount < count
    }

    /// The Qini curve (`sklift.metrics.qini_curve`): (0, 0), then one point after each run of
    /// equal scores, ending at (count, total incremental retained). For a chart.
    public var qiniCurve: [Point] {
        var points = [Point(targeted: 0, incrementalRetained: 0)]
        var nTreated = 0.0, yTreated = 0.0, yControl = 0.0
        for i in 0..<scores.count {
            if treated[i] {
                nTreated += 1
                if retained[i] { yTreated += 1 }
            } else if retained[i] {
                yControl += 1
            }
            // A threshold where the next score differs (np.diff != 0), and at the end.
            if i + 1 == scores.count || scores[i + 1] != scores[i] {
                points.append(Self.point(targeted: i + 1, nTreated: nTreated, yTreated: yTreated, yControl: yControl))
            }
        }
        return points
    }

    /// The best possible Qini curve (`sklift.metrics.perfect_qini_curve`, negative effects
    /// included): retained treated subscribers first, then those who did not respond either way,
    /// then retained control subscribers (whom treating would have gained nothing or lost).
    public var perfectQiniCurve: [Point] {
        var treatedRetained = 0, treatedLost = 0, controlRetained = 0, controlLost = 0
        for i in 0..<treated.count {
            switch (treated[i], retained[i]) {
            case (true, true): treatedRetained += 1
            case (true, false): treatedLost += 1
            case (false, true): controlRetained += 1
            case (false, false): controlLost += 1
            }
        }
        // The perfect score is +1, 0, −1 for these three groups; a group is one threshold.
        var points = [Point(targeted: 0, incrementalRetained: 0)]
        var n = 0, nTreated = 0.0, yTreated = 0.0, yControl = 0.0
        if treatedRetained > 0 {
            n += treatedRetained
            nTreated += Double(treatedRetained)
            yTreated += Double(treatedRetained)
            points.append(Self.point(targeted: n, nTreated: nTreated, yTreated: yTreated, yControl: yControl))
        }
        if treatedLost + controlLost > 0 {
            n += treatedLost + controlLost
            nTreated += Double(treatedLost)
            points.append(Self.point(targeted: n, nTreated: nTreated, yTreated: yTreated, yControl: yControl))
        }
        if controlRetained > 0 {
            n += controlRetained
            yControl += Double(controlRetained)
            points.append(Self.point(targeted: n, nTreated: nTreated, yTreated: yTreated, yControl: yControl))
        }
        return points
    }

    /// The Qini coefficient (`sklift.metrics.qini_auc_score`): the area between the model's Qini
    /// curve and the random-targeting diagonal, divided by the same area for the perfect curve.
    /// 1 is a perfect ranking, 0 no better than random, negative worse than random.
    /// - Returns: nil where scikit-uplift raises: nobody, one arm only, one outcome only, or a
    ///   perfect curve with no area above the diagonal.
    public var qiniCoefficient: Double? {
        guard isDefined else { return nil }
        let perfect = perfectQiniCurve
        guard let last = perfect.last else { return nil }
        let baseline = Double(last.targeted) * last.incrementalRetained / 2
        let perfectArea = Self.area(perfect) - baseline
        guard perfectArea != 0 else { return nil }
        return (Self.area(qiniCurve) - baseline) / perfectArea
    }

    /// Uplift at k (`sklift.metrics.uplift_at_k(..., strategy='overall', k)`): among the first
    /// ⌊count × k⌋ ranked subscribers (whatever their arm), retention rate of the treated − retention
    /// rate of the control. A fraction, not percentage points; positive when treatment kept more.
    /// - Parameter k: the share of the base targeted, in (0, 1); 0.3 is uplift@30%.
    /// - Returns: nil where scikit-uplift raises or returns NaN: k outside (0, 1), `isDefined`
    ///   false, or no treated or no control subscriber among the first ⌊count × k⌋.
    public func upliftAtK(_ k: Double = 0.3) -> Double? {
        guard k > 0, k < 1, isDefined else { return nil }
        // Python's int(n_samples * k): the same double product, truncated.
        let size = Int(Double(count) * k)
        var nTreated = 0, yTreated = 0, nControl = 0, yControl = 0
        for i in 0..<min(size, count) {
            if treated[i] {
                nTreated += 1
                if retained[i] { yTreated += 1 }
            } else {
                nControl += 1
                if retained[i] { yControl += 1 }
            }
        }
        guard nTreated > 0, nControl > 0 else { return nil }
        return Double(yTreated) / Double(nTreated) - Double(yControl) / Double(nControl)
    }

    /// sklift's curve value, operation for operation: `y_trmnt − y_ctrl × (num_trmnt / num_ctrl)`,
    /// the ratio taken as 0 while no control subscriber has been reached.
    private static func point(targeted: Int, nTreated: Double, yTreated: Double, yControl: Double) -> Point {
        let nControl = Double(targeted) - nTreated
        let ratio = nControl != 0 ? nTreated / nControl : 0
        return Point(targeted: targeted, incrementalRetained: yTreated - yControl * ratio)
    }

    /// Trapezoidal area under a curve (`sklearn.metrics.auc`).
    private static func area(_ points: [Point]) -> Double {
        var sum = 0.0
        for i in points.indices.dropFirst() {
            let dx = Double(points[i].targeted - points[i - 1].targeted)
            sum += dx * (points[i].incrementalRetained + points[i - 1].incrementalRetained) / 2.0
        }
        return sum
    }
}

/// Columns that cannot be ranked: what is wrong and at which row.
public struct UpliftCurveError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable {
            case lengthMismatch = "length_mismatch", nonFiniteScore = "non_finite_score"
        }
        let base: Base

        /// The score, treatment and outcome columns have different lengths (or too many rows).
        public static let lengthMismatch = Code(base: .lengthMismatch)
        /// A score is NaN or infinite.
        public static let nonFiniteScore = Code(base: .nonFiniteScore)

        public var description: String { base.rawValue }
    }

    /// The kind of problem.
    public var code: Code
    /// The 0-based row concerned, when one is.
    public var row: Int?
    /// What was wrong.
    public var message: String

    init(_ code: Code, row: Int?, _ message: String) {
        self.code = code
        self.row = row
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
