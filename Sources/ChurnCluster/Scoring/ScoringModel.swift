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
    /// For each model feature, the profile column it reads: a `FeatureCatalogue` index, or
    /// `FeatureCatalogue.count + k` for the k-th of the worker's extra columns.
    public let profileColumn: [Int]
    /// The profile column of the home region, if the catalogue has one.
    let regionColumn: Int?

    /// Parses and compiles model bytes. Features the built-in catalogue lacks read the extra
    /// columns named by `extras` (a worker's layout), or, when `extras` is nil, are laid out in
    /// model order (a coordinator, which only checks and distributes the model).
    /// - Throws: `ModelError` for a model that cannot be loaded, or that reads a feature `extras` lacks.
    /// `tabulate: false` leaves the path attribution to `explainer` (what a model too big to
    /// tabulate gets; for tests).
    public init(bytes: [UInt8], source: String, extras: [String]? = nil, tabulate: Bool = true) throws(ModelError) {
        let model = try TreeEnsemble.parse(bytes, file: source)
        // Reasons name a feature by a 16-bit index (jobs' and the wire's): a model reading more
        // features is refused here, not trapped on in a job.
        guard model.featureNames.count <= Int(Int16.max) else {
            throw ModelError(.invalidInput, file: source, "the model reads \(model.featureNames.count) features; a scoring model may read at most \(Int16.max) (reasons name features by 16-bit index)")
        }
        forest = try CompiledForest(model)
        explainer = TreeExplainer(model)
        attribution = tabulate ? LeafAttribution(forest) : nil
        featureNames = model.featureNames
        version = Self.version(of: bytes)
        self.source = source
        let layout = extras ?? Self.extraFeatures(of: model.featureNames)
        var columns: [Int] = []
        let catalogue = FeatureCatalogue.names
        for (i, name) in model.featureNames.enumerated() {
            if let c = catalogue.firstIndex(of: name) {
                columns.append(c)
            } else if name == "f\(i)", i < catalogue.count {
                columns.append(i)  // a model trained without names reads the catalogue in order
            } else if let k = layout.firstIndex(of: name) {
                columns.append(catalogue.count + k)
            } else {
                let near = NameSuggestions.nearest(to: name, among: catalogue + layout).map { "'\($0)'" }.joined(separator: ", ")
                throw ModelError(.invalidInput, file: source, "model feature '\(name)' is not held in this worker's profiles (closest: \(near); see docs/models.md, \"What the cluster reads\")")
            }
        }
        profileColumn = columns
        regionColumn = catalogue.firstIndex(of: "region")
    }

    /// The model's input from a walk's columns (`ProfileStore.forEachRun`).
    /// - Throws: `ModelError` when the store does not hold a column the model reads (its extra
    ///   columns are not attached).
    public func input(_ columns: [UnsafePointer<Float>], rows: Int) throws(ModelError) -> FeatureColumns {
        var out: [UnsafePointer<Float>] = []
        out.reserveCapacity(profileColumn.count)
        for (i, c) in profileColumn.enumerated() {
            guard c < columns.count else {
                throw ModelError(.invalidInput, file: source, "model feature '\(featureNames[i])' is not held by this shard's profiles (\(columns.count) columns): its extra columns are not loaded")
            }
            out.append(columns[c])
        }
        return FeatureColumns(columns: out, rowCount: rows)
    }

    /// The features of a model (by name, in model order) that the built-in catalogue lacks: what
    /// a worker must hold as extra columns to score it.
    public static func extraFeatures(of names: [String]) -> [String] {
        let catalogue = Set(FeatureCatalogue.names)
        var out: [String] = [], seen = Set<String>()
        for (i, name) in names.enumerated() where !catalogue.contains(name) && !(name == "f\(i)" && i < FeatureCatalogue.count) {
            if seen.insert(name).inserted { out.append(name) }
        }
        return out
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
