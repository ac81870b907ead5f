import ArgumentParser
import ChurnCluster
import Foundation
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles

struct ProfilesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles",
        abstract: "Subscriber profiles in PostgreSQL.",
        subcommands: [Migrate.self, Import.self, Load.self, Schema.self, ProfileSnapshotCommand.self]
    )

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or upgrade ChurnGrid's tables; with --schema, make subscriber_profiles hold a feature schema.",
            discussion: """
                With --schema FILE (docs/models.md, "The feature schema"), features the table lacks get a \
                column (online: no rewrite, loads and queries go on) and the file becomes the schema in \
                force. Columns the file leaves out are dropped, with their data, only with --allow-drop, \
                and never while a registered model or the built-in catalogue reads them. A type never \
                changes in place; categories may only be added at the end.
                """)

        @Option(help: "PostgreSQL URL without a password (PGPASSWORD or PGPASSFILE). Default: CHURNGRID_POSTGRES_URL.")
        var postgres: String?

        @Option(help: "A feature schema file (JSON) to apply.")
        var schema: String?

        @Flag(name: .customLong("allow-drop"), help: "Drop the columns (and data) of features the schema leaves out.")
        var allowDrop = false

        func run() throws {
            if allowDrop && schema == nil { throw ValidationError("--allow-drop goes with --schema FILE") }
            try reportingErrors {
                // The file is read and checked first: a bad one changes nothing in the database.
                let file = try schema.map { try FeatureSchema.parse(try readSchemaFile($0), source: $0) }
                let connection = try PostgresConnection(url: try postgresURL(option: postgres))
                let applied = try ProfileSchema.migrate(connection)
                print(applied.isEmpty ? "tables up to date" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
                guard let file else { return }
                let result = try FeatureSchemaStore.apply(file, to: connection, allowDrop: allowDrop, appliedBy: operatingSystemUser())
                print(result.change.isEmpty
                      ? "feature schema unchanged (version \(result.version), \(file.count) features)"
                      : "feature schema version \(result.version) (\(file.count) features): \(result.change.summary)")
            }
        }
    }

    struct Schema: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the feature schema in force (or the built-in default) as a schema file.")

        @Option(help: "PostgreSQL URL without a password (PGPASSWORD or PGPASSFILE). Default: CHURNGRID_POSTGRES_URL.")
        var postgres: String?

        @Flag(name: .customLong("default"), help: "Print the built-in catalogue's schema (Deploy/schema/default.json) without a database.")
        var builtIn = false

        @Flag(help: "Print it as a Markdown page (docs/features.md is the default schema's).")
        var markdown = false

        func run() throws {
            try reportingErrors {
                if builtIn {
                    print(markdown ? FeatureSchema.catalogueDocumentation() : FeatureSchema.catalogue.document(), terminator: "")
                    return
                }
                // Read only: no migration (a read-only role can print the schema).
                let stored = try FeatureSchemaStore.inForce(try PostgresConnection(url: try postgresURL(option: postgres)))
                FileHandle.standardError.write(Data("feature schema version \(stored.version), \(stored.schema.count) features\n".utf8))
                if markdown {
                    print(stored.schema.markdown(title: "Subscriber features (schema version \(stored.version))",
                                                 introduction: "The feature schema in force, in column order (docs/models.md, \"The feature schema\")."),
                          terminator: "")
                } else {
                    print(stored.schema.document(), terminator: "")
                }
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upsert profiles from a CSV export (the id column and every feature of the schema in force; empty or NaN = missing).")

        @Option(help: "CSV file with a header.")
        var input: String

        @Option(help: "The feature schema file the export follows (default: the schema in force); it must match the one in force.")
        var schema: String?

        @Option(help: "PostgreSQL URL without a password (PGPASSWORD or PGPASSFILE). Default: CHURNGRID_POSTGRES_URL.")
        var postgres: String?

        @Option(name: .customLong("as-of"), help: "When the warehouse took these profiles (RFC 3339; default: now). Shards loaded from PostgreSQL afterwards replay the events received after it.")
        var asOf: String?

        func run() throws {
            try reportingErrors {
                var asOfMillis: Int64?
                if let asOf {
                    guard let t = Timestamp.parse(asOf) else { throw ValidationError("--as-of: an RFC 3339 time with a zone, e.g. 2026-12-03T02:00:00Z") }
                    asOfMillis = t
                }
                let connection = try PostgresConnection(url: try postgresURL(option: postgres))
                let inForce = try FeatureSchemaStore.current(connection)
                let byFile = try schema.map { path in try FeatureSchema.parse(try readSchemaFile(path), source: path) }
                if let byFile { try ProfileImport.check(byFile, against: inForce) }  // before reading the whole export
                // Progress on standard error, one line a stage (the answer stays on standard output).
                let start = ContinuousClock.now
                func say(_ text: String) {
                    FileHandle.standardError.write(Data(String(format: "  %@ (%.1f s)\n", text, Double((ContinuousClock.now - start) / .milliseconds(1)) / 1000).utf8))
                }
                say("reading \(input)")
                let file = try ProfileImport(path: input, schema: byFile ?? inForce.schema)
                say("read and checked \(file.ids.count) profiles; staging them in PostgreSQL")
                let report = try file.upsert(into: connection, asOf: asOfMillis) { stage in
                    switch stage {
                    case .staging(let rows, let total): say("staged \(rows)/\(total) profiles")
                    case .merging(let rows): say("staged \(rows) profiles; merging them into subscriber_profiles")
                    case .countingOlder: say("merged; counting the rows this import left older")
                    }
                }
                print("\(report.inserted) subscribers added, \(report.updated) updated")
            }
        }
    }

    struct Load: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load shards' profiles into memory as a worker does, and report speed and memory.")

        @Option(help: "PostgreSQL URL without a password (PGPASSWORD or PGPASSFILE). Default: CHURNGRID_POSTGRES_URL.")
        var postgres: String?

        @Option(help: "Shards in the cluster.")
        var shardCount: Int = 1024

        @Option(help: "Shards to load: 'all', or a range such as 0-511.")
        var shards: String = "all"

        @Option(help: "Parallel COPY streams (connections).")
        var streams: Int = 2

        @Option(help: ArgumentHelp("Load only these features of the schema in force (comma-separated), as a store holding only what its models read would; default: the built-in catalogue's.",
                                   valueName: "names"))
        var features: String?

        @Flag(help: "Print one JSON object.")
        var json = false

        func validate() throws {
            guard (1...ShardMap.maxShardCount).contains(shardCount) else { throw ValidationError("--shard-count: 1 to \(ShardMap.maxShardCount)") }
            guard (1...64).contains(streams) else { throw ValidationError("--streams: 1 to 64 connections") }
        }

        func run() throws {
            let list: [Int]
            if shards == "all" {
                list = Array(0..<shardCount)
            } else {
                let parts = shards.split(separator: "-").compactMap { Int($0) }
                guard parts.count == 2, parts[0] <= parts[1], parts[0] >= 0, parts[1] < shardCount else {
                    throw ValidationError("--shards takes 'all' or FIRST-LAST within 0..<\(shardCount)")
                }
                list = Array(parts[0]...parts[1])
            }
            try reportingErrors {
                let url = try postgresURL(option: postgres)
                let loader: ProfileLoader
                if let features {
                    let names = features.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
                    loader = try ProfileLoader(url: url, schema: try FeatureSchemaStore.inForce(try PostgresConnection(url: url)).schema, features: names)
                } else {
                    loader = try ProfileLoader.catalogue(url: url)
                }
                let before = processResidentBytes()
                let (stores, report) = try loader.load(shards: list, shardCount: shardCount, streams: streams)
                let after = processResidentBytes()
                let held = stores.values.reduce(0) { $0 + $1.residentBytes }
                let rows = max(report.rows, 1)
                let result = LoadResult(
                    shards: list.count, features: stores.values.first?.featureCount ?? 0, rows: report.rows, seconds: report.seconds, rowsPerSecond: report.rowsPerSecond,
                    storeBytesPerSubscriber: Double(held) / Double(rows),
                    residentBytesPerSubscriber: Double(after - before) / Double(rows))
                if json {
                    try printJSON(result)
                } else {
                    print(String(format: "%d subscribers × %d features in %d shards in %.2f s: %.0f profiles/s; %.0f B/subscriber held (%.0f B resident)",
                                 result.rows, result.features, result.shards, result.seconds, result.rowsPerSecond,
                                 result.storeBytesPerSubscriber, result.residentBytesPerSubscriber))
                }
                withExtendedLifetime(stores) {}
            }
        }
    }

    struct LoadResult: Codable {
        var shards: Int
        var features: Int
        var rows: Int
        var seconds: Double
        var rowsPerSecond: Double
        var storeBytesPerSubscriber: Double
        var residentBytesPerSubscriber: Double

        enum CodingKeys: String, CodingKey {
            case shards, features, rows, seconds
            case rowsPerSecond = "rows_per_second"
            case storeBytesPerSubscriber = "store_bytes_per_subscriber"
            case residentBytesPerSubscriber = "resident_bytes_per_subscriber"
        }
    }
}

/// A schema file's bytes (at most `FeatureSchema.maxFileBytes` are accepted by the parser).
func readSchemaFile(_ path: String) throws -> [UInt8] {
    // One byte more than a schema may have: the parser refuses it with the limit named.
    try readOptionFile(path, option: "--schema", limit: FeatureSchema.maxFileBytes + 1, truncate: true)
}

/// The operating-system user running the command (who applied a change, for the audit log).
func operatingSystemUser() -> String {
    if let entry = getpwuid(getuid()), let name = entry.pointee.pw_name { return String(cString: name) }
    return "uid \(getuid())"
}
