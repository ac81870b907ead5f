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
        subcommands: [Migrate.self, Import.self, Load.self, ProfileSnapshotCommand.self]
    )

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create or upgrade ChurnGrid's tables.")

        @Option(help: "PostgreSQL URL without a password (PGPASSWORD or PGPASSFILE). Default: CHURNGRID_POSTGRES_URL.")
        var postgres: String?

        func run() throws {
            try reportingErrors {
                let applied = try ProfileSchema.migrate(try PostgresConnection(url: try postgresURL(option: postgres)))
                print(applied.isEmpty ? "schema up to date" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upsert profiles from a CSV export (subscriber_id and every catalogue feature; empty or NaN = missing).")

        @Option(help: "CSV file with a header.")
        var input: String

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
                let file = try ProfileImport(path: input)
                let report = try file.upsert(into: try PostgresConnection(url: try postgresURL(option: postgres)), asOf: asOfMillis)
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

        @Flag(help: "Print one JSON object.")
        var json = false

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
                let before = processResidentBytes()
                let (stores, report) = try ProfileLoader(url: try postgresURL(option: postgres)).load(shards: list, shardCount: shardCount, streams: streams)
                let after = processResidentBytes()
                let held = stores.values.reduce(0) { $0 + $1.residentBytes }
                let rows = max(report.rows, 1)
                let result = LoadResult(
                    shards: list.count, rows: report.rows, seconds: report.seconds, rowsPerSecond: report.rowsPerSecond,
                    storeBytesPerSubscriber: Double(held) / Double(rows),
                    residentBytesPerSubscriber: Double(after - before) / Double(rows))
                if json {
                    try printJSON(result)
                } else {
                    print(String(format: "%d subscribers in %d shards in %.2f s: %.0f profiles/s; %.0f B/subscriber held (%.0f B resident)",
                                 result.rows, result.shards, result.seconds, result.rowsPerSecond,
                                 result.storeBytesPerSubscriber, result.residentBytesPerSubscriber))
                }
                withExtendedLifetime(stores) {}
            }
        }
    }

    struct LoadResult: Codable {
        var shards: Int
        var rows: Int
        var seconds: Double
        var rowsPerSecond: Double
        var storeBytesPerSubscriber: Double
        var residentBytesPerSubscriber: Double

        enum CodingKeys: String, CodingKey {
            case shards, rows, seconds
            case rowsPerSecond = "rows_per_second"
            case storeBytesPerSubscriber = "store_bytes_per_subscriber"
            case residentBytesPerSubscriber = "resident_bytes_per_subscriber"
        }
    }
}
