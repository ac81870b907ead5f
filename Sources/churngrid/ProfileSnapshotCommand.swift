import ArgumentParser
import ChurnCluster
import ClusterSystem
import Foundation

/// `churngrid profiles snapshot`: every shard's owner writes a compact snapshot of its profiles
/// and event state (docs/profiles.md "Snapshots"); loads read them instead of the wide table.
struct ProfileSnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Have every shard's owner write a compact snapshot of its profiles (operator or admin): later loads and restarts read it instead of subscriber_profiles.")

    @OptionGroup var target: CoordinatorOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        let logger = makeLogger("churngrid.profiles")
        try await reportingClusterErrors {
            // Writing every shard takes a while on a large base (the workers write in parallel).
            let report = try await withCoordinator(target, logger: logger) { client in
                let write = { try await ClusterActorSystem.$callTimeout.withValue(.seconds(3600)) { try await client.coordinator.snapshotProfiles() } }
                if json { return try await write() }
                // Progress every 5 s: the shards written so far (the workers count each batch as it commits).
                @Sendable func written() async -> (Int, Int)? {
                    guard let s = await briefly({ try await client.coordinator.status() }), let loads = s.shardLoads else { return nil }
                    return (loads.map(\.snapshotsWritten).reduce(0, +), s.shardCount)
                }
                let before = await written()?.0 ?? 0
                return try await withProgress({
                    guard let (now, shards) = await written() else { return nil }
                    return "\(max(0, now - before)) of \(shards) shards snapshotted"
                }, write)
            }
            if json {
                try printJSON(report)
            } else {
                print(String(format: "%d of %d shards snapshotted: %d subscribers, %.1f MB (%.0f B/subscriber) in %.2f s",
                             report.written, report.shardCount, report.subscribers, Double(report.bytes) / 1e6,
                             report.subscribers > 0 ? Double(report.bytes) / Double(report.subscribers) : 0, report.seconds))
                if report.unowned > 0 { print("  \(report.unowned) shards have no ready owner: not snapshotted") }
                for w in report.workers {
                    print("  \(w.worker): \(w.written) shards, \(w.subscribers) subscribers" + (w.skipped.isEmpty ? "" : ", \(w.skipped.count) skipped"))
                    for s in w.skipped.prefix(5) { print("    skipped \(s)") }
                }
            }
            if report.written + report.unowned < report.shardCount || report.unowned > 0 { throw ExitCode(1) }
        }
    }
}
