import FeatureTable
import Postgres
import SubscriberProfiles

/// Profiles read from a CSV export (a data-warehouse extract) and upserted into
/// `subscriber_profiles`.
///
/// Rules, each failure naming the file, line and column:
/// - the header must have `subscriber_id` and every catalogue feature; other columns (such as
///   `churned_30d`) are ignored;
/// - `subscriber_id` must be an integer, and appear once in the file;
/// - a feature cell that is empty or `NaN` is missing (stored as NULL); anything else must be a
///   finite number (an infinity in an export is a bug upstream, so it is refused).
public struct ProfileImport: Sendable {
    /// The rows of a valid file, in file order.
    public let ids: [Int64]
    /// `features[j][r]`: catalogue feature j of row r (NaN = missing).
    public let features: [[Float]]

    /// Reads and checks `path`.
    /// - Throws: `TableError` naming the line and column of the first problem.
    public init(path: String) throws(TableError) {
        let table = try CSVTable.read(path: path, numericColumns: Set(FeatureCatalogue.names))
        guard let idColumn = table.header.firstIndex(of: "subscriber_id") else {
            throw TableError(file: path, line: 1, column: "subscriber_id", "the header has no subscriber_id column")
        }
        let missing = FeatureCatalogue.names.filter { table.column(named: $0) == nil }
        guard missing.isEmpty else {
            throw TableError(file: path, line: 1, "the header lacks feature column(s) \(missing.joined(separator: ", "))")
        }
        var ids: [Int64] = []
        ids.reserveCapacity(table.rowCount)
        var firstLine: [Int64: Int32] = [:]
        firstLine.reserveCapacity(table.rowCount)
        for r in 0..<table.rowCount {
            let text = table.text(column: idColumn, row: r)
            guard let id = Int64(text.trimmingSpaces()) else {
                throw TableError(file: path, line: Int(table.lines[r]), column: "subscriber_id", "'\(text)' is not an integer subscriber id")
            }
            guard id != ProfileStore.erasedID else {
                throw TableError(file: path, line: Int(table.lines[r]), column: "subscriber_id", "\(id) is reserved (it marks an erased subscriber in memory); use another id")
            }
            if let earlier = firstLine.updateValue(table.lines[r], forKey: id) {
                throw TableError(file: path, line: Int(table.lines[r]), column: "subscriber_id",
                                 "subscriber \(id) appears again (first on line \(earlier)); a file holds one profile per subscriber")
            }
            ids.append(id)
        }
        var features: [[Float]] = []
        for name in FeatureCatalogue.names {
            let column = table.column(named: name)!
            if let r = column.firstIndex(where: { $0.isInfinite }) {
                throw TableError(file: path, line: Int(table.lines[r]), column: name, "\(column[r]) is not a finite number")
            }
            features.append(column)
        }
        self.ids = ids
        self.features = features
    }

    /// What an upsert did.
    public struct Report: Sendable, Equatable {
        public var inserted: Int
        public var updated: Int

        public init(inserted: Int, updated: Int) {
            self.inserted = inserted
            self.updated = updated
        }
    }

    /// Inserts new subscribers and replaces the profiles of known ones (stamping `updated_at`),
    /// in one transaction, and records `asOf` (ms since 1970; nil: now): when the warehouse took
    /// these profiles. A shard loaded from PostgreSQL afterwards replays the events its owners
    /// received after the newest `asOf`, so events that arrived after the extract are never lost
    /// (the import is taken as a full refresh: the events before `asOf` are in its profiles).
    /// - Throws: `PostgresError`; nothing is written then.
    public func upsert(into connection: PostgresConnection, asOf: Int64? = nil) throws -> Report {
        try ProfileSchema.migrate(connection)
        let columns = ProfileSchema.featureColumns
        try connection.execute("BEGIN")
        do {
            try connection.execute("""
                CREATE TEMP TABLE import_profiles (subscriber_id bigint NOT NULL, \
                \(FeatureCatalogue.names.map { "\($0) real" }.joined(separator: ", "))) ON COMMIT DROP
                """)
            try connection.copyIn("COPY import_profiles (subscriber_id, \(columns)) FROM STDIN (FORMAT binary)") { writer in
                var encoder = BinaryCopyEncoder()
                for r in ids.indices {
                    encoder.beginRow(fields: features.count + 1)
                    encoder.int64(ids[r])
                    for column in features { encoder.float32OrNull(column[r]) }
                    if encoder.bytes.count >= 1 << 20 { try writer.write(encoder.take()) }
                }
                encoder.finish()
                try writer.write(encoder.take())
            }
            if let asOf {
                try connection.query("INSERT INTO churngrid_profile_snapshots (as_of, source) VALUES (timestamptz 'epoch' + $1::bigint * interval '1 millisecond', 'import')",
                                     [String(asOf)])
            } else {
                try connection.execute("INSERT INTO churngrid_profile_snapshots (as_of, source) VALUES (now(), 'import')")
            }
            let counts = try connection.query("""
                WITH up AS (
                    INSERT INTO subscriber_profiles (subscriber_id, \(columns))
                    SELECT subscriber_id, \(columns) FROM import_profiles
                    ON CONFLICT (subscriber_id) DO UPDATE SET \
                \(FeatureCatalogue.names.map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")), updated_at = now()
                    RETURNING (xmax = 0) AS inserted)
                SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
                """)
            try connection.execute("COMMIT")
            let row = counts.rows.first ?? []
            return Report(inserted: Int(row.first.flatMap { $0 } ?? "0") ?? 0, updated: Int(row.last.flatMap { $0 } ?? "0") ?? 0)
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
