import SubscriberProfiles
import TreeModel

/// Risk bands: what a campaign selects on. Thresholds on the churn probability.
public enum RiskBand: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case low = 0, medium, high, veryHigh

    /// Lower probability bounds of medium, high and very high (the base churns ~3% a month).
    public static let thresholds: [Double] = [0.05, 0.15, 0.35]

    public init(probability p: Double) {
        if p >= Self.thresholds[2] { self = .veryHigh } else if p >= Self.thresholds[1] { self = .high } else if p >= Self.thresholds[0] { self = .medium } else { self = .low }
    }

    public var description: String {
        switch self {
        case .low: "low"
        case .medium: "medium"
        case .high: "high"
        case .veryHigh: "very_high"
        }
    }
}

/// The model every shard of the cluster scores with: compiled once per worker from the bytes the
/// coordinator distributes, with its version id, and the mapping from the model's features to
/// the profile columns.
public final class ScoringModel: Sendable {
    /// Identifies the bytes (a 64-bit FNV-1a of them): every shard reports the version it scored with.
    public let version: String
    /// Where the coordinator loaded it from.
    public let source: String
    public let forest: CompiledForest
    public let explainer: TreeExplainer
    /// Path attribution tabulated per leaf: jobs and live queries explain with it (nil for a model
    /// too big to tabulate, which falls back to `explainer`).
    public let attribution: LeafAttribution?
    /// The model's feature names, in model order.
    public let featureNames: [String]
    /// For each model feature, the profile column (`FeatureCatalogue` index) it reads.
    public let profileColumn: [Int]
    /// The profile column of the home region, if the catalogue has one.
    let regionColumn: Int?

    /// Parses and compiles model bytes.
    /// - Throws: `ModelError` for a model that cannot be loaded, or whose features are not profile features.
    public init(bytes: [UInt8], source: String) throws(ModelError) {
        let model = try TreeEnsemble.parse(bytes, file: source)
        forest = try CompiledForest(model)
        explainer = TreeExplainer(model)
        attribution = LeafAttribution(forest)
        featureNames = model.featureNames
        version = Self.version(of: bytes)
        self.source = source
        var columns: [Int] = []
        let catalogue = FeatureCatalogue.names
        for (i, name) in model.featureNames.enumerated() {
            if let c = catalogue.firstIndex(of: name) {
                columns.append(c)
            } else if name == "f\(i)", i < catalogue.count {
                columns.append(i)  // a model trained without names reads the catalogue in order
            } else {
                let near = NameSuggestions.nearest(to: name, among: catalogue).map { "'\($0)'" }.joined(separator: ", ")
                throw ModelError(.invalidInput, file: source, "model feature '\(name)' is not a subscriber profile feature (closest: \(near); see docs/features.md)")
            }
        }
        profileColumn = columns
        regionColumn = catalogue.firstIndex(of: "region")
    }

    /// The version id of model bytes.
    public static func version(of bytes: [UInt8]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        let hex = String(h, radix: 16)
        return "m-" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}
