import ArgumentParser
import ChurnCluster
import ClusterSystem
import Foundation
import WireFormat

/// `churngrid subscribers …`: operations on individual subscribers.
struct SubscribersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribers",
        abstract: "Operations on individual subscribers.",
        subcommands: [EraseSubscribers.self])
}

/// `churngrid subscribers erase ID…`: forget subscribers who asked to be forgotten.
struct EraseSubscribers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Erase subscribers (admin): their profiles, scores, events, triggers, campaign actions, contacts, consent and outcomes, from PostgreSQL and from every shard, standby and snapshot.",
        discussion: "Every worker erases them from memory first; only then are they deleted from PostgreSQL, in one transaction. The audit log records that they were erased (the ids), never what was removed. Refused while a job or a campaign run is running. Erasing twice is harmless: a failed erasure is run again. docs/models.md, \"Erasure\".")

    @OptionGroup var target: CoordinatorOptions

    @Argument(help: "Subscriber ids.")
    var ids: [String] = []

    @Option(help: "A file of subscriber ids, one per line (blank lines and lines starting with # are skipped).")
    var input: String?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        if ids.isEmpty && input == nil { throw ValidationError("name the subscribers to erase: ids, or --input FILE") }
    }

    /// The ids of the arguments and the file, each checked (a clear error names the bad one and where).
    func subscriberIDs() throws -> [Int64] {
        var out: [Int64] = []
        for (k, text) in ids.enumerated() {
            guard let id = Int64(text), id != Int64.min else { throw ValidationError("argument \(k + 1), '\(text.prefix(40))', is not a subscriber id (an integer)") }
            out.append(id)
        }
        if let input {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: input)) } catch {
                throw ValidationError("cannot read \(input): \(error.localizedDescription)")
            }
            for (k, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let id = Int64(line), id != Int64.min else { throw ValidationError("\(input):\(k + 1): '\(line.prefix(40))' is not a subscriber id (an integer)") }
                out.append(id)
            }
        }
        guard !out.isEmpty else { throw ValidationError("no subscriber ids to erase\(input.map { " (\($0) has none)" } ?? "")") }
        guard Set(out).count <= Erasure.maxSubscribers else {
            throw ValidationError("\(Set(out).count) subscribers; at most \(Erasure.maxSubscribers) per erasure: split the list")
        }
        return out
    }

    func run() async throws {
        let logger = makeLogger("churngrid.subscribers")
        let wanted = try subscriberIDs()
        try await reportingClusterErrors {
            let report = try await withCoordinator(target, logger: logger) { client in
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) {
                    try await client.coordinator.erase(subscribers: BulkArray(wanted))
                }
            }
            if json {
                try printJSON(report)
            } else {
                print("erased \(report.subscribers) subscribers: \(report.foundInMemory) were held in memory (\(report.copies) copies on \(report.workers) workers)"
                      + String(format: "; %.2f s", report.seconds))
                let rows = report.rows.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                print("  PostgreSQL rows deleted: \(rows)")
                if report.snapshots > 0 {
                    print("  \(report.snapshots) shard snapshots deleted: `churngrid profiles snapshot` writes them again")
                }
            }
        }
    }
}
