#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A synthetic subscriber base that behaves like a mobile operator's: heavy-tailed usage and
/// bills, a prepaid majority, twelve regions under different competitive pressure, and a hidden
/// churn mechanism with the effects practitioners report (falling usage and bill, rising off-net
/// share, complaints, late payments, a contract or promotion ending, competitor pressure, short
/// tenure; long tenure protects). About 3% of subscribers churn within 30 days.
///
/// Reproducible: subscriber `i` depends only on the seed and `i` (each block of 4,096 subscribers
/// has its own generator), so any thread count or range split gives the same base.
public struct SyntheticBase: Sendable {
    /// The seed.
    public let seed: UInt64
    /// Id of subscriber 0; subscriber i has id `firstID + i`.
    public let firstID: Int64

    /// Subscribers per independently seeded block.
    public static let blockSize = 4096

    /// Competitor pressure of each region (0–1) and the price gap to the cheapest competitor there.
    static let regionPressure: [Double] = [0.15, 0.22, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.62, 0.70, 0.78, 0.85]
    static let regionPriceGap: [Double] = [-3, -2, -1, 0, 0, 1, 2, 2, 3, 4, 5, 6]
    static let regionWeight: [Double] = [0.16, 0.12, 0.11, 0.10, 0.09, 0.08, 0.08, 0.07, 0.06, 0.05, 0.04, 0.04]

    /// A base with `seed`, ids starting at `firstID`.
    public init(seed: UInt64 = 1, firstID: Int64 = 1_000_000_000) {
        self.seed = seed
        self.firstID = firstID
    }

    /// Generates subscribers `range` (indices, not ids), calling `body(id, profile, churned)` for
    /// each in order; `profile` follows `FeatureCatalogue` (NaN = missing) and is reused between calls.
    public func generate(_ range: Range<Int>, _ body: (Int64, UnsafeBufferPointer<Float>, Bool) throws -> Void) rethrows {
        var profile = [Float](repeating: .nan, count: FeatureCatalogue.count)
        var i = range.lowerBound
        while i < range.upperBound {
            let block = i / Self.blockSize
            var rng = Xoshiro256(seed: seed, stream: UInt64(block))
            // Starting inside a block replays the block's earlier subscribers: the number of
            // variates each draws varies (rejection sampling), so the stream cannot be skipped.
            let blockStart = block * Self.blockSize
            var j = blockStart
            while j < i {
                _ = profile.withUnsafeMutableBufferPointer { p in subscriber(&rng, p) }
                j += 1
            }
            let end = min(range.upperBound, blockStart + Self.blockSize)
            while i < end {
                let churned = profile.withUnsafeMutableBufferPointer { p in subscriber(&rng, p) }
                try profile.withUnsafeBufferPointer { try body(firstID + Int64(i), $0, churned) }
                i += 1
            }
        }
    }

