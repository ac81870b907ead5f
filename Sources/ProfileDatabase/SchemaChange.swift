import SubscriberProfiles

/// What `profiles migrate --schema` does to `subscriber_profiles` to make it hold a new schema,
/// decided from what the table and the stored schema are now (pure: no database).
///
/// Rules:
/// - a feature without a column gets one, NULL (missing) for every subscriber: PostgreSQL adds a
///   nullable column without rewriting the table, so loads, imports and queries go on;
/// - a column whose feature the schema no longer has is dropped, with its data, only when
///   `allowDrop` says so, and never while something still reads it (`readers`);
/// - a column's type never changes (that rewrites the table and changes the values' meaning):
///   the feature needs a new name;
/// - a category feature may gain categories at the end; removing, renaming or reordering them
///   would give stored codes another meaning.
public struct SchemaChange: Sendable, Equatable {
    /// Features that get a column, in schema order.
    public var added: [FeatureSchema.Feature]
    /// Columns dropped, in table order.
    public var dropped: [String]
    /// Category features that gain categories: name → how many are new.
    public var extended: [String: Int]
    /// True when the stored schema document changes (descriptions, units, order, or any of the above).
    public var documentChanges: Bool

    /// Nothing to do at all.
    public var isEmpty: Bool { added.isEmpty && dropped.isEmpty && extended.isEmpty && !documentChanges }

    /// A schema change that cannot be made, and why.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// One column of `subscriber_profiles` as it is: its name and PostgreSQL type (`real`,
    /// `integer`, `boolean`, `smallint`, or anything else someone created by hand).
    public struct Column: Sendable, Equatable {
        public var name: String
        public var type: String

        public init(name: String, type: String) {
            self.name = name
            self.type = type
        }
    }

    /// Plans the change from `columns` (the table's feature columns, in table order) and
    /// `stored` (the schema in force) to `schema`.
    /// - Parameters:
    ///   - readers: for columns that must not be dropped, what reads them (a registered model,
    ///     the built-in catalogue the cluster loads).
    /// - Throws: `Refusal` naming every column concerned and what to do.
    public static func plan(columns: [Column], stored: FeatureSchema?, to schema: FeatureSchema,
                            allowDrop: Bool, readers: [String: String]) throws(Refusal) -> SchemaChange {
        let existing = Dictionary(columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        var added: [FeatureSchema.Feature] = []
        var retyped: [String] = []
        var recoded: [String] = []
        var extended: [String: Int] = [:]
        for f in schema.features {
            guard let type = existing[f.name] else {
                added.append(f)
                continue
            }
            if type != f.kind.sqlType {
                retyped.append("\(f.name) is \(type) in subscriber_profiles, the schema says \(f.kind.name) (\(f.kind.sqlType))")
                continue
            }
            if case .category(let new) = f.kind, let before = stored?.features.first(where: { $0.name == f.name }) {
                if case .category(let old) = before.kind {
                    if new.count < old.count || Array(new.prefix(old.count)) != old {
                        recoded.append("\(f.name) (was [\(old.joined(separator: ", "))])")
                    } else if new.count > old.count {
                        extended[f.name] = new.count - old.count
                    }
                }
            }
        }
        guard retyped.isEmpty else {
            throw Refusal(message: "a column's type cannot change in place: \(retyped.joined(separator: "; ")). Keep the type, or add the feature under a new name (and drop the old one with --allow-drop once nothing reads it)")
        }
        guard recoded.isEmpty else {
            throw Refusal(message: "categories may only be added at the end of a list; these would give stored codes another meaning: \(recoded.joined(separator: "; ")). Keep the old categories first, in their order")
        }
        let kept = Set(schema.names)
        let dropped = columns.map(\.name).filter { !kept.contains($0) }
        if !dropped.isEmpty {
            let read = dropped.compactMap { name in readers[name].map { "\(name) (read by \($0))" } }
            guard read.isEmpty else {
                throw Refusal(message: "the schema leaves out columns that are still read: \(Self.listed(read)). Keep them in the schema")
            }
            guard allowDrop else {
                throw Refusal(message: "the schema leaves out \(dropped.count) column(s) of subscriber_profiles: \(Self.listed(dropped)). Their data would be lost: pass --allow-drop to drop them, or keep them in the schema")
            }
        }
        let documentChanges = stored.map { $0 != schema } ?? true
        return SchemaChange(added: added, dropped: dropped, extended: extended, documentChanges: documentChanges)
    }

    /// The `ALTER TABLE` that makes the change (nil when no column changes).
    public var alterSQL: String? {
        let clauses = added.map { "ADD COLUMN \($0.name) \($0.kind.sqlType)" } + dropped.map { "DROP COLUMN \($0)" }
        return clauses.isEmpty ? nil : "ALTER TABLE subscriber_profiles " + clauses.joined(separator: ", ")
    }

    /// The first ten names, then how many more (a wide schema adds hundreds at once).
    static func listed(_ names: [String]) -> String {
        names.prefix(10).joined(separator: ", ") + (names.count > 10 ? " and \(names.count - 10) more" : "")
    }

    /// One line saying what the change does.
    public var summary: String {
        if isEmpty { return "schema unchanged" }
        var parts: [String] = []
        if !added.isEmpty { parts.append("added \(added.count) column(s): \(Self.listed(added.map(\.name)))") }
        if !dropped.isEmpty { parts.append("dropped \(dropped.count) column(s): \(Self.listed(dropped))") }
        if !extended.isEmpty { parts.append("new categories for \(Self.listed(extended.keys.sorted()))") }
        if parts.isEmpty { parts.append("descriptions updated") }
        return parts.joined(separator: "; ")
    }
}
