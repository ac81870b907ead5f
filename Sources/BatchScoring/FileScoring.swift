import Dispatch
import FeatureTable
import Logging
import Synchronization
import TreeModel

/// Scores a CSV file with a model and writes the scores (and reasons) to another CSV file:
/// what `churngrid model score` does.
public struct FileScoring: Sendable {
    /// What to compute and how.
    public struct Options: Sendable {
        /// Number of reason columns (0 = none).
        public var explain: Int = 0
        /// Exact TreeSHAP, or the cheap path attribution for very large files.
        public var explainMethod: TreeExplainer.Method = .exact
        /// Threads for scoring and explaining.
        public var threads: Int = 1

        public init(explain: Int = 0, explainMethod: TreeExplainer.Method = .exact, threads: Int = 1) {
            self.explain = explain
            self.explainMethod = explainMethod
            self.threads = threads
        }
    }

    /// What a run did.
    public struct Report: Sendable {
        public var rows: Int
        public var readSeconds: Double
        public var scoreSeconds: Double
        public var explainSeconds: Double
        public var writeSeconds: Double
    }

    let logger: Logger

    /// Creates a scorer that logs to `logger`.
    public init(logger: Logger) {
        self.logger = logger
    }

    /// Scores `input` with the model in `modelPath` and writes `output`.
    ///
    /// Output columns: the input's non-feature columns (verbatim), `margin`, `probability`
    /// (the model's output), then `reason1..K` and `contribution1..K` when explaining.
    /// - Throws: `ModelError` for the model, `TableError` for the input or output file.
    public func run(modelPath: String, input: String, output: String, options: Options) throws -> Report {
        let clock = ContinuousClock()
        let model = try TreeEnsemble.load(path: modelPath)
        let forest = try CompiledForest(model)
        let t0 = clock.now
        let columns = try InputColumns(path: input, model: model)
        let rows = columns.rowCount
        let t1 = clock.now
        logger.info("read input", metadata: ["file": "\(input)", "rows": "\(rows)", "seconds": "\(secondsText(t1 - t0))"])

        var margins = [Double](repeating: 0, count: rows)
        var outputs = [Double](repeating: 0, count: rows)
        try columns.withFeatureColumns { (c: FeatureColumns) throws(ModelError) in
            try margins.withUnsafeMutableBufferPointer { m throws(ModelError) in
                try outputs.withUnsafeMutableBufferPointer { o throws(ModelError) in
                    try forest.score(c, margins: m.baseAddress!, outputs: o.baseAddress!, threads: options.threads)
                }
            }
        }
        let t2 = clock.now
        logger.info("scored", metadata: ["rows": "\(rows)", "seconds": "\(secondsText(t2 - t1))"])

        let k = max(0, options.explain)
        let reasons = k > 0 ? explain(columns, model: model, k: k, method: options.explainMethod, threads: options.threads) : []
        let t3 = clock.now
        if k > 0 {
            logger.info("explained", metadata: ["rows": "\(rows)", "seconds": "\(secondsText(t3 - t2))"])
        }

        let writer = try CSVWriter(path: output)
        let passthrough = columns.table.passthroughColumns
        for c in passthrough { writer.text(columns.table.header[c]) }
        writer.text("margin")
        writer.text("probability")
        for i in 1...max(k, 1) where k > 0 { writer.text("reason\(i)") }
        for i in 1...max(k, 1) where k > 0 { writer.text("contribution\(i)") }
        try writer.endLine()
        let float32 = model.accumulation == .float32
        for r in 0..<rows {
            for c in passthrough { writer.raw(columns.table.rawCell(column: c, row: r)) }
            // Single-precision models print in single precision: the value XGBoost itself returns.
            if float32 {
                writer.number(Float(margins[r]))
                writer.number(Float(outputs[r]))
            } else {
                writer.number(margins[r])
                writer.number(outputs[r])
            }
            if k > 0 {
                let row = reasons[r]
                for i in 0..<k { if i < row.count { writer.text(row[i].name) } else { writer.empty() } }
                for i in 0..<k { if i < row.count { writer.number(row[i].contribution) } else { writer.empty() } }
            }
            try writer.endLine()
        }
        try writer.flush()
        let t4 = clock.now
        logger.info("wrote output", metadata: ["file": "\(output)", "rows": "\(rows)", "seconds": "\(secondsText(t4 - t3))"])
        return Report(rows: rows, readSeconds: seconds(t1 - t0), scoreSeconds: seconds(t2 - t1),
                      explainSeconds: seconds(t3 - t2), writeSeconds: seconds(t4 - t3))
    }

    /// Top-k reasons for every row, rows split over `threads`.
    private func explain(_ columns: InputColumns, model: TreeEnsemble, k: Int, method: TreeExplainer.Method, threads: Int) -> [[ReasonCode]] {
        let explainer = TreeExplainer(model)
        let rows = columns.rowCount
        let result = ReasonTable(rows: rows)
        let workers = max(1, min(threads, rows))
        let chunk = 256
        let cursor = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        let clock = ContinuousClock()
        let start = clock.now
        let logger = self.logger
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let f = model.featureCount, stride = explainer.contributionCount
            var row = [Float](repeating: 0, count: f)
            // A chunk's rows explained as one batch (exact TreeSHAP walks each tree for many rows at once).
            var batch = [Float](repeating: 0, count: chunk * f)
            var phis = [Double](repeating: 0, count: chunk * stride)
            while true {
                let first = cursor.wrappingAdd(chunk, ordering: .relaxed).oldValue
                if first >= rows { break }
                let count = min(rows, first + chunk) - first
                for i in 0..<count {
                    columns.row(first + i, into: &row)
                    batch.replaceSubrange(i * f..<(i + 1) * f, with: row)
                }
                batch.withUnsafeBufferPointer { x in
                    phis.withUnsafeMutableBufferPointer { explainer.contributions(rows: x, count: count, into: $0, method: method) }
                }
                for i in 0..<count {
                    result.set(first + i, TreeExplainer.topReasons(phi: phis[i * stride..<(i + 1) * stride], k: k, names: model.featureNames))
                }
                let finished = done.wrappingAdd(min(rows, first + chunk) - first, ordering: .relaxed).newValue
                if worker == 0, finished < rows, finished % (chunk * 64) < chunk {
                    let elapsed = seconds(clock.now - start)
                    let rate = Double(finished) / max(elapsed, 1e-9)
                    logger.info("explaining", metadata: [
                        "rows_done": "\(finished)", "rows": "\(rows)",
                        "rows_per_second": "\(Int(rate))", "eta_seconds": "\(Int(Double(rows - finished) / max(rate, 1e-9)))",
                    ])
                }
            }
        }
        return result.rows
    }
}

/// Per-row reasons filled by several threads, each row by exactly one.
private final class ReasonTable: @unchecked Sendable {
    // @unchecked: `set` is called for distinct indices from different threads (each row is
    // handed to one worker by an atomic cursor); the storage is never resized meanwhile.
    private let storage: UnsafeMutablePointer<[ReasonCode]>
    private let count: Int

    init(rows: Int) {
        storage = .allocate(capacity: max(rows, 1))
        storage.initialize(repeating: [], count: rows)
        count = rows
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    func set(_ r: Int, _ reasons: [ReasonCode]) { storage[r] = reasons }

    var rows: [[ReasonCode]] { Array(UnsafeBufferPointer(start: storage, count: count)) }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// Seconds rounded to the millisecond, for log metadata.
func secondsText(_ d: Duration) -> String {
    "\((seconds(d) * 1000).rounded() / 1000)"
}
