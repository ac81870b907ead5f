/// A two-sided confidence interval `[low, high]`.
///
/// Encoded as the two-element JSON array `[low, high]`, the shape the campaign report's
/// `uplift_ci95_pp` has.
public struct ConfidenceInterval: Sendable, Equatable, Codable {
    /// The lower end.
    public var low: Double
    /// The upper end.
    public var high: Double

    /// An interval from `low` to `high`.
    public init(low: Double, high: Double) {
        self.low = low
        self.high = high
    }

    /// The standard normal quantile for a two-sided 95% interval, Φ⁻¹(0.975), to full double
    /// precision (1.96 would move published four-decimal values in the last place).
    public static let z95 = 1.959963984540054

    /// Whether `value` lies within the interval, ends included.
    public func contains(_ value: Double) -> Bool { low <= value && value <= high }

    /// Both ends multiplied by `factor` (100 turns a difference of rates into percentage points).
    public func scaled(by factor: Double) -> ConfidenceInterval {
        ConfidenceInterval(low: low * factor, high: high * factor)
    }

    public init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        low = try c.decode(Double.self)
        high = try c.decode(Double.self)
        guard c.isAtEnd else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "a confidence interval is [low, high]")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(low)
        try c.encode(high)
    }
}
