/// "Did you mean …": the names nearest to a misspelt one, for errors that name what was meant.
public enum NameSuggestions {
    /// The candidates nearest to `word` by edit distance: at most three, none more than one edit
    /// farther than the nearest, nearest first (ties by name).
    public static func nearest(to word: String, among candidates: [String]) -> [String] {
        let w = Array(word.utf8.prefix(128))
        var seen = Set<String>()
        let scored = candidates.filter { seen.insert($0).inserted }.map { (editDistance(w, Array($0.utf8.prefix(128))), $0) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        guard let best = scored.first?.0 else { return [] }
        return scored.prefix(3).filter { $0.0 <= best + 1 }.map(\.1)
    }

    /// Levenshtein distance of two byte strings.
    public static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count), current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
