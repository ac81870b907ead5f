extension FeatureSchema {
    /// The schema as a Markdown page: a title, an introduction, then one table per group (in the
    /// order groups first appear; features without a group under "Other features") with each
    /// feature's position, name, type, unit and description. `docs/features.md` is this page for
    /// the default schema (`catalogueDocumentation`); `churngrid profiles schema --markdown`
    /// prints it for the schema in force.
    public func markdown(title: String, introduction: String, headings: [String: String] = [:]) -> String {
        var groups: [String?] = []
        for f in features where !groups.contains(f.group) { groups.append(f.group) }
        var out = "# \(title)\n\n\(introduction)\n"
        for group in groups {
            let heading = group.map { headings[$0] ?? Self.capitalized($0) } ?? "Other features"
            out += "\n## \(heading)\n\n| # | feature | type | unit | meaning |\n|---|---|---|---|---|\n"
            for (i, f) in features.enumerated() where f.group == group {
                var type = f.kind.name
                if case .category(let names) = f.kind {
                    type += ": " + names.prefix(12).enumerated().map { "\($0.offset) = \(Self.cell($0.element))" }.joined(separator: ", ")
                        + (names.count > 12 ? ", … (\(names.count))" : "")
                }
                out += "| \(i) | `\(f.name)` | \(type) | \(Self.cell(f.unit ?? "")) | \(Self.cell(f.description ?? "")) |\n"
            }
        }
        return out
    }

    /// docs/features.md: the default schema's page.
    public static func catalogueDocumentation() -> String {
        catalogue.markdown(title: "Subscriber features", introduction: """
            The built-in catalogue of the synthetic base: the default feature schema \
            (`Deploy/schema/default.json`; docs/models.md, "The feature schema"), in column order. \
            `subscriber_profiles` has one `real` column per feature (NULL = missing), profiles in \
            memory hold NaN for missing, and the default model reads the features by these names. \
            Trends are ratios: the last 30 days over the average of the three months before, minus 1 \
            (−0.3 means a 30% fall).

            This page is generated from the schema: `churngrid profiles schema --default --markdown \
            > docs/features.md` (a test keeps it so). `churngrid profiles schema --markdown \
            --postgres URL` prints the same page for the schema in force.
            """, headings: [
                "account": "Account and contract", "billing": "Billing and balance", "usage": "Usage",
                "experience": "Experience and operations", "intent": "Intent", "market": "Market",
            ])
    }

    /// Text for a table cell: pipes escaped, line breaks as spaces.
    static func cell(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "|": out += "\\|"
            case "\n", "\r": out += " "
            default: out.append(c)
            }
        }
        return out
    }

    static func capitalized(_ s: String) -> String {
        guard let first = s.first else { return s }
        return first.uppercased() + s.dropFirst().replacingUnderscores()
    }
}

extension Substring {
    func replacingUnderscores() -> String { String(map { $0 == "_" ? " " : $0 }) }
}
