import TreeModel

/// Measures the scoring engine on a CSV file: what `churngrid model bench` does. The rows are
/// read once (not timed); block scoring is timed `repeat` times and the median reported, so a
/// passing hiccup on a shared machine does not decide the figure.
public struct EngineBenchmark: Sendable {
    /// What to measure.
    public struct Options: Sendable {
        public var threads: Int = 1
        public var repeats: Int = 5
        /// Rows scored one at a time through the single-row path (0 = skip).
        public var singleRowSamples: Int = 0
        /// Rows explained by exact TreeSHAP and by the path attribution on one thread (0 = skip).
        public var explainRows: Int = 0
        /// The block kernels the scoring may use (`.portable` for the portable walks alone).
        public var kernel: ScoringKernel = .automatic

        public init(threads: Int = 1, repeats: Int = 5, singleRowSamples: Int = 0, explainRows: Int = 0, kernel: ScoringKernel = .automatic) {
            self.kernel = kernel
            self.threads = threads
            self.repeats = repeats
            self.singleRowSamples = singleRowSamples
            self.explainRows = explainRows
        }
    }

    /// Figures of one run (JSON keys in snake_case).
    public struct Result: Sendable, Codable {
        public var rows: Int
        public var threads: Int
        public var repeats: Int
        public var trees: Int
        public var maxDepth: Int
        /// Median over the repeats.
        public var rowsPerSecond: Double
        public var nsPerRow: Double
        public var rowsPerSecondMin: Double
        public var rowsPerSecondMax: Double
        public var singleRowNsP50: Double?
        public var singleRowNsP99: Double?
        /// Exact TreeSHAP over the explained rows as one batch (`contributions(rows:count:into:)`).
        public var shapRowsPerSecond: Double?
        /// Exact TreeSHAP one row per call (a live query's case).
        public var shapSingleRowsPerSecond: Double?
        /// Path attribution over the explained rows as one batch, and one row per call.
        public var approxContribsRowsPerSecond: Double?
        public var approxSingleRowsPerSecond: Double?
        /// Every row scored with its top-3 reasons by path attribution tabulated per leaf
        /// (`LeafAttribution`, what jobs store), one thread, median over the repeats.
        public var reasonsRowsPerSecond: Double?
        /// Sum of margins, so a run can be checked against another engine's on the same rows.
        public var marginChecksum: Double
        /// The kernels asked for, the instruction set they ran on here ("avx512", "avx2" or
        /// "none"), and how many trees the leaf-bitvector walk scored (0 when the processor or the
        /// model does not allow it).
        public var kernel: String = ScoringKernel.automatic.rawValue
        public var instructionSet: String = "none"
        public var exitLeafTrees: Int = 0

        enum CodingKeys: String, CodingKey {
            case rows, threads, trees
            case repeats = "repeat", maxDepth = "max_depth"
            case rowsPerSecond = "rows_per_second", nsPerRow = "ns_per_row"
            case rowsPerSecondMin = "rows_per_second_min", rowsPerSecondMax = "rows_per_second_max"
            case singleRowNsP50 = "single_row_ns_p50", singleRowNsP99 = "single_row_ns_p99"
            case shapRowsPerSecond = "shap_rows_per_second", approxContribsRowsPerSecond = "approx_contribs_rows_per_second"
            case shapSingleRowsPerSecond = "shap_single_rows_per_second", approxSingleRowsPerSecond = "approx_single_rows_per_second"
            case reasonsRowsPerSecond = "scores_with_reasons_rows_per_second"
            case marginChecksum = "margin_checksum"
            case kernel, instructionSet = "instruction_set", exitLeafTrees = "exit_leaf_trees"
        }
    }

    public init() {}

