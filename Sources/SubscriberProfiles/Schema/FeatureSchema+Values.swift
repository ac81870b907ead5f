extension FeatureSchema {
    /// Why a cell cannot be a feature's value.
    public struct ValueProblem: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Largest integer magnitude an `integer` feature holds: every whole number up to it is exact
    /// in the `Float32` a profile keeps.
    public static let maxExactInteger = 16_777_216

    /// The in-memory value of the text `cell` for feature `j` (NaN = missing: an empty cell,
    /// `NaN` or `nan`, as for number columns read by `CSVTable`).
    ///
    /// - number: any finite number;
    /// - integer: a whole number of at most `maxExactInteger` in magnitude (`3.0` is 3);
    /// - boolean: `true`/`false`, `1`/`0`, `t`/`f`, `yes`/`no` (any case) as 1 or 0;
    /// - category: a category's name, else its code (a whole number below the category count).
    ///   (`1.0` is code 1). A name is matched first, so a category literally named `2` is that category.
    public func value(of cell: some StringProtocol, feature j: Int) -> Result<Float, ValueProblem> {
        guard features.indices.contains(j) else { return .failure(ValueProblem(message: "no feature \(j) in the schema")) }
        let text = cell.trimmingSpaces()
        if text.isEmpty || Self.missingWords.contains(String(text)) { return .success(.nan) }
        func fail(_ m: String) -> Result<Float, ValueProblem> {
            .failure(ValueProblem(message: "'\(String(text.prefix(40)))' \(m)"))
        }
        switch features[j].kind {
        case .number:
            guard let v = Double(text) else { return fail("is not a number (empty or NaN means missing)") }
            guard v.isFinite, abs(v) <= Double(Float.greatestFiniteMagnitude) else { return fail("is not a finite number") }
            return .success(Float(v))
        case .integer:
            guard let v = Double(text), v.isFinite else { return fail("is not a whole number") }
            guard v.rounded() == v else { return fail("is not a whole number (the feature is an integer; declare it number for fractions)") }
            guard abs(v) <= Double(Self.maxExactInteger) else {
                return fail("is beyond ±\(Self.maxExactInteger), which a profile cannot hold exactly (declare it number)")
            }
            return .success(Float(v))
        case .boolean:
            switch text.lowercased() {
            case "true", "t", "yes", "1", "1.0": return .success(1)
            case "false", "f", "no", "0", "0.0": return .success(0)
            default: return fail("is not a boolean (true/false, 1/0, yes/no)")
            }
        case .category(let names):
            if let code = code(of: String(text), feature: j) { return .success(Float(code)) }
            if let number = Double(text), number.isFinite, number.rounded() == number, abs(number) < 1e9 {
                let code = Int(number)
                guard code >= 0, code < names.count else {
                    return fail("is not a category of '\(features[j].name)', nor a code 0–\(names.count - 1)")
                }
                return .success(Float(code))
            }
            let near = NameSuggestions.nearest(to: String(text), among: names)
            return fail("is not a category of '\(features[j].name)'\(near.isEmpty ? "" : " (closest: \(near.joined(separator: ", ")))")")
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces.
    func trimmingSpaces() -> Substring {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
