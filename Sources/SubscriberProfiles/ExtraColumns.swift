/// Schema features a shard holds beside the built-in catalogue because a served model reads them
/// (docs/models.md, "What the cluster reads"): one `Float32` column per feature, aligned with the
/// rows of the `ProfileStore` it is attached to (row r of every column is the store's row r).
///
/// Read-only once built: events update catalogue features only, and an import reaches the
/// cluster through a reload, which builds a new block. A bigger layout is a new block attached in
/// one step (`ProfileStore.attach`); readers that took the old one keep it alive until they end.
public final class ExtraColumns: @unchecked Sendable {
    // @unchecked: the values are written only while the block is built, before it is attached
    // (and shared); after that only `erase` writes, NaN over one row, on the store's one writer.
    /// The features, in column order.
    public let names: [String]
    /// Rows per column.
    public let rows: Int
    /// Column-major: feature k of row r at `values[k * rows + r]`.
    private let values: UnsafeMutablePointer<Float>

    /// A block of `rows` rows, every value missing (NaN) until set.
    public init(names: [String], rows: Int) {
        self.names = names
        self.rows = max(0, rows)
        values = .allocate(capacity: max(1, names.count * self.rows))
        values.initialize(repeating: .nan, count: max(1, names.count * self.rows))
    }

    deinit { values.deallocate() }

    /// The column of feature `k`, from row `from` on; nil past the block's rows.
    public func column(_ k: Int, from row: Int) -> UnsafePointer<Float>? {
        guard k >= 0, k < names.count, row >= 0, row < rows else { return nil }
        return UnsafePointer(values + k * rows + row)
    }

    /// Feature `k` of `row` (NaN outside the block).
    public func value(row: Int, feature k: Int) -> Float {
        guard k >= 0, k < names.count, row >= 0, row < rows else { return .nan }
        return values[k * rows + row]
    }

    /// Sets feature `k` of `row` (ignored outside the block): only while the block is built.
    public func set(row: Int, feature k: Int, _ value: Float) {
        guard k >= 0, k < names.count, row >= 0, row < rows else { return }
        values[k * rows + row] = value
    }

    /// Copies column `j` of `other` into column `k` (their common rows; only while the block is built).
    public func copy(column k: Int, from other: ExtraColumns, column j: Int) {
        guard k >= 0, k < names.count, j >= 0, j < other.names.count else { return }
        (values + k * rows).update(from: other.values + j * other.rows, count: min(rows, other.rows))
    }

    /// Every feature of `row` becomes missing (an erased subscriber's).
    func clear(row: Int) {
        guard row >= 0, row < rows else { return }
        for k in 0..<names.count { values[k * rows + row] = .nan }
    }

    /// Bytes held for the values.
    public var residentBytes: Int { names.count * rows * 4 }
}
