#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The text report of `churngrid simulate`: one row per strategy, then the line saying what the
/// numbers are. Deterministic (no locale).
public enum SimulationTable {
    /// The caveat printed under every table.
    public static let caveat = "results on the synthetic base, not a forecast for a real operator"

    /// The table for `results` (one or more strategies of the same world).
    public static func render(_ results: [StrategyResult]) -> String {
        var lines: [String] = []
        if let first = results.first {
            lines.append("simulated \(first.subscribers) subscribers over \(first.months) months, seed \(first.seed), "
                         + "budget \(number(first.budgetPerMonth, 2)) per monthly run (synthetic base)")
        }
        let header = ["strategy", "retention", "churn/mo", "treated", "control", "uplift pp", "95% CI (pp)",
                      "retained", "net value", "net value (expected)", "budget used"]
        var rows = [header]
        for r in results {
            let t = r.total
            let ci = r.upliftCI95PP.map { "[\(number($0.low, 2)), \(number($0.high, 2))]" } ?? "n/a"
            rows.append([r.strategy.rawValue, percent(r.retentionRate), percent(r.monthlyChurnRate), String(t.treated), String(t.control),
                         r.upliftPP.map { number($0, 2) } ?? "n/a", ci, r.retained.map { number($0, 0) } ?? "n/a",
                         r.netValue.map { number($0, 0) } ?? "n/a", number(r.netValueExpected, 0), number(t.budgetUsed, 0)])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for (i, row) in rows.enumerated() {
            let cells = row.enumerated().map { c, s in
                c == 0 ? s + String(repeating: " ", count: widths[c] - s.count) : String(repeating: " ", count: widths[c] - s.count) + s
            }
            lines.append(cells.joined(separator: "  "))
            if i == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        lines.append(caveat)
        return lines.joined(separator: "\n")
    }

    static func percent(_ v: Double) -> String { number(v * 100, 2) + "%" }

    /// `v` with `decimals` decimals, thousands unseparated, no locale.
    static func number(_ v: Double, _ decimals: Int) -> String {
        guard v.isFinite else { return "n/a" }
        var buf = [CChar](repeating: 0, count: 64)
        _ = buf.withUnsafeMutableBufferPointer { b in
            withVaList([v]) { vsnprintf(b.baseAddress, b.count, "%.\(decimals)f", $0) }
        }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
