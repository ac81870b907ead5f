import WireFormat

/// What a rescoring job explains (`churngrid rescore --reasons … --explain-method …`).
public struct RescoreOptions: Sendable, Equatable, WireCodable {
    /// Which subscribers get their top-3 reasons stored.
    public enum Reasons: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        /// Everyone (the default): path attribution tabulated per leaf costs about the walk.
        case all = 0
        /// Band medium or above only (what jobs stored before every subscriber was explained).
        case atRisk = 1
        /// No one: the scores alone (for measuring what reasons cost).
        case none = 2

        public var description: String {
            switch self {
            case .all: "all"
            case .atRisk: "at-risk"
            case .none: "none"
            }
        }

        /// The setting named `name` ("all", "at-risk", "none"), nil for anything else.
        public init?(name: String) {
            guard let value = Self.allCases.first(where: { $0.description == name }) else { return nil }
            self = value
        }
    }

    public var reasons: Reasons
    /// Path attribution (`approx`, what live queries return by default) or exact TreeSHAP.
    public var method: ExplainMode

    /// Reasons for everyone by path attribution: what `startRescore()` runs.
    public static let standard = RescoreOptions(reasons: .all, method: .approx)

    public init(reasons: Reasons = .all, method: ExplainMode = .approx) {
        self.reasons = reasons
        self.method = method
    }

    /// The lowest probability whose subscriber gets reasons.
    var reasonsFrom: Double {
        switch reasons {
        case .all: 0
        case .atRisk: RiskBand.thresholds[0]
        case .none: .infinity
        }
    }

    public func encode(to w: inout WireWriter) {
        w.write(reasons.rawValue)
        w.write(method)
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        guard let reasons = Reasons(rawValue: try r.read()) else {
            throw WireError(offset: at, expected: "a reasons setting (0 all, 1 at-risk, 2 none)")
        }
        self.reasons = reasons
        method = try r.read()
    }
}
