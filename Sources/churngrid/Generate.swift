import ArgumentParser
import FeatureTable
import Foundation
import Postgres
import ProfileDatabase
import SubscriberProfiles

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a synthetic subscriber base (reproducible for a seed) into a CSV file or PostgreSQL.")

    @Option(help: "Number of subscribers.")
    var subscribers: Int

    @Option(help: "Seed: the same seed gives the same base.")
    var seed: UInt64 = 1

    @Option(help: "Write a CSV file (subscriber_id, the features, churned_30d).")
    var out: String?

    @Option(help: "Replace subscriber_profiles in this PostgreSQL database (URL).")
    var postgres: String?

    func validate() throws {
        guard subscribers >= 1 else { throw ValidationError("--subscribers must be at least 1") }
        guard (out == nil) != (postgres == nil) else { throw ValidationError("give exactly one of --out FILE.csv and --postgres URL") }
    }

    func run() throws {
        let base = SyntheticBase(seed: seed)
        let bar = ProgressBar(label: "generating", total: subscribers)
        if let postgres {
            try reportingErrors {
                let connection = try PostgresConnection(url: try postgresURL(option: postgres))
                let report = try BaseLoader(connection: connection).load(base, count: subscribers) { p in
                    bar.update(p.rows, seconds: p.seconds)
                }
                bar.finish()
                print("\(report.rows) subscribers into \(connection.endpoint) in \(String(format: "%.1f", report.seconds)) s "
                      + "(COPY \(String(format: "%.1f", report.copySeconds)) s, shard index \(String(format: "%.1f", report.indexSeconds)) s), "
                      + "churn rate \(String(format: "%.2f", 100 * Double(report.churned) / Double(report.rows)))%")
            }
        } else if let out {
            try reportingErrors {
                let writer = try CSVWriter(path: out)
                writer.text("subscriber_id")
                for name in FeatureCatalogue.names { writer.text(name) }
                writer.text("churned_30d")
                try writer.endLine()
                var churned = 0
                let clock = ContinuousClock()
                let start = clock.now
                try base.generate(0..<subscribers) { id, profile, label in
                    writer.raw(String(id).utf8)
                    for v in profile { if v.isNaN { writer.empty() } else { writer.number(v) } }
                    writer.raw(label ? [UInt8(ascii: "1")] : [UInt8(ascii: "0")])
                    try writer.endLine()
                    if label { churned += 1 }
                    if id % 65536 == 0 {
                        let d = clock.now - start
                        bar.update(Int(id - base.firstID), seconds: Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
                    }
                }
                try writer.flush()
                bar.finish()
                print("\(subscribers) subscribers written to \(out), churn rate \(String(format: "%.2f", 100 * Double(churned) / Double(subscribers)))%")
            }
        }
    }
}

/// A progress line on standard error: done, total, rate and time left. Redrawn in place on a
/// terminal, printed every few seconds otherwise (logs, CI).
final class ProgressBar: @unchecked Sendable {
    // @unchecked: used from the thread that owns the command only.
    let label: String
    let total: Int
    private let tty = isatty(2) == 1
    private var lastPrinted = -10.0

    init(label: String, total: Int) {
        self.label = label
        self.total = total
    }

    func update(_ done: Int, seconds: Double) {
        guard tty || seconds - lastPrinted >= 5 else { return }
        lastPrinted = seconds
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let rate = seconds > 0 ? Double(done) / seconds : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = String(format: "%@ [%@] %d/%d %3.0f%%  %.0fk/s  ETA %.0fs", label, bar, done, total, fraction * 100, rate / 1000, eta)
        FileHandle.standardError.write(Data((tty ? "\r" + line : line + "\n").utf8))
    }

    func finish() {
        if tty { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
