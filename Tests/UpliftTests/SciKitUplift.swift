import Foundation
import TestSupport

/// scikit-uplift's own answers for the datasets, computed once per test run by one python3
/// process (importing the library takes seconds).
enum SciKitUplift {
    /// What scikit-uplift says about one dataset; nil where it raised or returned NaN.
    struct Answer: Sendable {
        var qini: Double?
        var upliftAt30: Double?
        /// `qini_curve` as (x, y) pairs; empty when it was not printed or raised.
        var curve: [(x: Int, y: Double)]
    }

    /// Why the reference could not be computed: the test fails with this, it is never skipped.
    struct Unavailable: Error, CustomStringConvertible {
        var description: String
    }

    static let answers = Task<Result<[String: Answer], Unavailable>, Never> {
        await compute(UpliftDataset.all)
    }

    static let script = #"""
import sys, math, warnings
warnings.simplefilter("ignore")
import numpy as np
from sklift.metrics import qini_auc_score, uplift_at_k, qini_curve

def show(v):
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v))

for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    score, t, y = data[:, 0], data[:, 1].astype(int), data[:, 2].astype(int)
    try:
        q = qini_auc_score(y, score, t)
    except Exception as e:
        q = None
    try:
        u = uplift_at_k(y, score, t, strategy="overall", k=0.3)
    except Exception as e:
        u = None
    print("RESULT", name, show(q), show(u))
    try:
        x, c = qini_curve(y, score, t)
        print("CURVE", name, ";".join("%d:%r" % (a, float(b)) for a, b in zip(x, c)))
    except Exception:
        pass
"""#

    static func compute(_ datasets: [UpliftDataset]) async -> Result<[String: Answer], Unavailable> {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cg-sklift-\(UUID())")
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try script.write(to: dir.appendingPathComponent("reference.py"), atomically: true, encoding: .utf8)
            for d in datasets {
                try d.csv.write(to: dir.appendingPathComponent("\(d.name).csv"), atomically: true, encoding: .utf8)
            }
        } catch {
            return .failure(Unavailable(description: "cannot write the datasets under \(dir.path): \(error)"))
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        let arguments = datasets.map { "\(shellQuoted($0.name)) \(shellQuoted(dir.appendingPathComponent("\($0.name).csv").path))" }
        let command = "python3 \(shellQuoted(dir.appendingPathComponent("reference.py").path)) " + arguments.joined(separator: " ")
        let (status, output) = await runCommand(command)
        guard status == 0 else {
            return .failure(Unavailable(description: """
                python3 with scikit-uplift is required for this test and failed (status \(status)); \
                `make test-deps` or `python3 -m pip install scikit-uplift` installs it. Output:
                \(output)
                """))
        }
        var answers: [String: Answer] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 4, parts[0] == "RESULT" {
                answers[String(parts[1]), default: Answer(curve: [])].qini = Double(parts[2]).flatMap { $0.isNaN ? nil : $0 }
                answers[String(parts[1]), default: Answer(curve: [])].upliftAt30 = Double(parts[3]).flatMap { $0.isNaN ? nil : $0 }
            } else if parts.count == 3, parts[0] == "CURVE" {
                let points = parts[2].split(separator: ";").compactMap { p -> (x: Int, y: Double)? in
                    let xy = p.split(separator: ":")
                    guard xy.count == 2, let x = Int(xy[0]), let y = Double(xy[1]) else { return nil }
                    return (x, y)
                }
                answers[String(parts[1]), default: Answer(curve: [])].curve = points
            }
        }
        let missing = datasets.map(\.name).filter { answers[$0] == nil }
        guard missing.isEmpty else {
            return .failure(Unavailable(description: "python3 printed no result for \(missing); output:\n\(output)"))
        }
        return .success(answers)
    }
}
