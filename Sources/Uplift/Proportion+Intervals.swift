
extension Proportion {
    /// The Wilson score interval for the rate (Wilson 1927), without continuity correction.
    ///
    /// Why Wilson rather than p ± z·√(p(1−p)/n): it never leaves [0, 1], and at 0 or n events it is
    /// still an interval of positive width (0/20 churned does not mean "certainly 0%"). It is the
    /// building block of Newcombe's interval for a difference.
    /// - Parameter z: the normal quantile; `ConfidenceInterval.z95` for 95%.
    /// - Returns: nil when the counts are not a proportion (see `isEstimable`).
    public func wilsonInterval(z: Double = ConfidenceInterval.z95) -> ConfidenceInterval? {
        guard isEstimable else { return nil }
        let n = Double(subscribers)
        let p = rate
        let z2 = z * z
        let centre = 2 * n * p + z2
        let spread = z * (z2 + 4 * n * p * (1 - p)).squareRoot()
        let denominator = 2 * (n + z2)
        // Clamped: at p = 0 or 1 one end is exactly 0 or 1 mathematically; rounding must not put it
        // a hair outside.
        return ConfidenceInterval(low: max(0, (centre - spread) / denominator),
                                  high: min(1, (centre + spread) / denominator))
    }
}

/// Confidence intervals for the difference `a.rate − b.rate` of two independent proportions
/// (control churn minus treatment churn, for uplift).
public enum ProportionDifference {
    /// Newcombe's hybrid score interval (Newcombe 1998, "Interval estimation for the difference
    /// between independent proportions", Statistics in Medicine 17:873–890, method 10).
    ///
    /// With Wilson intervals (l₁, u₁) for a and (l₂, u₂) for b, and θ = p₁ − p₂:
    /// `[θ − √((p₁ − l₁)² + (u₂ − p₂)²), θ + √((u₁ − p₁)² + (p₂ − l₂)²)]`.
    ///
    /// Why this one for uplift: campaign cells are often small (a few dozen control subscribers per
    /// offer and channel) and churn rates sit near 0 (2–10% a month). There the Wald interval's
    /// coverage collapses — at 0 events in both arms it has zero width, claiming certainty — and it
    /// can leave [−1, 1]; Newcombe's interval keeps close to its nominal 95% coverage in
    /// Newcombe's evaluation, stays within [−1, 1], and needs no iteration.
    /// - Returns: nil when either side is not a proportion (nobody in an arm, say).
    public static func newcombeInterval(_ a: Proportion, minus b: Proportion,
                                        z: Double = ConfidenceInterval.z95) -> ConfidenceInterval? {
        guard let wa = a.wilsonInterval(z: z), let wb = b.wilsonInterval(z: z) else { return nil }
        let pa = a.rate, pb = b.rate
        let theta = pa - pb
        let below = ((pa - wa.low) * (pa - wa.low) + (wb.high - pb) * (wb.high - pb)).squareRoot()
        let above = ((wa.high - pa) * (wa.high - pa) + (pb - wb.low) * (pb - wb.low)).squareRoot()
        return ConfidenceInterval(low: theta - below, high: theta + above)
    }

    /// The Wald interval `θ ± z·√(p₁(1−p₁)/n₁ + p₂(1−p₂)/n₂)` (Newcombe's method 1).
    ///
    /// Kept for reference only — it is what most readers compute by hand, so a report shows it next
    /// to Newcombe's to explain a difference — but it undercovers at small counts and rates near 0
    /// (see `newcombeInterval`), so it is never the headline interval.
    /// - Returns: nil when either side is not a proportion.
    public static func waldInterval(_ a: Proportion, minus b: Proportion,
                                    z: Double = ConfidenceInterval.z95) -> ConfidenceInterval? {
        guard a.isEstimable, b.isEstimable else { return nil }
        let pa = a.rate, pb = b.rate
        let se = (pa * (1 - pa) / Double(a.subscribers) + pb * (1 - pb) / Double(b.subscribers)).squareRoot()
        return ConfidenceInterval(low: pa - pb - z * se, high: pa - pb + z * se)
    }
}
