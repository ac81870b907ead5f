import ArgumentParser
import FeatureTable
import Foundation
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles

/// `churngrid generate …` (the base, the default) and `churngrid generate events …`.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a synthetic subscriber base, or an event stream for it (reproducible for a seed).",
        subcommands: [GenerateBase.self, GenerateEvents.self],
        defaultSubcommand: GenerateBase.self
    )
}

struct GenerateBase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "base",
        abstract: "Generate a synthetic subscriber base (reproducible for a seed) into a CSV file or PostgreSQL (the default).")

    @Option(help: "Number of subscribers.")
    var subscribers: Int

    @Option(help: "Seed: the same seed gives the same base.")
    var seed: UInt64 = 1

    @Option(help: "Write a CSV file (subscriber_id, the features, churned_30d).")
    var out: String?

    @Option(help: "Replace subscriber_profiles in this PostgreSQL database (URL without a password: PGPASSWORD or PGPASSFILE).")
    var postgres: String?

    @Flag(help: "Replace subscriber_profiles in the PostgreSQL of CHURNGRID_POSTGRES_URL (a URL with its password stays out of the process list). Never implied: it replaces the base.")
    var postgresFromEnvironment = false

    func validate() throws {
        guard subscribers >= 1 else { throw ValidationError("--subscribers must be at least 1") }
        guard [out != nil, postgres != nil, postgresFromEnvironment].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --out FILE.csv, --postgres URL and --postgres-from-environment")
        }
    }

    func run() throws {
        let base = SyntheticBase(seed: seed)
        let bar = ProgressBar(label: "generating", total: subscribers)
        if postgres != nil || postgresFromEnvironment {
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

struct GenerateEvents: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Generate a realistic NDJSON event stream for the synthetic base of the same seed (docs/events.md).")

    @Option(help: "Number of subscribers of the base (ids as `churngrid generate`).")
    var subscribers: Int

    @Option(help: "Number of event lines.")
    var events: Int

    @Option(help: "Seed: of the base (as `churngrid generate --seed`) and of the stream.")
    var seed: UInt64 = 1

    @Option(help: "The stream's first instant, RFC 3339.")
    var start: String = "2026-12-01T00:00:00Z"

    @Option(help: "Share of lines repeating an earlier event (same source and event_id).")
    var duplicates: Double = 0.005

    @Option(help: "Share of events sent late (hours to ten days before the stream's clock).")
    var late: Double = 0.005

    @Option(help: "NDJSON file to write ('-' for standard output).")
    var out: String

    func validate() throws {
        guard subscribers >= 1 else { throw ValidationError("--subscribers must be at least 1") }
        guard events >= 0 else { throw ValidationError("--events must be 0 or more") }
        guard Timestamp.parse(start) != nil else { throw ValidationError("--start must be an RFC 3339 time with a zone") }
        guard (0...1).contains(duplicates), (0...1).contains(late) else { throw ValidationError("--duplicates and --late are shares between 0 and 1") }
    }

    func run() throws {
        var options = EventGenerator.Options(subscribers: subscribers, events: events, seed: seed)
        options.start = Timestamp.parse(start)!
        options.duplicateShare = duplicates
        options.lateShare = late
        let bar = ProgressBar(label: "events", total: events)
        var generator = EventGenerator(options)
        let file: UnsafeMutablePointer<FILE>? = out == "-" ? fdopen(1, "w") : fopen(out, "w")
        guard let file else {
            FileHandle.standardError.write(Data("error: cannot write \(out): \(String(cString: strerror(errno)))\n".utf8))
            Foundation.exit(1)
        }
        let clock = ContinuousClock()
        let started = clock.now
        var written = 0
        var line = [UInt8]()
        line.reserveCapacity(256)
        generator.generate { event in
            line.removeAll(keepingCapacity: true)
            line.append(contentsOf: event.ndjson.utf8)
            line.append(0x0A)
            _ = line.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
            written += 1
            if written % 65536 == 0 {
                let d = clock.now - started
                bar.update(written, seconds: Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
            }
        }
        let failed = ferror(file) != 0
        if out != "-" { if fclose(file) != 0 || failed { fail() } } else if fflush(file) != 0 || failed { fail() }
        bar.finish()
        let span = Double(generator.spanMillis) / 86_400_000
        FileHandle.standardError.write(Data("\(written) events for \(subscribers) subscribers over \(String(format: "%.2f", span)) days written to \(out)\n".utf8))
        func fail() -> Never {
            FileHandle.standardError.write(Data("error: writing \(out) failed: \(String(cString: strerror(errno)))\n".utf8))
            Foundation.exit(1)
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
