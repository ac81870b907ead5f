import FeatureTable
import Postgres
import SubscriberProfiles

/// Profiles read from a CSV export (a data-warehouse extract) and upserted into
/// `subscriber_profiles`, by the feature schema in force (`FeatureSchema`, docs/models.md).
///
/// Rules, each failure naming the file, line and column:
/// - the header must have the schema's id column and every schema feature (an import is a full
///   refresh of the profiles it holds); other columns (such as `churned_30d`) are ignored;
/// - the id must be an integer, and appear once in the file;
/// - a feature cell that is empty or `NaN` is missing (stored as NULL); anything else must be a
///   value of the feature's type (`FeatureSchema.value(of:feature:)`): a finite number, a whole
///   number, a boolean, a category by name or code (an infinity in an export is a bug upstream,
///   so it is refused).
public struct ProfileImport: Sendable {
    /// The schema the file was read by.
    public let schema: FeatureSchema
    /// The rows of a valid file, in file order.
    public let ids: [Int64]
    /// `features[j][r]`: schema feature j of row r (NaN = missing; a category's code, a boolean's 0/1).
    public let features: [[Float]]

    /// Reads and checks `path` by `schema` (default: the built-in catalogue).
    /// - Throws: `TableError` naming the line and column of the first problem.
    public init(path: String, schema: FeatureSchema = .catalogue) throws(TableError) {
        let headers = schema.features.map { $0.column ?? $0.name }
        let numberColumns = schema.features.filter { $0.kind == .number }.map { $0.column ?? $0.name }
        let table = try CSVTable.read(path: path, numericColumns: Set(numberColumns))
        guard let idColumn = table.header.firstIndex(of: schema.id) else {
            throw TableError(file: path, line: 1, column: schema.id, "the header has no \(schema.id) column (the schema's id)")
        }
        let missing = headers.filter { !table.header.contains($0) }
        guard missing.isEmpty else {
            let shown = missing.prefix(20).joined(separator: ", ") + (missing.count > 20 ? " and \(missing.count - 20) more" : "")
            throw TableError(file: path, line: 1, "the header lacks feature column(s) \(shown)")
        }
        var ids: [Int64] = []
        ids.reserveCapacity(table.rowCount)
        var firstLine: [Int64: Int32] = [:]
        firstLine.reserveCapacity(table.rowCount)
        for r in 0..<table.rowCount {
            let text = table.text(column: idColumn, row: r)
            guard let id = Int64(text.trimmingSpaces()) else {
                throw TableError(file: path, line: Int(table.lines[r]), column: schema.id, "'\(text)' is not an integer subscriber id")
            }
            guard id != ProfileStore.erasedID else {
                throw TableError(file: path, line: Int(table.lines[r]), column: schema.id, "\(id) is reserved (it marks an erased subscriber in memory); use another id")
            }
            guard id > 0 else {
                throw TableError(file: path, line: Int(table.lines[r]), column: schema.id,
                                 "\(id) is not a positive subscriber id (events, queries and erasures name subscribers by positive ids: this profile could never be reached)")
            }
            if let earlier = firstLine.updateValue(table.lines[r], forKey: id) {
                throw TableError(file: path, line: Int(table.lines[r]), column: schema.id,
                                 "subscriber \(id) appears again (first on line \(earlier)); a file holds one profile per subscriber")
            }
            ids.append(id)
        }
        var features: [[Float]] = []
        features.reserveCapacity(schema.count)
        for (j, feature) in schema.features.enumerated() {
            let header = headers[j]
            if feature.kind == .number, let column = table.column(named: header) {
                if let r = column.firstIndex(where: { $0.isInfinite }) {
                    throw TableError(file: path, line: Int(table.lines[r]), column: header, "\(column[r]) is not a finite number")
                }
                features.append(column)
                continue
            }
            guard let c = table.header.firstIndex(of: header) else { continue }  // checked above
            var column = [Float](repeating: .nan, count: table.rowCount)
            for r in 0..<table.rowCount {
                switch schema.value(of: table.text(column: c, row: r), feature: j) {
                case .success(let v): column[r] = v
                case .failure(let problem):
                    throw TableError(file: path, line: Int(table.lines[r]), column: header, "\(problem) (a \(feature.kind.name) feature)")
                }
            }
            features.append(column)
        }
        self.schema = schema
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
    /// these profiles. A shard loaded from PostgreSQL afterwards replays onto each profile the
    /// events received after the `asOf` of the import that wrote its row (the rows' `updated_at` is
    /// that import's `recorded_at`), so events that arrived after an extract are never lost, also
    /// for the subscribers a later (delta) import did not carry.
    /// - Throws: `ProfileImport.SchemaMismatch` when the file was read by a schema other than the
    ///   one in force; `PostgresError`. Nothing is written then.
    public func upsert(into connection: PostgresConnection, asOf: Int64? = nil, progress: (Stage) -> Void = { _ in }) throws -> Report {
        let inForce = try FeatureSchemaStore.current(connection)
        try Self.check(schema, against: inForce)
        let columns = schema.names.joined(separator: ", ")
        try connection.execute("BEGIN")
        do {
            // One import at a time: the last `as_of` recorded (by id) is then the last committed.
            try connection.execute("LOCK TABLE churngrid_profile_snapshots IN SHARE ROW EXCLUSIVE MODE")
            try connection.execute("""
                CREATE TEMP TABLE import_profiles (subscriber_id bigint NOT NULL, \
                \(schema.names.map { "\($0) real" }.joined(separator: ", "))) ON COMMIT DROP
                """)
            try connection.copyIn("COPY import_profiles (subscriber_id, \(columns)) FROM STDIN (FORMAT binary)") { writer in
                var encoder = BinaryCopyEncoder()
                let step = max(1, ids.count / 10)
                var nextReport = step
                for r in ids.indices {
                    encoder.beginRow(fields: features.count + 1)
                    encoder.int64(ids[r])
                    for column in features { encoder.float32OrNull(column[r]) }
                    if encoder.bytes.count >= 1 << 20 { try writer.write(encoder.take()) }
                    if r + 1 == nextReport {
                        nextReport += step
                        if r + 1 < ids.count { progress(.staging(rows: r + 1, of: ids.count)) }
                    }
                }
                encoder.finish()
                try writer.write(encoder.take())
            }
            progress(.merging(rows: ids.count))
            if let asOf {
                try connection.query("INSERT INTO churngrid_profile_snapshots (as_of, source) VALUES (timestamptz 'epoch' + $1::bigint * interval '1 millisecond', 'import')",
                                     [String(asOf)])
            } else {
                try connection.execute("INSERT INTO churngrid_profile_snapshots (as_of, source) VALUES (now(), 'import')")
            }
            // Staged as real (a Float32 each, as profiles hold them), cast to each column's type.
            let values = schema.features.map { $0.kind.fromReal($0.name) }.joined(separator: ", ")
            let counts = try connection.query("""
                WITH up AS (
                    INSERT INTO subscriber_profiles (subscriber_id, \(columns))
                    SELECT subscriber_id, \(values) FROM import_profiles
                    ON CONFLICT (subscriber_id) DO UPDATE SET \
                \(schema.names.map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")), updated_at = now()
                    RETURNING (xmax = 0) AS inserted)
                SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
                """)
            // The rows this file did not carry (as of an earlier import): loads look their own as_of
            // up only when there are some.
            progress(.countingOlder)
            // In the same pass: the earliest as_of the rows are still as of (the retention keeps the
            // events a load would replay onto them).
            try connection.execute(ProfileImport.olderRowsUpdate)
            try connection.execute("COMMIT")
            let row = counts.rows.first ?? []
            return Report(inserted: Int(row.first.flatMap { $0 } ?? "0") ?? 0, updated: Int(row.last.flatMap { $0 } ?? "0") ?? 0)
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    /// Sets the latest record's `older_rows` (rows as of an earlier import) and `oldest_as_of` (the
    /// earliest `as_of` of the imports the rows are still as of, the latest's included), in one pass
    /// over `subscriber_profiles` grouped by `updated_at` (each import's transaction time).
    public static let olderRowsUpdate = """
        WITH d AS (SELECT updated_at, count(*) AS n FROM subscriber_profiles GROUP BY updated_at),
             latest AS (SELECT max(id) AS id FROM churngrid_profile_snapshots)
        UPDATE churngrid_profile_snapshots SET
            older_rows = (SELECT coalesce(sum(n), 0) FROM d WHERE updated_at <> now()),
            oldest_as_of = \(oldestAsOf)
        WHERE id = (SELECT id FROM latest)
        """

    /// In an UPDATE of a `churngrid_profile_snapshots` record, with `d` the distinct `updated_at`
    /// of `subscriber_profiles`: the earliest `as_of` of the imports the rows are as of; rows that
    /// match no import count as of the record's own `as_of` (as loads take them).
    public static let oldestAsOf =
        "coalesce((SELECT min(s.as_of) FROM d JOIN churngrid_profile_snapshots s ON s.recorded_at = d.updated_at), as_of)"

    /// Where an upsert is (for a command's progress): the rows staged by COPY so far, then the
    /// merge into `subscriber_profiles` (one statement: the long part of a large import, with no
    /// finer progress), then the count of the rows left older.
    public enum Stage: Equatable, Sendable {
        case staging(rows: Int, of: Int)
        case merging(rows: Int)
        case countingOlder
    }

    /// A file read by a schema that is not the one in force.
    public struct SchemaMismatch: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The file's schema must have exactly the features of the one in force, with the same types
    /// and categories (headers and descriptions may differ): else its columns or codes would not
    /// be the table's.
    public static func check(_ schema: FeatureSchema, against inForce: FeatureSchemaStore.Stored) throws(SchemaMismatch) {
        let theirs = Dictionary(inForce.schema.features.map { ($0.name, $0.kind) }, uniquingKeysWith: { a, _ in a })
        let ours = Set(schema.names)
        var problems: [String] = []
        let extra = schema.names.filter { theirs[$0] == nil }
        if !extra.isEmpty { problems.append("not in the database: \(extra.prefix(10).joined(separator: ", "))") }
        let lacking = inForce.schema.names.filter { !ours.contains($0) }
        if !lacking.isEmpty { problems.append("missing from the file's schema: \(lacking.prefix(10).joined(separator: ", "))") }
        for f in schema.features {
            if let kind = theirs[f.name], kind != f.kind {
                problems.append("\(f.name) is \(f.kind.name)\(Self.categories(f.kind)) here but \(kind.name)\(Self.categories(kind)) in the database")
            }
        }
        guard problems.isEmpty else {
            throw SchemaMismatch(message: "the import's schema is not the one in force (version \(inForce.version)): \(problems.prefix(5).joined(separator: "; ")). Run churngrid profiles migrate --schema FILE first, or import by the schema in force")
        }
    }

    static func categories(_ kind: FeatureSchema.Kind) -> String {
        guard case .category(let names) = kind else { return "" }
        return " [" + names.prefix(8).joined(separator: ", ") + (names.count > 8 ? ", …" : "") + "]"
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
