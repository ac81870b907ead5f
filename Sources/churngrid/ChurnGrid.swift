import ArgumentParser
import BatchScoring
import FeatureTable
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import TreeModel

@main
struct ChurnGrid: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "churngrid",
        abstract: "ChurnGrid: churn scoring for a telecom operator's whole subscriber base.",
        subcommands: [
            ModelCommand.self, Generate.self, ProfilesCommand.self,
            DemoCommand.self, CoordinatorCommand.self, WorkerCommand.self, RescoreCommand.self, ScoreCommand.self, StatusCommand.self,
            NodesCommand.self, TokensCommand.self, EventsCommand.self, TriggersCommand.self, CampaignCommand.self, OutcomesCommand.self,
            ClusterCommand.self, BenchCommand.self, SimulateCommand.self, DriftCommand.self, SubscribersCommand.self, ModelsCommand.self,
        ]
    )

    /// Refuses to start with a `CHURNGRID_SCORING_KERNEL` that names no kernel this processor runs
    /// (rather than scoring with another one than the operator pinned), then runs the command.
    static func main() async {
        do {
            _ = try ScoringKernel.configured(ProcessInfo.processInfo.environment[ScoringKernel.environmentVariable])
        } catch {
            exit(withError: ValidationError(error.message))
        }
        await main(nil)
    }
}

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Inspect, run and measure XGBoost / LightGBM tree models.",
        subcommands: [Inspect.self, Score.self, Bench.self]
    )
}

/// Logs go to standard error so that standard output stays clean for JSON and data.
/// The first call sets the process's logging up; later ones only make a logger.
func makeLogger(_ label: String) -> Logger {
    _ = loggingBootstrapped
    return Logger(label: label)
}

private let loggingBootstrapped: Bool = {
    LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    return true
}()

func defaultThreads() -> Int { ProcessInfo.processInfo.activeProcessorCount }

/// Runs `body`, turning ChurnGrid's errors (model, table, PostgreSQL) into one clear line on
/// stderr and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ModelError {
        fail(e)
    } catch let e as TableError {
        fail(e)
    } catch let e as PostgresError {
        fail(e)
    } catch let e as FeatureSchemaError {
        fail(e)
    } catch let e as SchemaChange.Refusal {
        fail(e)
    } catch let e as FeatureSchemaStore.Failure {
        fail(e)
    } catch let e as ProfileImport.SchemaMismatch {
        fail(e)
    }
    func fail(_ e: CustomStringConvertible) -> Never {
        FileHandle.standardError.write(Data("error: \(e)\n".utf8))
        Foundation.exit(1)
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

extension ModelCommand {
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a model's objective, trees, depth, features and base score.")

        @Argument(help: "XGBoost JSON or LightGBM text model file.")
        var file: String

        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        func run() throws {
            try reportingErrors {
                let model = try TreeEnsemble.load(path: file)
                let compiled = try CompiledForest(model)  // a model that loads but cannot be compiled is reported here
                let summary = ModelSummary(model, file: file, compiled: compiled)
                if json { try printJSON(summary) } else { print(summary.text) }
            }
        }
    }

    struct Score: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Score a CSV file: copies the non-feature columns and adds margin, probability and reasons.")

        @Option(help: "XGBoost JSON or LightGBM text model file.")
        var model: String

        @Option(help: "Input CSV with a header; columns named like the model's features are features.")
        var input: String

        @Option(help: "Output CSV to write.")
        var output: String

        @Option(help: "Add the K strongest reasons (reason1..K, contribution1..K).")
        var explain: Int = 0

        @Option(help: "How to compute reasons: exact (TreeSHAP) or approx (path attribution, much faster).")
        var explainMethod: ExplainMethod = .exact

        @Option(help: "Threads to use (default: all cores).")
        var threads: Int = defaultThreads()

        func validate() throws {
            guard (0...10_000).contains(explain) else { throw ValidationError("--explain: 0 to 10000 reasons per row") }
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        }

        func run() throws {
            let logger = makeLogger("churngrid.model.score")
            try reportingErrors {
                let options = FileScoring.Options(explain: explain, explainMethod: explainMethod.method, threads: threads)
                _ = try FileScoring(logger: logger).run(modelPath: model, input: input, output: output, options: options)
            }
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure scoring speed on a CSV file (rows read once, scored --repeat times; median reported).")

        @Option(help: "XGBoost JSON or LightGBM text model file.")
        var model: String

        @Option(help: "Input CSV with the model's feature columns.")
        var input: String

        @Option(help: "Threads to use.")
        var threads: Int = 1

        @Option(name: .customLong("repeat"), help: "Timed scoring passes.")
        var repeats: Int = 5

        @Option(help: "Also time this many rows through the single-row path.")
        var singleRow: Int = 0

        @Option(help: "Also time exact TreeSHAP and the path attribution on this many rows (one thread).")
        var explainRows: Int = 0

        @Option(help: "Block kernels: automatic (the leaf-bitvector walk on AVX-512, else AVX2, where the processor has it), avx2 (that walk on AVX2 even where AVX-512 is there) or portable.")
        var kernel: ScoringKernel = .automatic

        @Flag(help: "Print one JSON object.")
        var json = false

        func validate() throws {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
            guard repeats >= 1 else { throw ValidationError("--repeat must be at least 1") }
            guard kernel.isAvailable else { throw ValidationError("--kernel \(kernel.rawValue): this processor does not have \(kernel.rawValue.uppercased())") }
        }

        func run() throws {
            try reportingErrors {
                let options = EngineBenchmark.Options(threads: threads, repeats: repeats, singleRowSamples: singleRow, explainRows: explainRows, kernel: kernel)
                let r = try EngineBenchmark().run(modelPath: model, input: input, options: options)
                if json {
                    try printJSON(r)
                } else {
                    print("rows \(r.rows), threads \(r.threads): \(Int(r.rowsPerSecond)) rows/s (median of \(r.repeats)), \(String(format: "%.1f", r.nsPerRow)) ns/row")
                    if let p50 = r.singleRowNsP50, let p99 = r.singleRowNsP99 {
                        print("single row: p50 \(String(format: "%.2f", p50 / 1000)) µs, p99 \(String(format: "%.2f", p99 / 1000)) µs")
                    }
                    if let s = r.shapRowsPerSecond { print("TreeSHAP: \(Int(s)) rows/s (1 thread)") }
                    if let a = r.approxContribsRowsPerSecond { print("path attribution: \(Int(a)) rows/s (1 thread)") }
                    if let a = r.reasonsRowsPerSecond { print("scores with top-3 reasons for every row (leaf tables): \(Int(a)) rows/s (1 thread)") }
                }
            }
        }
    }
}

extension ScoringKernel: ExpressibleByArgument {}

enum ExplainMethod: String, ExpressibleByArgument, CaseIterable {
    case exact, approx
    var method: TreeExplainer.Method { self == .exact ? .exact : .approximate }
}
