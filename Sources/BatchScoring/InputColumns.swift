import FeatureTable
import TreeModel

/// A CSV file's rows as the model's feature columns: each model feature matched to the
/// header column of the same name.
struct InputColumns {
    let table: CSVTable
    /// `features[j]` = values of model feature j.
    let features: [[Float]]

    /// Reads `path` for `model`.
    /// - Throws: `TableError` for a bad file, or when a model feature has no column.
    init(path: String, model: TreeEnsemble) throws(TableError) {
        let table = try CSVTable.read(path: path, numericColumns: Set(model.featureNames))
        var features: [[Float]] = []
        features.reserveCapacity(model.featureCount)
        var missing: [String] = []
        for name in model.featureNames {
            if let c = table.column(named: name) { features.append(c) } else { missing.append(name) }
        }
        guard missing.isEmpty else {
            let shown = missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", … (\(missing.count) in all)" : "")
            throw TableError(file: path, line: 1, "the header has no column for model feature(s) \(shown)")
        }
        self.table = table
        self.features = features
    }

    var rowCount: Int { table.rowCount }

    /// Runs `body` with the columns as a `FeatureColumns` (pointers valid only inside `body`).
    func withFeatureColumns<R, E: Error>(_ body: (FeatureColumns) throws(E) -> R) throws(E) -> R {
        var pointers: [UnsafePointer<Float>] = []
        pointers.reserveCapacity(features.count)
        for c in features {
            pointers.append(c.withUnsafeBufferPointer { $0.baseAddress ?? UnsafePointer(bitPattern: 8)! })
        }
        return try withExtendedLifetime(features) { () throws(E) -> R in
            try body(FeatureColumns(columns: pointers, rowCount: table.rowCount))
        }
    }

    /// Row `r` in model feature order.
    func row(_ r: Int, into buffer: inout [Float]) {
        for j in features.indices { buffer[j] = features[j][r] }
    }
}
