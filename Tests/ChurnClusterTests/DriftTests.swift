@testable import ChurnCluster
import Foundation
import Testing
import TestSupport
import WireFormat

@Suite("Population stability (drift): bins, PSI, Evidently's PSI on the same bins")
struct DriftTests {
    @Test("edges are the distinct deciles of the non-missing sample; a value on an edge falls in that edge's bin, NaN in the missing bin")
    func edgesAndBins() {
        let ramp = (1...100).map(Float.init) + [.nan, .nan]
        #expect(PopulationStability.edges(sample: ramp) == [10, 20, 30, 40, 50, 60, 70, 80, 90])
        // A binary feature, 70% zeros: the deciles collapse to two edges.
        let binary = [Float](repeating: 0, count: 70) + [Float](repeating: 1, count: 30)
        #expect(PopulationStability.edges(sample: binary) == [0, 1])
        #expect(PopulationStability.edges(sample: [.nan, .nan]) == [])
        #expect(PopulationStability.edges(sample: []) == [])

        let edges: [Float] = [0, 1, 5]
        edges.withUnsafeBufferPointer { e in
            #expect(PopulationStability.bin(-3, edges: e) == 0)
            #expect(PopulationStability.bin(0, edges: e) == 0)
            #expect(PopulationStability.bin(0.5, edges: e) == 1)
            #expect(PopulationStability.bin(1, edges: e) == 1)
            #expect(PopulationStability.bin(5, edges: e) == 2)
            #expect(PopulationStability.bin(5.01, edges: e) == 3)
            #expect(PopulationStability.bin(.infinity, edges: e) == 3)
            #expect(PopulationStability.bin(.nan, edges: e) == 4)
        }
        #expect(PopulationStability.binCount(edges: edges.count) == 5)
    }

    @Test("a shard's column count puts every value in the bin PopulationStability.bin names: edges hit exactly, NaN, infinities, few and many edges")
    func columnCount() {
        var rng = SeededGenerator("drift column count")
        for edgeCount in [0, 1, 2, 9, 16, 17, 64] {
            let edges = (0..<edgeCount).map { Float($0 * 3) - 20 }
            var column: [Float] = (0..<5_000).map { _ in Float(Int.random(in: -30...200, using: &rng)) / 2 }
            column += edges + [.nan, .infinity, -.infinity, -0.0, .nan]
            var fast = [Int64](repeating: 0, count: edgeCount + 2), slow = fast
            edges.withUnsafeBufferPointer { e in
                column.withUnsafeBufferPointer { c in
                    fast.withUnsafeMutableBufferPointer { ScoringModel.count(c.baseAddress!, rows: c.count, edges: e, into: $0) }
                }
                for v in column { slow[PopulationStability.bin(v, edges: e)] += 1 }
            }
            #expect(fast == slow, "\(edgeCount) edges")
            #expect(fast.reduce(0, +) == Int64(column.count) && fast[edgeCount + 1] == 2)
        }
    }

    @Test("PSI: 0 for the same shares, the formula by hand, an empty bin on one side filled, levels at 0.1 and 0.25")
    func psi() throws {
        #expect(PopulationStability.psi(reference: [10, 20, 30], current: [20, 40, 60]) == 0)
        let p = [0.25, 0.75], q = [0.5, 0.5]
        let byHand = (p[0] - q[0]) * log(p[0] / q[0]) + (p[1] - q[1]) * log(p[1] / q[1])
        let computed = try #require(PopulationStability.psi(reference: [25, 75], current: [50, 50]))
        #expect(abs(computed - byHand) < 1e-12)
        // A bin empty in the job counts as a share of 0.0001; bins empty on both sides are left out.
        let filled = try #require(PopulationStability.psi(reference: [50, 50, 0], current: [100, 0, 0]))
        let expected = (0.5 - 1.0) * log(0.5 / 1.0) + (0.5 - 0.0001) * log(0.5 / 0.0001)
        #expect(abs(filled - expected) < 1e-12)
        #expect(PopulationStability.psi(reference: [1, 2], current: [1, 2, 3]) == nil)
        #expect(PopulationStability.psi(reference: [0, 0], current: [1, 2]) == nil)
        #expect(PopulationStability.Level(psi: 0.0999) == .stable)
        #expect(PopulationStability.Level(psi: 0.1) == .watch)
        #expect(PopulationStability.Level(psi: 0.2499) == .watch)
        #expect(PopulationStability.Level(psi: 0.25) == .act)
        #expect(PopulationStability.Level.act > .watch && PopulationStability.Level.watch > .stable)
    }

    /// A reference and a current population of one feature, ChurnGrid's bins cut from the reference.
    struct Case {
        let name: String
        let reference: [Float]
        let current: [Float]
    }

