import FeatureTable
import Foundation
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

@Suite("Profiles in PostgreSQL")
struct ProfileDatabaseTests {
    @Test("migrations apply once and are a no-op the second time")
    func migrations() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        #expect(try ProfileSchema.migrate(db) == ProfileSchema.migrations.map(\.version))
        #expect(try ProfileSchema.migrate(db) == [])
        let columns = try db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'subscriber_profiles' ORDER BY ordinal_position")
        #expect(columns.rows.map { $0[0]! } == ["subscriber_id", "shard_key"] + FeatureCatalogue.names + ["updated_at"])
    }

    @Test("docs/operations.md's backup list names every table the schema makes")
    func backupListComplete() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        try ProfileSchema.migrate(db)
        let tables = try db.query("""
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1
            """).rows.compactMap { $0.first ?? nil }
        #expect(tables.count > 30)
        let text = try String(contentsOf: TestDatabase.packageRoot.appendingPathComponent("docs/operations.md"), encoding: .utf8)
        let start = try #require(text.range(of: "What lives in PostgreSQL, and therefore in the backup:"))
        let end = try #require(text.range(of: "Not in PostgreSQL", range: start.upperBound..<text.endIndex))
        let section = text[start.upperBound..<end.lowerBound]
        let missing = tables.filter { !section.contains("`\($0)`") }
        #expect(missing.isEmpty, "tables docs/operations.md's backup list does not name: \(missing)")
    }

    @Test("generate --postgres-from-environment fills the database of CHURNGRID_POSTGRES_URL (no URL in argv); never implied")
    func generateFromEnvironment() async throws {
        let url = try await TestDatabase.fresh()
        let cli = shellQuoted(try churngridExecutable())
        let made = await runCommand("CHURNGRID_POSTGRES_URL=\(shellQuoted(url)) \(cli) generate --subscribers 50 --postgres-from-environment")
        #expect(made.status == 0 && made.output.contains("50 subscribers into"), "\(made.output)")
        #expect(try PostgresConnection(url: url).query("SELECT count(*) FROM subscriber_profiles").scalar == "50")
        let implied = await runCommand("CHURNGRID_POSTGRES_URL=\(shellQuoted(url)) \(cli) generate --subscribers 50")
        #expect(implied.status == 64 && implied.output.contains("--postgres-from-environment"), "\(implied.output)")
    }

    @Test("SQL computes the same shard key and shard as Swift")
    func shardKeyParity() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        try ProfileSchema.migrate(db)
        var ids: [Int64] = [Int64.min, -1, 0, 1, 4_294_967_295, 4_294_967_296, Int64.max]
        var rng = SeededGenerator("shard key: SQL = Swift")
        for _ in 0..<300 { ids.append(Int64.random(in: Int64.min...Int64.max, using: &rng)) }
        for _ in 0..<300 { ids.append(Int64.random(in: 1_000_000_000..<1_100_000_000, using: &rng)) }
        let list = ids.map(String.init).joined(separator: ",")
        let rows = try db.query("SELECT id, churngrid_shard_key(id), churngrid_shard(id, 1024) FROM unnest(ARRAY[\(list)]::bigint[]) AS id").rows
        #expect(rows.count == ids.count)
        for row in rows {
            let id = Int64(row[0]!)!
            #expect(Int32(row[1]!)! == ShardKey.key(id), "id \(id)")
            #expect(Int(row[2]!)! == ShardKey.shard(of: id, shardCount: 1024), "id \(id)")
        }
    }

    @Test("a generated base loads into PostgreSQL and each shard loads exactly its subscribers")
    func generateAndLoad() async throws {
        let url = try await TestDatabase.fresh()
        let db = try PostgresConnection(url: url)
        let base = SyntheticBase(seed: 5)
        let n = 50_000
        let report = try BaseLoader(connection: db).load(base, count: n)
        #expect(report.rows == n)
        #expect(try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM subscriber_profiles").rows[0] == [String(n), String(n)])

        let shardCount = 16
        let shards = [0, 1, 2, 7, 15]
        let (stores, load) = try ProfileLoader(url: url).load(shards: shards, shardCount: shardCount, streams: 2)
        var expected: [Int: Int] = [:]
        var profiles: [Int64: [Float]] = [:]
        base.generate(0..<n) { id, p, _ in
            let s = ShardKey.shard(of: id, shardCount: shardCount)
            if shards.contains(s) {
                expected[s, default: 0] += 1
                profiles[id] = Array(p)
            }
        }
        #expect(load.rows == profiles.count)
        for s in shards {
            #expect(stores[s]!.count == expected[s] ?? 0, "shard \(s)")
        }
        // Every value survives the round trip, NULL as NaN.
        for (id, p) in profiles.prefix(2_000) {
            let s = ShardKey.shard(of: id, shardCount: shardCount)
            let got = try #require(stores[s]!.profile(of: id))
            for j in 0..<p.count { #expect(got[j] == p[j] || (got[j].isNaN && p[j].isNaN), "id \(id) feature \(FeatureCatalogue.names[j])") }
        }
    }

    @Test("a server error carries its SQLSTATE and message")
    func serverError() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        #expect {
            try db.execute("SELECT * FROM no_such_table")
        } throws: { e in
            let e = e as! PostgresError
            return e.code == .server && e.sqlState == "42P01" && e.message.contains("no_such_table")
        }
        // The connection is still usable afterwards.
        #expect(try db.query("SELECT 1 + $1::int", ["2"]).scalar == "3")
    }

    @Test("connecting to a server that is not there names the endpoint, without the password")
    func connectionRefused() {
        #expect {
            _ = try PostgresConnection(url: "postgresql://churn:secret@127.0.0.1:1/db?connect_timeout=2")
        } throws: { e in
            let e = e as! PostgresError
            return e.code == .connection && e.context.contains("127.0.0.1:1") && !e.description.contains("secret")
        }
    }

    @Test("a password is redacted in every form libpq takes", arguments: [
        ("postgresql://churn:s3cr%40t@db.example:5432/churn?sslmode=require", "postgresql://churn:***@db.example:5432/churn?sslmode=require"),
        ("postgres://churn@db:5432/churn?password=s3cr%40t&sslmode=require", "postgres://churn@db:5432/churn?password=***&sslmode=require"),
        ("postgresql://db/churn?sslmode=require&Password=s3cr%40t", "postgresql://db/churn?sslmode=require&Password=***"),
        ("host=db port=5432 password=s3cr@t user=churn", "host=db port=5432 password=*** user=churn"),
        ("host=db password = 's3cr @t\\' x' dbname=churn", "host=db password = *** dbname=churn"),
        ("postgresql://churn@db:5432/churn", "postgresql://churn@db:5432/churn"),
        ("postgresql://churn:s3cr?t#x@db/churn", "postgresql://churn:***@db/churn"),
        ("postgresql://db/churn?pass%77ord=s3cr3t", "postgresql://db/churn?pass%77ord=***"),
        // An '@' in the query (an Azure-style user) is not user info: the password after it still is a secret.
        ("postgresql://db/churn?user=churn@prod&password=s3cr3t", "postgresql://db/churn?user=churn@prod&password=***"),
        // A '/' in the password: libpq does not take it as user info (and fails quoting it); masked all the same.
        ("postgresql://churn:ab/s3cr@db/churn", "postgresql://churn:***@db/churn"),
        // The passphrase of the client's TLS key.
        ("postgresql://churn@db/churn?sslmode=verify-full&sslpassword=s3cr3t", "postgresql://churn@db/churn?sslmode=verify-full&sslpassword=***"),
        ("host=db sslpassword=s3cr3t", "host=db sslpassword=***"),
        // An escaped space in an unquoted value.
        ("host=db password=ab\\ s3cr user=churn", "host=db password=*** user=churn"),
        // An '@' in the query and no path: libpq takes "h?user=a" for user info; the password is masked either way.
        ("postgresql://h?user=a@b&password=s3cret", "postgresql://h?user=a@b&password=***"),
        ("postgresql://h:5432?user=a@b&password=s3cret", "postgresql://h:***@b&password=***"),
        // A password holding "?…&password=": one reading's mask never undoes another's.
        ("postgresql://u:s3?a&password=cr@db/churn", "postgresql://u:***"),
        // A URL behind a prefix (pasted from a JDBC setting): libpq would quote it whole.
        ("jdbc:postgresql://churn:s3cret@db/churn?sslmode=require", "jdbc:postgresql://churn:***@db/churn?sslmode=require"),
        // Nothing secret: IPv6 hosts, an '@' in a query value.
        ("postgresql://churn@[::1]:5432/churn", "postgresql://churn@[::1]:5432/churn"),
        ("postgresql://[::1]:5432/churn?user=a@b&sslmode=require", "postgresql://[::1]:5432/churn?user=a@b&sslmode=require"),
    ])
    func redaction(url: String, shown: String) {
        #expect(ConnectionString.redacted(url) == shown)
        #expect(!ConnectionString.redacted(url).contains("s3cr"))
        #expect(ConnectionString.containsPassword(url) == (url != shown))
    }

    @Test("libpq's own message, which quotes a value it cannot parse, never shows the password")
    func libpqMessage() {
        // An undecodable percent-escape in the password: libpq refuses the URL quoting it.
        do {
            _ = try PostgresConnection(url: "postgresql://churn:s3cr%zzet@127.0.0.1:1/churn")
            Issue.record("connected")
        } catch {
            #expect(!"\(error)".contains("s3cr"), "\(error)")
            #expect("\(error)".contains("***") || "\(error)".contains("withheld"), "\(error)")
        }
        #expect(ConnectionString.scrubbed("invalid percent-encoded token: \"s3cr%zzet\"", of: "postgresql://churn:s3cr%zzet@db/churn")
                == "invalid percent-encoded token: \"***\"")
        // Too short to replace without mangling the message: withheld.
        #expect(ConnectionString.scrubbed("invalid value \"ab\" for port", of: "postgresql://churn:ab/cd@db/churn").contains("withheld"))
        #expect(ConnectionString.scrubbed("could not connect", of: "postgresql://churn:secret@db/churn") == "could not connect")
    }

    @Test("a COPY aborted by the caller stores nothing")
    func abortedCopy() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        try db.execute("CREATE TABLE t (a bigint)")
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try db.copyIn("COPY t FROM STDIN") { writer in
                try writer.write(Array("1\n2\n".utf8))
                throw Stop()
            }
        }
        #expect(try db.query("SELECT count(*) FROM t").scalar == "0")
        #expect(try db.copyIn("COPY t FROM STDIN") { try $0.write(Array("1\n2\n".utf8)) } == 2)
    }
}