    /// Draws one subscriber into `p`; returns whether they churn within 30 days.
    private func subscriber(_ r: inout Xoshiro256, _ p: UnsafeMutableBufferPointer<Float>) -> Bool {
        // Latent state, never stored: dissatisfaction drives declining usage, contact and churn.
        let dissatisfaction = max(0, r.normal() + 0.2)
        let engagement = r.lognormal(0, 0.5)
        let region = r.categorical(Self.regionWeight)
        let prepaid = r.uniform() < 0.62

        let tenure = prepaid ? r.gamma(1.1, 22) : r.gamma(1.6, 30)
        let contractEnd = r.uniform(-120, 720)
        let hasPromo = r.uniform() < 0.3
        let promoEnd = r.uniform(0, 180)
        let age = min(90, max(18, r.normal() * 14 + 42))
        let ageKnown = r.uniform() > 0.08
        let deviceAge = r.gamma(2, 9)
        let services = 1 + r.poisson(prepaid ? 0.3 : 1.2)
        let lines = 1 + r.poisson(prepaid ? 0.1 : 0.6)

        let arpu = (prepaid ? r.lognormal(2.3, 0.7) : r.lognormal(3.3, 0.45)) * pow(engagement, 0.3)
        let arpuTrend = r.normal() * 0.12 - 0.09 * dissatisfaction
        let balance = r.lognormal(1.5, 1.0)
        let topups = r.poisson(2.2 * engagement)
        let topupAmount = Double(topups) * r.lognormal(2.3, 0.4)
        let late = r.poisson(0.2 + 0.3 * dissatisfaction)

        let calls = (r.lognormal(3.8, 0.8) * engagement).rounded()
        let minutes = calls * r.lognormal(0.9, 0.5)
        let callsTrend = r.normal() * 0.25 - 0.16 * dissatisfaction
        let sms = r.lognormal(2.0, 1.2).rounded()
        let smsTrend = r.normal() * 0.3 - 0.08 * dissatisfaction
        let data = r.lognormal(7.5, 1.3) * engagement
        let dataTrend = r.normal() * 0.25 - 0.12 * dissatisfaction
        let offnet = min(1, r.beta(2, 5) + 0.06 * dissatisfaction)
        let roaming = r.poisson(0.4)
        let inactive = r.exponential(prepaid ? 3 : 1) * (1 + dissatisfaction)
        let activeDays = max(0, 30 - Double(r.poisson(prepaid ? 6 : 2)) - inactive.rounded())

        let support = r.poisson(0.3 + 0.45 * dissatisfaction)
        let complaints = r.poisson(0.05 + 0.18 * dissatisfaction)
        let tickets = r.poisson(0.05 + 0.2 * Double(complaints))
        let dropped = r.beta(1.5, 80) * (1 + Self.regionPressure[region])
        let outage = r.gamma(0.5, 2)

        let tariffViews = r.poisson(0.3 + 0.9 * dissatisfaction)
        let portInquiries = r.poisson(0.01 + 0.12 * dissatisfaction * dissatisfaction)
        let offers = r.poisson(0.1)
        let pressure = min(1, max(0, Self.regionPressure[region] + r.normal() * 0.05))
        let priceGap = Self.regionPriceGap[region] + r.normal() * 4

        // The hidden churn mechanism.
        var z = -7.2
        z += 0.45 * dissatisfaction
        z += tenure < 6 ? 0.6 : 0
        z -= 0.02 * min(tenure, 72)
        z -= 2.5 * arpuTrend + 1.2 * callsTrend + 0.5 * smsTrend + 0.8 * dataTrend
        z += 1.8 * offnet
        z += 0.25 * Double(support) + 0.45 * Double(complaints) + (prepaid ? 0 : 0.35 * Double(late))
        z += !prepaid && contractEnd > -30 && contractEnd < 60 ? 1.3 : 0
        z += hasPromo && promoEnd < 30 ? 0.5 : 0
        z += 0.35 * Double(tariffViews) + 0.9 * Double(portInquiries)
        z += 1.6 * pressure + 0.04 * priceGap
        z += prepaid ? 0.4 : 0
        z += 8 * dropped + 0.03 * min(inactive, 30)
        z -= 0.15 * Double(services - 1) + 0.2 * Double(lines - 1)
        let churned = r.uniform() < 1 / (1 + exp(-z))

        let values: [Double] = [
            tenure.rounded(), prepaid ? 1 : 0, prepaid ? .nan : contractEnd.rounded(), hasPromo ? promoEnd.rounded() : .nan,
            Double(region), deviceAge.rounded(), Double(services), Double(lines), ageKnown ? age.rounded() : .nan,
            arpu, arpuTrend, prepaid ? balance : .nan, prepaid ? Double(topups) : 0, prepaid ? topupAmount : 0, prepaid ? .nan : Double(late),
            calls, minutes, callsTrend, sms, smsTrend, data, dataTrend, offnet, Double(roaming), activeDays, inactive.rounded(),
            Double(support), Double(complaints), Double(tickets), dropped, outage,
            Double(tariffViews), Double(portInquiries), Double(offers),
            pressure, priceGap,
        ]
        for (k, v) in values.enumerated() { p[k] = Float(v) }
        // Usage feeds occasionally missing from the warehouse (~0.5% per usage column).
        for k in 15...25 where r.uniform() < 0.005 { p[k] = .nan }
        return churned
    }
}

/// xoshiro256** seeded through splitmix64 from (seed, stream): small, fast and reproducible.
struct Xoshiro256 {
    private var s0, s1, s2, s3: UInt64
    private var spareNormal: Double? = nil

    init(seed: UInt64, stream: UInt64) {
        var x = seed ^ (stream &* 0xD1B5_4A32_D192_ED03)
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    @inline(__always) mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
    @inline(__always) mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * uniform() }

    /// Standard normal (Marsaglia polar; pairs are used in turn).
    mutating func normal() -> Double {
        if let s = spareNormal { spareNormal = nil; return s }
        while true {
            let u = 2 * uniform() - 1, v = 2 * uniform() - 1
            let q = u * u + v * v
            if q > 0 && q < 1 {
                let f = (-2 * log(q) / q).squareRoot()
                spareNormal = v * f
                return u * f
            }
        }
    }

    mutating func lognormal(_ mu: Double, _ sigma: Double) -> Double { exp(mu + sigma * normal()) }
    mutating func exponential(_ mean: Double) -> Double { -mean * log(1 - uniform()) }

    /// Gamma(shape k, scale θ) by Marsaglia–Tsang (boosted for k < 1).
    mutating func gamma(_ k: Double, _ theta: Double) -> Double {
        if k < 1 { return gamma(k + 1, theta) * pow(uniform(), 1 / k) }
        let d = k - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            let x = normal()
            let v = pow(1 + c * x, 3)
            if v <= 0 { continue }
            let u = uniform()
            if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return d * v * theta }
        }
    }

    mutating func beta(_ a: Double, _ b: Double) -> Double {
        let x = gamma(a, 1), y = gamma(b, 1)
        return x / (x + y)
    }

    /// Poisson(λ): multiplication method below 30, normal approximation above.
    mutating func poisson(_ lambda: Double) -> Int {
        if lambda >= 30 { return max(0, Int((lambda + lambda.squareRoot() * normal()).rounded())) }
        let l = exp(-lambda)
        var k = 0
        var p = uniform()
        while p > l { k += 1; p *= uniform() }
        return k
    }

    mutating func categorical(_ weights: [Double]) -> Int {
        var u = uniform()
        for (i, w) in weights.enumerated() {
            u -= w
            if u < 0 { return i }
        }
        return weights.count - 1
    }
}
