import Foundation

/// A mergeable histogram of subscribers' values if retained (`V`), from which the value tiers'
/// cut values are read. The population is spread over shards: each shard fills one, the
/// coordinator merges them (`merge`) and reads the quantiles.
///
/// Bins are fixed and the same everywhere, so merging is adding counts: `binsPerDecade` (200)
/// log-spaced bins per power of ten from `minValue` (0.01) to `maxValue` (1e9), one underflow bin
/// for values in (0, 0.01) and one overflow bin for values ≥ 1e9. Values ≤ 0 (and NaN) are
/// counted exactly as zeros: subscribers without revenue are common and must not blur the lowest cut.
///
/// **Precision.** A bin spans a factor of `10^(1/200)` (a relative width of 1.16%); `quantile`
/// answers the geometric middle of the bin holding the exact quantile, so within a relative
/// error of `relativePrecision` = `10^(1/400) − 1` ≈ 0.58% of it, for values in [0.01, 1e9).
/// Zero quantiles are exact; below 0.01 the answer is 0.01's bin edge, from 1e9 up it is 1e9.
public struct ValueHistogram: Sendable, Equatable {
    /// Bins per power of ten.
    public static let binsPerDecade = 200
    /// The lower edge of the first regular bin.
    public static let minValue = 0.01
    /// The upper edge of the last regular bin.
    public static let maxValue = 1e9
    /// The largest relative error of `quantile` for values in [minValue, maxValue).
    public static let relativePrecision = pow(10, 0.5 / Double(binsPerDecade)) - 1
    /// Regular bins (11 decades × 200).
    static let regularBins = 11 * binsPerDecade
    /// Tag of the wire form (format and bin layout): a histogram from another layout is refused.
    static let wireTag: UInt64 = 0x5648_0001_00C8_0898  // "VH", version 1, 200 per decade, 2200 bins

    /// `counts[0]` underflow, `counts[1...regularBins]` regular, `counts[regularBins + 1]` overflow.
    private var counts: [UInt64]
    /// Values ≤ 0 or NaN.
    public private(set) var zeros: UInt64 = 0
    /// All values added.
    public private(set) var count: UInt64 = 0

    /// An empty histogram.
    public init() { counts = Array(repeating: 0, count: Self.regularBins + 2) }

    /// Adds one value.
    public mutating func add(_ v: Double) {
        count &+= 1
        guard v > 0 else { zeros &+= 1; return }
        counts[Self.bin(of: v)] &+= 1
    }

    /// Adds the counts of `other` (another shard's histogram).
    public mutating func merge(_ other: ValueHistogram) {
        for i in counts.indices { counts[i] &+= other.counts[i] }
        zeros &+= other.zeros
        count &+= other.count
    }

    static func bin(of v: Double) -> Int {
        if v < minValue { return 0 }
        if v >= maxValue { return regularBins + 1 }
        let i = Int((log10(v) - log10(minValue)) * Double(binsPerDecade))
        return 1 + min(max(i, 0), regularBins - 1)
    }

    /// The value at quantile `q` (clamped to [0, 1]; NaN is 0): the nearest-rank quantile, the
    /// `max(1, ⌈q n⌉)`-th smallest value, within `relativePrecision`. 0 for an empty histogram.
    public func quantile(_ q: Double) -> Double {
        guard count > 0 else { return 0 }
        let qc = q.isNaN ? 0 : min(max(q, 0), 1)
        let rank = max(1, UInt64((qc * Double(count)).rounded(.up)))
        var seen = zeros
        if rank <= seen { return 0 }
        for (i, c) in counts.enumerated() {
            seen &+= c
            if rank <= seen {
                if i == 0 { return Self.minValue }
                if i == Self.regularBins + 1 { return Self.maxValue }
                return Self.minValue * pow(10, (Double(i - 1) + 0.5) / Double(Self.binsPerDecade))
            }
        }
        return Self.maxValue
    }

    /// The wire form: the tag, the count of zeros, then the bin counts, as `UInt64`s.
    public var encoded: [UInt64] { [Self.wireTag, zeros] + counts }

    /// The wire form as little-endian bytes.
    public var encodedBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encoded.count * 8)
        for w in encoded { withUnsafeBytes(of: w.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    /// A histogram from its wire form.
    /// - Throws: `ValueHistogramError` when the length or tag is not this layout's.
    public init(encoded words: [UInt64]) throws(ValueHistogramError) {
        guard words.count == Self.regularBins + 4, words[0] == Self.wireTag else {
            throw ValueHistogramError(problem: "a value histogram needs \(Self.regularBins + 4) words starting with tag \(String(Self.wireTag, radix: 16)); got \(words.count) words" + (words.first.map { ", tag \(String($0, radix: 16))" } ?? ""))
        }
        zeros = words[1]
        counts = Array(words[2...])
        var n = zeros
        for c in counts {
            let (sum, overflow) = n.addingReportingOverflow(c)
            guard !overflow else { throw ValueHistogramError(problem: "the bin counts overflow") }
            n = sum
        }
        count = n
    }

    /// A histogram from its little-endian byte wire form.
    /// - Throws: `ValueHistogramError` when the bytes are not a whole number of words of this layout.
    public init(encodedBytes bytes: [UInt8]) throws(ValueHistogramError) {
        guard bytes.count % 8 == 0 else { throw ValueHistogramError(problem: "\(bytes.count) bytes is not a whole number of 8-byte words") }
        var words: [UInt64] = []
        words.reserveCapacity(bytes.count / 8)
        for k in stride(from: 0, to: bytes.count, by: 8) {
            var w: UInt64 = 0
            for j in 0..<8 { w |= UInt64(bytes[k + j]) << (8 * j) }
            words.append(w)
        }
        try self.init(encoded: words)
    }
}

/// A value histogram's wire form that cannot be read.
public struct ValueHistogramError: Error, Sendable, Equatable, CustomStringConvertible {
    public var problem: String
    public var description: String { problem }
}