@Suite("Importing profiles from CSV")
struct ProfileImportTests {
    /// A CSV with the catalogue's columns; `cell(row, feature)` gives each feature cell's text.
    static func csv(ids: [String], extraHeader: String = "", cell: (Int, Int) -> String = { r, j in "\(r).\(j)" },
                    drop: String? = nil) -> String {
        let names = FeatureCatalogue.names.filter { $0 != drop }
        var lines = ["subscriber_id," + names.joined(separator: ",") + extraHeader]
        for (r, id) in ids.enumerated() {
            let cells = FeatureCatalogue.names.indices.filter { FeatureCatalogue.names[$0] != drop }.map { cell(r, $0) }
            lines.append(id + "," + cells.joined(separator: ",") + (extraHeader.isEmpty ? "" : ",1"))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cg-import-\(UUID()).csv").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("a valid file is upserted: new rows inserted, known rows updated, empty and NaN stored as NULL")
    func upsert() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        let first = try ProfileImport(path: try Self.write(Self.csv(ids: ["1", "2", "3"], extraHeader: ",churned_30d") { r, j in
            j == 2 ? "" : (j == 3 ? "NaN" : "\(r + 1)")
        }))
        var stages: [ProfileImport.Stage] = []
        let report = try first.upsert(into: db) { stages.append($0) }
        #expect(report == .init(inserted: 3, updated: 0))
        #expect(stages == [.staging(rows: 1, of: 3), .staging(rows: 2, of: 3), .merging(rows: 3), .countingOlder], "\(stages)")
        let second = try ProfileImport(path: try Self.write(Self.csv(ids: ["3", "4"]) { r, j in "\(10 * (r + 1))" }))
        #expect(try second.upsert(into: db) == .init(inserted: 1, updated: 1))
        let rows = try db.query("SELECT subscriber_id, tenure_months, days_to_contract_end, days_to_promo_end FROM subscriber_profiles ORDER BY 1").rows
        #expect(rows == [["1", "1", nil, nil], ["2", "2", nil, nil], ["3", "10", "10", "10"], ["4", "20", "20", "20"]])
        // Each import records the rows it left as of an earlier one (what a shard load looks up),
        // and each row's updated_at is its import's recorded_at (how a load finds its as_of).
        #expect(try db.query("SELECT older_rows FROM churngrid_profile_snapshots ORDER BY id").rows == [["0"], ["2"]])
        let writers = try db.query("""
            SELECT p.subscriber_id, s.id FROM subscriber_profiles p JOIN churngrid_profile_snapshots s ON s.recorded_at = p.updated_at ORDER BY 1
            """).rows.map { $0[1] }
        let ids = try db.query("SELECT id FROM churngrid_profile_snapshots ORDER BY id").rows.map { $0[0] }
        #expect(ids.count == 2 && writers == [ids[0], ids[0], ids[1], ids[1]])
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var label: String
        var text: String
        var line: Int
        var column: String?
        var mentions: String
        var testDescription: String { label }
    }

    static let bad: [Bad] = [
        Bad(label: "missing feature column", text: csv(ids: ["1"], drop: "arpu_30d"), line: 1, column: nil, mentions: "arpu_30d"),
        Bad(label: "missing id column", text: csv(ids: ["1"]).replacingOccurrences(of: "subscriber_id", with: "msisdn"),
            line: 1, column: "subscriber_id", mentions: "no subscriber_id"),
        Bad(label: "non-numeric cell", text: csv(ids: ["1", "2"]) { r, j in r == 1 && j == 9 ? "12,5".replacingOccurrences(of: ",", with: "x") : "1" },
            line: 3, column: "arpu_30d", mentions: "'12x5' is not a number"),
        Bad(label: "duplicate id", text: csv(ids: ["7", "8", "7"]), line: 4, column: "subscriber_id", mentions: "first on line 2"),
        Bad(label: "bad id", text: csv(ids: ["7", "S8"]), line: 3, column: "subscriber_id", mentions: "'S8' is not an integer"),
        Bad(label: "id 0", text: csv(ids: ["7", "0"]), line: 3, column: "subscriber_id", mentions: "0 is not a positive subscriber id"),
        Bad(label: "negative id", text: csv(ids: ["-7"]), line: 2, column: "subscriber_id", mentions: "-7 is not a positive subscriber id"),
        Bad(label: "reserved id", text: csv(ids: [String(Int64.min)]), line: 2, column: "subscriber_id", mentions: "is reserved"),
        Bad(label: "a quoted number with text after it", text: csv(ids: ["1"]) { _, j in j == 9 ? "\"12\"5" : "1" },
            line: 2, column: "arpu_30d", mentions: "is not a number"),
        Bad(label: "infinity", text: csv(ids: ["1", "2"]) { r, j in r == 1 && j == 0 ? "inf" : "1" },
            line: 3, column: "tenure_months", mentions: "not a finite number"),
        Bad(label: "short line", text: csv(ids: ["1"]) + "2,3\n", line: 3, column: nil, mentions: "expected 37 fields"),
    ]

    @Test("a bad file is refused with the line and column of the problem, and nothing is written", arguments: bad)
    func refused(_ c: Bad) throws {
        let path = try Self.write(c.text)
        #expect {
            _ = try ProfileImport(path: path)
        } throws: { e in
            guard let e = e as? TableError else { return false }
            return e.line == c.line && e.column == c.column && e.description.contains(c.mentions) && e.file == path
        }
    }

    @Test("loading from a table that lacks a catalogue column names the column")
    func tableMissingColumn() async throws {
        let url = try await TestDatabase.fresh()
        let db = try PostgresConnection(url: url)
        try ProfileSchema.migrate(db)
        try db.execute("ALTER TABLE subscriber_profiles DROP COLUMN dropped_call_rate")
        #expect {
            _ = try ProfileLoader(url: url).load(shards: [0], shardCount: 4)
        } throws: { e in
            let e = e as! PostgresError
            return e.sqlState == "42703" && e.message.contains("dropped_call_rate")
        }
    }
}
