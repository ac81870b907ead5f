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
                // Progress every 5 s: the shards written so far (each worker counts its batches as
                // they commit; a worker's count from before this run is taken off; a worker that did
                // not answer then or now is left out of the sum), of the shards with an owner.
                @Sendable func written() async -> (byWorker: [String: Int], owned: Int)? {
                    guard let s = await briefly({ try await client.coordinator.status() }), let loads = s.shardLoads else { return nil }
                    return (Dictionary(loads.map { ($0.worker, $0.snapshotsWritten) }, uniquingKeysWith: max), s.shardCount - s.unassignedShards)
                }
                let before = await written()?.byWorker
                return try await withProgress({
                    guard let before, let (now, owned) = await written() else { return nil }
                    let done = now.reduce(0) { sum, w in sum + max(0, w.value - (before[w.key] ?? w.value)) }
                    return "\(done) of \(owned) owned shards snapshotted"
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