    static func cases() -> [Case] {
        var rng = SeededGenerator("drift cases")
        func normal(_ n: Int, mean: Double, sd: Double, missing: Double = 0) -> [Float] {
            (0..<n).map { _ in
                if Double.random(in: 0..<1, using: &rng) < missing { return .nan }
                let u = Double.random(in: 1e-12..<1, using: &rng), v = Double.random(in: 0..<1, using: &rng)
                return Float(mean + sd * (-2 * log(u)).squareRoot() * cos(2 * .pi * v))
            }
        }
        func counts(_ n: Int, rate: Double) -> [Float] {
            (0..<n).map { _ in
                var k = 0
                while Double.random(in: 0..<1, using: &rng) < rate && k < 12 { k += 1 }
                return Float(k)
            }
        }
        return [
            Case(name: "same", reference: normal(20_000, mean: 50, sd: 10), current: normal(20_000, mean: 50, sd: 10)),
            Case(name: "small-shift", reference: normal(20_000, mean: 50, sd: 10), current: normal(15_000, mean: 52, sd: 10)),
            Case(name: "large-shift", reference: normal(20_000, mean: 50, sd: 10), current: normal(15_000, mean: 60, sd: 14)),
            Case(name: "missing-appears", reference: normal(10_000, mean: 0, sd: 1), current: normal(10_000, mean: 0, sd: 1, missing: 0.2)),
            Case(name: "beyond-every-edge", reference: normal(10_000, mean: 0, sd: 1), current: normal(5_000, mean: 100, sd: 1)),
            Case(name: "discrete-counts", reference: counts(30_000, rate: 0.3), current: counts(30_000, rate: 0.5)),
            // Bins the job leaves empty while its smallest share is under 0.0001 (one subscriber
            // in 20,001): the empty ones are filled with a millionth of that share.
            Case(name: "tiny-shares", reference: normal(100_000, mean: 0, sd: 1), current: normal(20_000, mean: 10, sd: 0.5) + [0]),
        ]
    }