    /// Runs the benchmark.
    /// - Throws: `ModelError` or `TableError` for bad files.
    public func run(modelPath: String, input: String, options: Options) throws -> Result {
        let model = try TreeEnsemble.load(path: modelPath)
        let forest = try CompiledForest(model, kernel: options.kernel)
        let columns = try InputColumns(path: input, model: model)
        let rows = columns.rowCount
        guard rows > 0 else { throw ModelError(.invalidInput, file: input, "input has no rows to score") }
        let clock = ContinuousClock()
        var margins = [Double](repeating: 0, count: rows)
        var rates: [Double] = []
        try columns.withFeatureColumns { (c: FeatureColumns) throws(ModelError) in
            try margins.withUnsafeMutableBufferPointer { m throws(ModelError) in
                // One untimed pass warms caches and pages in the output.
                try forest.score(c, margins: m.baseAddress!, threads: options.threads)
                for _ in 0..<max(1, options.repeats) {
                    let t0 = clock.now
                    try forest.score(c, margins: m.baseAddress!, threads: options.threads)
                    rates.append(Double(rows) / seconds(clock.now - t0))
                }
            }
        }
        rates.sort()
        let median = rates[rates.count / 2]
        var result = Result(
            rows: rows, threads: options.threads, repeats: rates.count, trees: model.trees.count,
            maxDepth: model.maxDepth, rowsPerSecond: median, nsPerRow: 1e9 / median,
            rowsPerSecondMin: rates.first!, rowsPerSecondMax: rates.last!,
            marginChecksum: margins.reduce(0, +), kernel: options.kernel.rawValue,
            instructionSet: forest.instructionSet, exitLeafTrees: forest.exitLeafTrees)

        if options.singleRowSamples > 0 {
            var row = [Float](repeating: 0, count: model.featureCount)
            var times: [Double] = []
            let n = min(options.singleRowSamples, rows)
            var sink = 0.0
            for pass in 0..<2 {
                for r in 0..<n {
                    columns.row(r, into: &row)
                    let t0 = clock.now
                    sink += row.withUnsafeBufferPointer { forest.margin(row: $0) }
                    if pass == 1 { times.append(seconds(clock.now - t0) * 1e9) }
                }
            }
            times.sort()
            result.singleRowNsP50 = times[times.count / 2]
            result.singleRowNsP99 = times[min(times.count - 1, times.count * 99 / 100)]
            if sink.isNaN { print("") }  // keeps the calls from being optimised away
        }

        if options.explainRows > 0 {
            let explainer = TreeExplainer(model)
            let n = min(options.explainRows, rows)
            var row = [Float](repeating: 0, count: model.featureCount)
            var phi = [Double](repeating: 0, count: explainer.contributionCount)
            var batch = [Float](repeating: 0, count: n * model.featureCount)
            var phis = [Double](repeating: 0, count: n * explainer.contributionCount)
            for method in [TreeExplainer.Method.exact, .approximate] {
                // One row per call (a live query's case).
                var t0 = clock.now
                for r in 0..<n {
                    columns.row(r, into: &row)
                    row.withUnsafeBufferPointer { x in
                        phi.withUnsafeMutableBufferPointer { explainer.contributions(row: x, into: $0, method: method) }
                    }
                }
                let single = Double(n) / seconds(clock.now - t0)
                // The rows as one batch, as XGBoost's pred_contribs takes them (gathered inside the timing).
                t0 = clock.now
                for r in 0..<n {
                    columns.row(r, into: &row)
                    batch.replaceSubrange(r * model.featureCount..<(r + 1) * model.featureCount, with: row)
                }
                batch.withUnsafeBufferPointer { x in
                    phis.withUnsafeMutableBufferPointer { explainer.contributions(rows: x, count: n, into: $0, method: method) }
                }
                let batched = Double(n) / seconds(clock.now - t0)
                if phis.contains(where: \.isNaN) || phi.contains(where: \.isNaN) { print("") }  // keeps the work from being optimised away
                if method == .exact {
                    (result.shapRowsPerSecond, result.shapSingleRowsPerSecond) = (batched, single)
                } else {
                    (result.approxContribsRowsPerSecond, result.approxSingleRowsPerSecond) = (batched, single)
                }
            }
            if let tables = LeafAttribution(forest) {
                var outputs = [Double](repeating: 0, count: rows)
                var features = [Int16](repeating: 0, count: 3 * rows), values = [Float](repeating: 0, count: 3 * rows)
                var rates: [Double] = []
                try columns.withFeatureColumns { (c: FeatureColumns) throws(ModelError) in
                    try margins.withUnsafeMutableBufferPointer { m throws(ModelError) in
                        try outputs.withUnsafeMutableBufferPointer { o throws(ModelError) in
                            try features.withUnsafeMutableBufferPointer { f throws(ModelError) in
                                try values.withUnsafeMutableBufferPointer { v throws(ModelError) in
                                    for pass in 0...max(1, options.repeats) {
                                        let t0 = clock.now
                                        try tables.score(c, margins: m.baseAddress!, outputs: o.baseAddress!, top: 3, features: f.baseAddress!, values: v.baseAddress!)
                                        if pass > 0 { rates.append(Double(rows) / seconds(clock.now - t0)) }
                                    }
                                }
                            }
                        }
                    }
                }
                rates.sort()
                result.reasonsRowsPerSecond = rates[rates.count / 2]
            }
        }
        return result
    }
}
