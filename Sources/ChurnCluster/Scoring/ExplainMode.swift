import TreeModel
import WireFormat

/// How a live query computes a subscriber's reasons.
public enum ExplainMode: UInt8, Sendable, CaseIterable, CustomStringConvertible, WireCodable {
    /// Per-path attribution (XGBoost's `approx_contribs`): what jobs store, so both agree.
    case approx = 0
    /// Exact path-dependent TreeSHAP: slower, and the contributions add up to the margin exactly.
    case exact = 1

    public var description: String {
        switch self {
        case .approx: "approx"
        case .exact: "exact"
        }
    }

    /// The mode named `name` ("approx" or "exact"), nil for anything else.
    public init?(name: String) {
        guard let mode = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = mode
    }

    var method: TreeExplainer.Method {
        switch self {
        case .approx: .approximate
        case .exact: .exact
        }
    }

    public func encode(to w: inout WireWriter) { w.write(rawValue) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        guard let mode = ExplainMode(rawValue: try r.read()) else { throw WireError(offset: at, expected: "an explain mode (0 approx, 1 exact)") }
        self = mode
    }
}