    @Test("our PSI equals Evidently's on the same bins (its categorical PSI over our bin numbers)")
    func evidently() async throws {
        let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        let script = TestDatabase.packageRoot.appendingPathComponent("Tests/ChurnClusterTests/evidently_psi.py").path
        var lines: [String] = []
        var ours: [String: Double] = [:]
        for c in Self.cases() {
            let edges = PopulationStability.edges(sample: c.reference)
            let n = PopulationStability.binCount(edges: edges.count)
            var r = [Int64](repeating: 0, count: n), q = [Int64](repeating: 0, count: n)
            edges.withUnsafeBufferPointer { e in
                for v in c.reference {
                    let b = PopulationStability.bin(v, edges: e)
                    r[b] += 1
                    lines.append("\(c.name),r,\(b)")
                }
                for v in c.current {
                    let b = PopulationStability.bin(v, edges: e)
                    q[b] += 1
                    lines.append("\(c.name),c,\(b)")
                }
            }
            ours[c.name] = try #require(PopulationStability.psi(reference: r, current: q))
        }
        let input = "/tmp/churngrid-test-\(getpid())-drift-bins.csv"
        try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: input) }
        let (status, output) = await runCommand("\(shellQuoted(python)) \(shellQuoted(script)) \(shellQuoted(input))")
        try #require(status == 0, "evidently is required (`make test-deps` installs it): \(output)")
        var theirs: [String: Double] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: ",")
            if parts.count == 2, let v = Double(parts[1]) { theirs[String(parts[0])] = v }
        }
        for c in Self.cases() {
            let (a, b) = (ours[c.name] ?? .nan, theirs[c.name] ?? .nan)
            #expect(abs(a - b) <= 1e-9 * max(1, abs(b)), "\(c.name): ours \(a), Evidently's \(b)")
        }
        // The cases span the levels.
        #expect(ours["same"].map { PopulationStability.Level(psi: $0) } == .stable)
        #expect(ours["large-shift"].map { PopulationStability.Level(psi: $0) } == .act)
        #expect(ours["beyond-every-edge"].map { PopulationStability.Level(psi: $0) } == .act)
    }

    @Test("a drift request no coordinator sends is refused, naming what is wrong")
    func hostileRequests() throws {
        func refusal(_ r: DriftRequest, features: Int = 2) -> String {
            do {
                _ = try r.validatedEdges(features: features)
                return ""
            } catch {
                return error.description
            }
        }
        #expect(refusal(DriftRequest(modelVersion: "m", edges: [[1, 2]])).contains("bins for 1 features; the model reads 2"))
        #expect(refusal(DriftRequest(modelVersion: "m", edges: [[2, 1], []])).contains("not finite and ascending"))
        #expect(refusal(DriftRequest(modelVersion: "m", edges: [[.nan], []])).contains("not finite and ascending"))
        #expect(refusal(DriftRequest(modelVersion: "m", edges: [(0..<65).map(Float.init), []])).contains("claims 65 edges"))
        var short = DriftRequest(modelVersion: "m", edges: [[1], [2]])
        short.edgeCounts = BulkArray([1, 5])
        #expect(refusal(short).contains("claims 5 edges"))
        var extra = DriftRequest(modelVersion: "m", edges: [[1], [2]])
        extra.edges = BulkArray([1, 2, 3])
        #expect(refusal(extra).contains("1 edges beyond"))
        #expect(refusal(DriftRequest(modelVersion: "m", sampleRows: 1_000_000)).contains("sample rows"))
        #expect(refusal(DriftRequest(modelVersion: "m", edges: [[1, 2], [0]])) == "")
    }

    @Test("edges and counts go to PostgreSQL's array text and back exactly")
    func arrays() {
        let values: [Double] = [0, -1.5, 1e-30, Double(Float(0.1)), 123456789012, Double(Float.leastNormalMagnitude)]
        #expect(ClusterDatabase.numbers(EventLog.doubleArray(values)) == values)
        #expect(ClusterDatabase.numbers("{}") == [])
        #expect(ClusterDatabase.numbers("{1,x}") == nil)
        #expect(ClusterDatabase.numbers("1,2") == nil)
    }

    @Test("a report lists the worst first; the assembly sums shards and refuses a malformed answer")
    func assembly() throws {
        let report = DriftReport(job: 2, modelVersion: "m", referenceJob: 1,
                                 features: [FeatureDrift(feature: "a", psi: 0.01), FeatureDrift(feature: "b", psi: 0.3), FeatureDrift(feature: "c", psi: 0.12)])
        #expect(report.features.map(\.feature) == ["b", "c", "a"])
        #expect(report.worst == .act && report.at(.watch).map(\.feature) == ["c"] && !report.isReference)
        #expect(try DriftReport.decode(report.wireBytes()) == report)

        let edges: [[Float]] = [[1], [1, 2]]
        let sum = try DriftAssembly.counts(answers: [[1, 2, 3, 4, 5, 6, 7], [1, 1, 1, 1, 1, 1, 1]], edges: edges)
        #expect(sum == [[2, 3, 4], [5, 6, 7, 8]])
        #expect(throws: ClusterError.self) { try DriftAssembly.counts(answers: [[1, 2]], edges: edges) }
        // A hostile or broken answer: a negative count, or one that would overflow the sum.
        #expect(throws: ClusterError.self) { try DriftAssembly.counts(answers: [[1, 2, -3, 4, 5, 6, 7]], edges: edges) }
        #expect(throws: ClusterError.self) { try DriftAssembly.counts(answers: [[.max, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]], edges: edges) }
        #expect(PopulationStability.psi(reference: [5, -1], current: [2, 2]) == nil)
        // Infinities in a sample are no edges.
        #expect(PopulationStability.edges(sample: [-.infinity, 1, 2, .infinity, .nan]) == [1, 2])
        let fromSamples = try DriftAssembly.edges(samples: [[1, 10, 2, 20], [3, 30]], features: 2)
        #expect(fromSamples == [[1, 2, 3], [10, 20, 30]])
        #expect(throws: ClusterError.self) { try DriftAssembly.edges(samples: [[1, 2, 3]], features: 2) }
        #expect(DriftAssembly.scoreEdges.count == JobSummary.histogramBins - 1)
    }

    @Test("a reference file's bins: each feature cut at the deciles of every row, the rows counted in them, the scores in the job's 20 bins; one that does not fit the model is refused naming what")
    func referenceFromFile() throws {
        let a: [Float] = (1...100).map(Float.init), b: [Float] = (0..<100).map { $0 % 10 == 0 ? .nan : Float($0 % 2) }
        let p: [Float] = (0..<100).map { (Float($0) + 0.5) / 100 }
        let upload = DriftReferenceUpload.build(source: "ref.csv", featureNames: ["a", "b"], columns: [a, b], probabilities: p)
        #expect(upload.rows == 100 && upload.source == "ref.csv")
        #expect(upload.features[0] == ReferenceBins(feature: "a", edges: [10, 20, 30, 40, 50, 60, 70, 80, 90], counts: [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0]))
        // b: 10 missing, 40 zeros, 50 ones.
        #expect(upload.features[1] == ReferenceBins(feature: "b", edges: [0, 1], counts: [40, 50, 0, 10]))
        #expect(upload.score == [Int64](repeating: 5, count: 20))
        // It survives the wire, and stores as the reference a job would have taken.
        let decoded = try DriftReferenceUpload.decode(upload.wireBytes())
        #expect(decoded == upload)
        let reference = try decoded.validated(modelFeatures: ["b", "a"])
        #expect(reference.job == 0 && reference.bins.count == 3)
        #expect(reference.bins[DriftReport.scoreName]?.edges == DriftAssembly.scoreEdges && reference.bins[DriftReport.scoreName]?.counts == upload.score)

        func refused(_ u: DriftReferenceUpload, features: [String] = ["a", "b"], _ words: String) {
            do {
                _ = try u.validated(modelFeatures: features)
                Issue.record("accepted: \(words)")
            } catch {
                #expect(error.description.contains(words), "\(error)")
            }
        }
        refused(upload, features: ["a", "b", "c"], "no bins for model feature(s) c")
        refused(upload, features: ["a"], "bins for 'b', which the model does not read")
        var twice = upload; twice.features.append(upload.features[0])
        refused(twice, "feature 'a' twice")
        var unsorted = upload; unsorted.features[0].edges.swapAt(0, 1)
        refused(unsorted, "edges of 'a' are not finite and ascending")
        var infinite = upload; infinite.features[0].edges[8] = .infinity
        refused(infinite, "edges of 'a' are not finite and ascending")
        var short = upload; short.features[1].counts.removeLast()
        refused(short, "3 counts for 'b'; its bins are 4")
        var off = upload; off.features[1].counts[0] += 1
        refused(off, "counts for 'b' add up to 101, not its 100 rows")
        var negative = upload; negative.features[1].counts[0] = -1; negative.features[1].counts[1] = 91
        refused(negative, "count out of range for 'b'")
        var score = upload; score.score[0] += 1
        refused(score, "counts for the score add up to 101")
        var empty = upload; empty.rows = 0
        refused(empty, "has 0 rows")
    }

    @Test("a reference CSV without one of the model's columns, or without rows, is refused naming the file and the column")
    func referenceFileErrors() throws {
        let model = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: RescoringTests.model))), source: RescoringTests.model)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cg-reference-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let all = model.featureNames
        let missing = dir + "/missing.csv"
        try (all.dropLast().joined(separator: ",") + "\n" + all.dropLast().map { _ in "1" }.joined(separator: ",") + "\n").write(toFile: missing, atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try DriftReferenceUpload.read(path: missing, model: model) }
        do { _ = try DriftReferenceUpload.read(path: missing, model: model) } catch {
            #expect("\(error)".contains(missing) && "\(error)".contains(all.last ?? "?"), "\(error)")
        }
        let empty = dir + "/empty.csv"
        try (all.joined(separator: ",") + "\n").write(toFile: empty, atomically: true, encoding: .utf8)
        do { _ = try DriftReferenceUpload.read(path: empty, model: model); Issue.record("a file without rows was read") } catch {
            #expect("\(error)".contains(empty) && "\(error)".contains("no rows"), "\(error)")
        }
        let bad = dir + "/bad.csv"
        try (all.joined(separator: ",") + "\n" + all.map { _ in "x" }.joined(separator: ",") + "\n").write(toFile: bad, atomically: true, encoding: .utf8)
        do { _ = try DriftReferenceUpload.read(path: bad, model: model); Issue.record("a bad cell was read") } catch {
            #expect("\(error)".contains("\(bad):2: column '\(all[0])': 'x' is not a number"), "\(error)")
        }
        // A good file: every row scored as the engine scores it.
        let good = dir + "/good.csv"
        try (all.joined(separator: ",") + "\n" + all.map { _ in "1" }.joined(separator: ",") + "\n" + all.map { _ in "" }.joined(separator: ",") + "\n")
            .write(toFile: good, atomically: true, encoding: .utf8)
        let upload = try DriftReferenceUpload.read(path: good, model: model)
        #expect(upload.rows == 2 && upload.source == "good.csv" && upload.features.map(\.feature) == all)
        let p1 = Float(model.forest.transform(margin: model.forest.margin(row: [Float](repeating: 1, count: all.count))))
        let p2 = Float(model.forest.transform(margin: model.forest.margin(row: [Float](repeating: .nan, count: all.count))))
        var expected = [Int64](repeating: 0, count: 20)
        expected[JobSummary.scoreBin(p1)] += 1; expected[JobSummary.scoreBin(p2)] += 1
        #expect(upload.score == expected)
        #expect(upload.features.allSatisfy { $0.edges == [1] && $0.counts == [1, 0, 1] })
    }
}
