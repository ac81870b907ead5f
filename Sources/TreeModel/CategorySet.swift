/// The categories of one categorical split, and how the library that wrote the model reads an
/// input value as a category.
///
/// Inputs are category codes given as floats, as both libraries take them. A value that is not
/// NaN is read as a category (or as none, see `Reading`); the categories in the set go to one child
/// (`inSetGoesLeft`), every other value — a category not in the set, or a value that is no
/// category at all — goes to the other. NaN follows the node's missing-value rule
/// (`DecisionTree.missing`, always `.nanDefault` for a categorical split), like a numeric split.
///
/// Established against the libraries themselves (`Tests/Parity/make_categorical_fixtures.py`
/// predicts these cases with XGBoost 3.2 and LightGBM 4.7 on models edited to contain category 0):
///
/// | input            | XGBoost (`common::Decision`)   | LightGBM (`Tree::CategoricalDecision`) |
/// |------------------|--------------------------------|----------------------------------------|
/// | NaN              | `default_left` side            | right, whatever `decision_type` says   |
/// | 2.7              | category 2                     | category 2                             |
/// | −0.0             | category 0                     | category 0                             |
/// | −0.5             | none → left                    | category 0                             |
/// | −1, −3, −∞       | none → left                    | none → right                           |
/// | beyond the set   | left                           | right                                  |
/// | ≥ 2^24 / ≥ 2^31, +∞ | none → left                 | none → right                           |
public struct CategorySet: Sendable, Equatable {
    /// How an input value becomes a category.
    public enum Reading: UInt8, Sendable {
        /// XGBoost: a value below 0 or at or above 2^24 is no category; any other is truncated
        /// toward zero (2.7 is category 2, −0.0 is 0, −0.5 is none).
        case xgboost
        /// LightGBM: the value is truncated toward zero to a 32-bit integer and a negative result is
        /// no category: x ≤ −1 is none, −0.5 is category 0, and x ≥ 2^31 (whose conversion gives
        /// `INT_MIN` on x86) is none.
        case lightgbm

        /// The category `x` reads as, or nil when it reads as none (NaN reads as none; callers route
        /// NaN by the missing-value rule before asking).
        @inlinable
        public func category(of x: Float) -> Int? {
            switch self {
            case .xgboost:
                guard x >= 0, x < 16_777_216 else { return nil }
            case .lightgbm:
                guard x > -1, x < 2_147_483_648 else { return nil }
            }
            return Int(x)
        }
    }

    /// Bit `c % 32` of `words[c / 32]` is set when category `c` is in the set.
    public var words: [UInt32]
    /// Whether the categories in the set go to the left child (LightGBM) or the right (XGBoost).
    public var inSetGoesLeft: Bool
    /// How an input value becomes a category.
    public var reading: Reading

    /// A set given as its bitset words.
    public init(words: [UInt32], inSetGoesLeft: Bool, reading: Reading) {
        self.words = words
        self.inSetGoesLeft = inSetGoesLeft
        self.reading = reading
    }

    /// A set given as its categories (each in `0..<ModelLimits.maximumCategories`; the caller checks).
    public init(categories: [Int], inSetGoesLeft: Bool, reading: Reading) {
        let top = categories.max() ?? -1
        var words = [UInt32](repeating: 0, count: top / 32 + 1)
        for c in categories where c >= 0 { words[c >> 5] |= 1 << UInt32(c & 31) }
        self.init(words: words, inSetGoesLeft: inSetGoesLeft, reading: reading)
    }

    /// Whether `category` is in the set.
    @inlinable
    public func contains(_ category: Int) -> Bool {
        guard category >= 0, category >> 5 < words.count else { return false }
        return (words[category >> 5] >> UInt32(category & 31)) & 1 != 0
    }

    /// The categories in the set, ascending.
    public var categories: [Int] {
        var out: [Int] = []
        for (w, word) in words.enumerated() where word != 0 {
            for b in 0..<32 where (word >> UInt32(b)) & 1 != 0 { out.append(w * 32 + b) }
        }
        return out
    }

    /// Whether a value that is not NaN goes to the left child.
    @inlinable
    public func goesLeft(_ x: Float) -> Bool {
        guard let c = reading.category(of: x), contains(c) else { return !inSetGoesLeft }
        return inSetGoesLeft
    }
}
