import FeatureTable
import Foundation
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

@Suite("The feature schema in PostgreSQL")
struct FeatureSchemaStoreTests {
    /// The catalogue plus IBM Telco-style features of every type.
    static func extended(categories: [String] = ["Month-to-month", "One year", "Two year"], extra: [FeatureSchema.Feature] = []) throws -> FeatureSchema {
        try FeatureSchema(id: "subscriber_id", features: FeatureSchema.catalogue.features + [
            .init(name: "tenure", kind: .integer, unit: "months"),
            .init(name: "senior_citizen", kind: .boolean),
            .init(name: "contract", kind: .category(categories)),
            .init(name: "monthly_charges", kind: .number, unit: "USD"),
        ] + extra)
    }

    static func version(_ db: PostgresConnection) throws -> String? {
        try db.query("SELECT max(version) FROM churngrid_feature_schema").scalar
    }

    @Test("a new database holds the built-in catalogue as schema version 1, one real column per feature")
    func startsWithCatalogue() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        let stored = try FeatureSchemaStore.current(db)
        #expect(stored.version == 1 && stored.schema == FeatureSchema.catalogue)
        #expect(try FeatureSchemaStore.columns(db) == FeatureCatalogue.names.map { .init(name: $0, type: "real") })
    }

    @Test("applying a schema adds its columns with their types, records the version and who applied it; applying it again changes nothing")
    func extend() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        let schema = try Self.extended()
        let applied = try FeatureSchemaStore.apply(schema, to: db, allowDrop: false, appliedBy: "ops-alice")
        #expect(applied.version == 2)
        #expect(applied.change.added.map(\.name) == ["tenure", "senior_citizen", "contract", "monthly_charges"])
        let columns = try FeatureSchemaStore.columns(db)
        #expect(columns.suffix(4) == [.init(name: "tenure", type: "integer"), .init(name: "senior_citizen", type: "boolean"),
                                      .init(name: "contract", type: "smallint"), .init(name: "monthly_charges", type: "real")])
        #expect(try FeatureSchemaStore.current(db).schema == schema)
        let audit = try db.query("SELECT actor, action, target, outcome FROM churngrid_audit_log").rows
        #expect(audit == [["ops-alice", "profiles.migrate", "feature schema version 2", applied.change.summary]])
        let again = try FeatureSchemaStore.apply(schema, to: db, allowDrop: false, appliedBy: "ops-alice")
        #expect(again.change.isEmpty && again.version == 2)
        #expect(try Self.version(db) == "2")
        // A description alone is a new version, with no column change.
        var described = schema.features
        described[described.count - 1].description = "Monthly charge, before tax."
        let redescribed = try FeatureSchemaStore.apply(try FeatureSchema(id: "subscriber_id", features: described), to: db, allowDrop: false, appliedBy: "ops-bob")
        #expect(redescribed.version == 3 && redescribed.change.added.isEmpty && redescribed.change.summary == "descriptions updated")
    }

    @Test("profiles are imported by the schema: categories by name or code, booleans, integers; a file by another schema is refused")
    func importBySchema() async throws {
        let url = try await TestDatabase.fresh()
        let db = try PostgresConnection(url: url)
        let schema = try Self.extended()
        try FeatureSchemaStore.apply(schema, to: db, allowDrop: false, appliedBy: "test")
        let header = "subscriber_id," + schema.names.joined(separator: ",")
        let catalogueCells = Array(repeating: "1", count: FeatureCatalogue.count).joined(separator: ",")
        let text = [header,
                    "10,\(catalogueCells),12,Yes,Two year,70.35",
                    "11,\(catalogueCells),3.0,false,0,",
                    "12,\(catalogueCells),,1,One year,NaN"].joined(separator: "\n") + "\n"
        let path = try ProfileImportTests.write(text)
        let file = try ProfileImport(path: path, schema: schema)
        #expect(try file.upsert(into: db) == .init(inserted: 3, updated: 0))
        let rows = try db.query("SELECT subscriber_id, tenure, senior_citizen, contract, monthly_charges FROM subscriber_profiles ORDER BY 1").rows
        #expect(rows == [["10", "12", "t", "2", "70.35"], ["11", "3", "f", "0", nil], ["12", nil, "t", "1", nil]])

        // Read by the catalogue alone, the same database refuses it: its features are not all there.
        let old = try ProfileImport(path: try ProfileImportTests.write(ProfileImportTests.csv(ids: ["13"])))
        #expect { try old.upsert(into: db) } throws: { e in
            (e as? ProfileImport.SchemaMismatch)?.message.contains("missing from the file's schema: tenure, senior_citizen, contract, monthly_charges") == true
        }
        #expect(try db.query("SELECT count(*) FROM subscriber_profiles").scalar == "3")

        // Loaded as a store holding only some features: each as its in-memory value, in the order asked.
        let loader = try ProfileLoader(url: url, schema: schema, features: ["contract", "senior_citizen", "tenure", "arpu_30d", "monthly_charges"])
        let (stores, report) = try loader.load(shards: [0, 1], shardCount: 2)
        #expect(report.rows == 3)
        var held: [Int64: [Float]] = [:]
        for store in stores.values {
            #expect(store.featureCount == 5)
            for row in 0..<store.count { held[store.id(at: row)] = (0..<5).map { store.value(row: row, feature: $0) } }
        }
        #expect(held[10].map { Array($0.prefix(4)) } == [2, 1, 12, 1] && held[10]?[4] == Float(70.35))
        #expect(held[11].map { Array($0.prefix(4)) } == [0, 0, 3, 1] && held[11]?[4].isNaN == true)
        #expect(held[12].map { [$0[0], $0[1], $0[3]] } == [1, 1, 1] && held[12]?[2].isNaN == true && held[12]?[4].isNaN == true, "\(String(describing: held[12]))")
        #expect { _ = try ProfileLoader(url: url, schema: schema, features: ["contracts"]) } throws: { e in
            (e as? FeatureSchemaStore.Failure)?.message.contains("closest: contract") == true
        }

        // A value that is not a category names its line and column, with the closest categories.
        // A warehouse export with its own headers, mapped by a schema file's `column`s (same
        // features, types and categories as the schema in force).
        var mapped = schema.features
        for i in mapped.indices where !FeatureCatalogue.names.contains(mapped[i].name) { mapped[i].column = "Telco " + mapped[i].name }
        let mapping = try FeatureSchema(id: "customerID", features: mapped)
        let exportText = ["customerID," + mapped.map { $0.column ?? $0.name }.joined(separator: ","),
                          "12,\(catalogueCells),40,no,0,55.5"].joined(separator: "\n")
        #expect(try ProfileImport(path: try ProfileImportTests.write(exportText), schema: mapping).upsert(into: db) == .init(inserted: 0, updated: 1))
        #expect(try db.query("SELECT tenure, senior_citizen, contract, monthly_charges FROM subscriber_profiles WHERE subscriber_id = 12").rows == [["40", "f", "0", "55.5"]])

        let bad = try ProfileImportTests.write([header, "14,\(catalogueCells),5,Yes,Two years,1"].joined(separator: "\n"))
        #expect { _ = try ProfileImport(path: bad, schema: schema) } throws: { e in
            guard let e = e as? TableError else { return false }
            return e.line == 2 && e.column == "contract" && e.message.contains("closest: Two year")
        }
    }

    struct Refused: Sendable, CustomTestStringConvertible {
        var label: String
        var schema: @Sendable () throws -> FeatureSchema
        var allowDrop: Bool
        var mentions: String
        var testDescription: String { label }
    }

    static let refusals: [Refused] = [
        Refused(label: "a column left out without --allow-drop", schema: {
            try FeatureSchema(id: "subscriber_id", features: try extended().features.filter { $0.name != "monthly_charges" })
        }, allowDrop: false, mentions: "monthly_charges. Their data would be lost: pass --allow-drop"),
        Refused(label: "a column a registered model reads, even with --allow-drop", schema: {
            try FeatureSchema(id: "subscriber_id", features: try extended().features.filter { $0.name != "tenure" })
        }, allowDrop: true, mentions: "tenure (read by model telco-churn"),
        Refused(label: "a type change", schema: {
            try FeatureSchema(id: "subscriber_id", features: try extended().features.map {
                $0.name == "tenure" ? .init(name: "tenure", kind: .number) : $0
            })
        }, allowDrop: true, mentions: "tenure is integer in subscriber_profiles, the schema says number"),
        Refused(label: "categories reordered", schema: {
            try extended(categories: ["One year", "Month-to-month", "Two year"])
        }, allowDrop: true, mentions: "contract (was [Month-to-month, One year, Two year])"),
        Refused(label: "a category removed", schema: {
            try extended(categories: ["Month-to-month", "One year"])
        }, allowDrop: true, mentions: "another meaning"),
    ]

    @Test("a change that would lose data or change its meaning is refused, naming the columns; the table and the version stay", arguments: refusals)
    func refused(_ c: Refused) async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        try FeatureSchemaStore.apply(try Self.extended(), to: db, allowDrop: false, appliedBy: "test")
        try db.query("""
            INSERT INTO model_registry (name, version, source, format, features, bytes, sha256, added_by)
            VALUES ('telco-churn', 'a1b2c3', 'telco.json', 'xgboost', ARRAY['tenure', 'contract'], '\\x00', 'x', 'test')
            """)
        let before = try FeatureSchemaStore.columns(db)
        #expect { try FeatureSchemaStore.apply(try c.schema(), to: db, allowDrop: c.allowDrop, appliedBy: "test") } throws: { e in
            let ok = (e as? SchemaChange.Refusal)?.message.contains(c.mentions) == true
            if !ok { print("\(c.label): \(e)") }
            return ok
        }
        #expect(try FeatureSchemaStore.columns(db) == before)
        #expect(try Self.version(db) == "2")
    }

    @Test("categories may be added at the end; with --allow-drop a feature nothing reads is dropped with its data, a built-in catalogue feature too (the workers then hold it as missing)")
    func extendAndDrop() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        try FeatureSchemaStore.apply(try Self.extended(extra: [.init(name: "partner", kind: .boolean)]), to: db, allowDrop: false, appliedBy: "test")
        let extended = try Self.extended(categories: ["Month-to-month", "One year", "Two year", "Three year"])
        let grown = try FeatureSchema(id: extended.id, features: extended.features.filter { $0.name != "arpu_30d" })
        let applied = try FeatureSchemaStore.apply(grown, to: db, allowDrop: true, appliedBy: "test")
        #expect(applied.change.extended == ["contract": 1])
        #expect(Set(applied.change.dropped) == ["partner", "arpu_30d"])
        #expect(applied.version == 3)
        #expect(try FeatureSchemaStore.columns(db).map(\.name) == grown.names)
    }

    @Test("a worker's catalogue load follows the schema in force: a catalogue feature dropped is missing, one dropped and added again as an integer is read as its value")
    func catalogueBySchema() async throws {
        let url = try await TestDatabase.fresh()
        let db = try PostgresConnection(url: url)
        let catalogue = FeatureSchema.catalogue.features
        let without = try FeatureSchema(id: "subscriber_id", features: catalogue.filter { $0.name != "region" && $0.name != "arpu_30d" })
        try FeatureSchemaStore.apply(without, to: db, allowDrop: true, appliedBy: "test")
        let readded = try FeatureSchema(id: "subscriber_id", features: without.features + [.init(name: "region", kind: .integer)])
        try FeatureSchemaStore.apply(readded, to: db, allowDrop: false, appliedBy: "test")
        try db.execute("INSERT INTO subscriber_profiles (subscriber_id, region, tenure_months) VALUES (42, 12, 7)")
        let (stores, _) = try ProfileLoader.catalogue(url: url).load(shards: [ShardKey.shard(of: 42, shardCount: 4)], shardCount: 4)
        let profile = try #require(stores.values.lazy.compactMap { $0.profile(of: 42) }.first)
        #expect(profile[FeatureCatalogue.index(of: "region")!] == 12, "an integer column is cast, not read as a float's bits")
        #expect(profile[FeatureCatalogue.index(of: "tenure_months")!] == 7)
        #expect(profile[FeatureCatalogue.index(of: "arpu_30d")!].isNaN, "a dropped catalogue feature is missing")
    }

    @Test("text of every kind (quotes, backslashes, tabs, non-ASCII) survives the trip through PostgreSQL's jsonb")
    func textRoundTrip() async throws {
        let db = try PostgresConnection(url: try await TestDatabase.fresh())
        let schema = try FeatureSchema(id: "Kunden-Nr.", features: FeatureSchema.catalogue.features + [
            .init(name: "tarif", kind: .category(["Grün \"Spar\"", "back\\slash", "日本 プラン", "tab\there", "emoji 📶"]), column: "Tarif (aktuell)",
                  unit: "€/Monat", description: "Line one\nline two — with 'quotes' and $schema$ and \u{1}", group: "vertrag"),
        ])
        try FeatureSchemaStore.apply(schema, to: db, allowDrop: false, appliedBy: "test")
        #expect(try FeatureSchemaStore.inForce(db).schema == schema)
    }

    /// Applies the extended schema while another session holds `lock` (taken in its transaction):
    /// the error it gives up with, and the columns afterwards; then the lock is released and the
    /// same change goes through.
    static func applyWhileLocked(_ lock: String) async throws -> (error: Error?, columnsWhileLocked: Int) {
        let url = try await TestDatabase.fresh()
        let db = try PostgresConnection(url: url)
        try ProfileSchema.migrate(db)
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        try holder.execute(lock)
        let schema = try extended()
        let failure = await onOwnThread { () -> Error? in
            do {
                _ = try FeatureSchemaStore.apply(schema, to: db, allowDrop: false, appliedBy: "test")
                return nil
            } catch {
                return error
            }
        }
        let columns = try FeatureSchemaStore.columns(db).count
        #expect(try Self.version(db) == "1")
        try holder.execute("COMMIT")
        #expect(try FeatureSchemaStore.apply(schema, to: db, allowDrop: false, appliedBy: "test").version == 2)
        return (failure, columns)
    }

    @Test("two schema changes at once: the second waits for the first at most the lock timeout, then gives up changing nothing")
    func concurrentMigrate() async throws {
        let (failure, columns) = try await Self.applyWhileLocked("LOCK TABLE churngrid_feature_schema IN EXCLUSIVE MODE")  // what a migrate in progress holds
        #expect((failure as? FeatureSchemaStore.Failure)?.message.contains("another profiles migrate --schema is applying a schema") == true, "\(String(describing: failure))")
        #expect(columns == FeatureCatalogue.count)
    }

    @Test("a table held by a long load is not waited on for ever: the change gives up after the lock timeout, changing nothing, and goes through once the load is over")
    func busyTable() async throws {
        let (failure, columns) = try await Self.applyWhileLocked("LOCK TABLE subscriber_profiles IN ACCESS SHARE MODE")  // what a COPY out holds
        #expect((failure as? FeatureSchemaStore.Failure)?.message.contains("stayed locked for 5s") == true, "\(String(describing: failure))")
        #expect(columns == FeatureCatalogue.count)
    }

    @Test("churngrid profiles migrate --schema, profiles schema and profiles import --schema, as an operator runs them")
    func commandLine() async throws {
        let url = try await TestDatabase.fresh()
        let cli = shellQuoted(try churngridExecutable())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cg-schema-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let schemaPath = dir.appendingPathComponent("telco.json").path
        try Data(try Self.extended().document().utf8).write(to: URL(fileURLWithPath: schemaPath))

        let migrated = await runCommand("\(cli) profiles migrate --schema \(schemaPath) --postgres \(url)")
        #expect(migrated.status == 0 && migrated.output.contains("feature schema version 2 (40 features): added 4 column(s): tenure, senior_citizen, contract, monthly_charges"),
                "\(migrated.output)")
        let again = await runCommand("\(cli) profiles migrate --schema \(schemaPath) --postgres \(url)")
        #expect(again.status == 0 && again.output.contains("feature schema unchanged (version 2, 40 features)"), "\(again.output)")
        let printed = await runCommand("\(cli) profiles schema --postgres \(url) 2>/dev/null")
        let expected = try Self.extended().document()
        #expect(printed.status == 0 && printed.output == expected, "\(printed.output)")

        let header = "subscriber_id," + (try Self.extended()).names.joined(separator: ",")
        let cells = Array(repeating: "2", count: FeatureCatalogue.count).joined(separator: ",")
        let csv = try ProfileImportTests.write([header, "7,\(cells),5,no,Month-to-month,19.5"].joined(separator: "\n"))
        let imported = await runCommand("\(cli) profiles import --schema \(schemaPath) --input \(csv) --postgres \(url)")
        #expect(imported.status == 0 && imported.output.contains("1 subscribers added, 0 updated"), "\(imported.output)")
        // Its progress, a line a stage on standard error.
        #expect(imported.output.contains("read and checked 1 profiles") && imported.output.contains("merging them into subscriber_profiles"), "\(imported.output)")
        let plain = await runCommand("\(cli) profiles import --input \(csv) --postgres \(url)")
        #expect(plain.status == 0 && plain.output.contains("0 subscribers added, 1 updated"), "by the schema in force: \(plain.output)")

        let badPath = dir.appendingPathComponent("bad.json").path
        try Data(#"{"id": "subscriber_id", "features": [{"name": "tenure", "type": "integr"}]}"#.utf8).write(to: URL(fileURLWithPath: badPath))
        let bad = await runCommand("\(cli) profiles migrate --schema \(badPath) --postgres \(url)")
        #expect(bad.status == 1 && bad.output.contains("features[0].type: 'integr' is not a feature type") && bad.output.contains("closest: integer"), "\(bad.output)")
        let dropping = await runCommand("\(cli) profiles migrate --schema \(Self.defaultSchemaPath) --postgres \(url)")
        #expect(dropping.status == 1 && dropping.output.contains("pass --allow-drop"), "\(dropping.output)")
        let dropped = await runCommand("\(cli) profiles migrate --schema \(Self.defaultSchemaPath) --allow-drop --postgres \(url)")
        #expect(dropped.status == 0 && dropped.output.contains("feature schema version 3 (36 features): dropped 4 column(s)"), "\(dropped.output)")
        let db = try PostgresConnection(url: url)
        #expect(try FeatureSchemaStore.columns(db).map(\.name) == FeatureCatalogue.names)
        let dropAlone = await runCommand("\(cli) profiles migrate --allow-drop --postgres \(url)")
        #expect(dropAlone.status != 0 && dropAlone.output.contains("--allow-drop goes with --schema FILE"), "\(dropAlone.output)")
    }

    static let defaultSchemaPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Deploy/schema/default.json").path
}
