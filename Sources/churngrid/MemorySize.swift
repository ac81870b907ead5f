import Foundation

/// `--max-memory` values: bytes with an optional K, M or G (binary units), or a percentage of the
/// memory this process may use (the machine's, or its cgroup's limit when lower).
enum MemorySize {
    static func parse(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        if t.hasSuffix("%") {
            guard let percent = Double(t.dropLast()), percent > 0, percent <= 100, let total = available() else { return nil }
            return Int(Double(total) * percent / 100)
        }
        let units: [(String, Int)] = [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
        for (suffix, unit) in units where t.hasSuffix(suffix) || t.hasSuffix(suffix + "B") {
            let number = t.hasSuffix(suffix + "B") ? t.dropLast(2) : t.dropLast()
            guard let value = Double(number), value > 0, value * Double(unit) < Double(Int.max) else { return nil }
            return Int(value * Double(unit))
        }
        guard let bytes = Int(t), bytes > 0 else { return nil }
        return bytes
    }

    /// The machine's memory (MemTotal), or the cgroup v2 limit when it is lower.
    static func available() -> Int? {
        var total: Int?
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kb = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) {
            total = kb * 1024
        }
        if let limit = (try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines),
           let bytes = Int(limit), bytes > 0 {
            total = min(total ?? bytes, bytes)
        }
        return total
    }
}
