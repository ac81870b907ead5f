import Foundation
import SubscriberProfiles
import Testing

@Suite("The feature schema file")
struct FeatureSchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The public IBM Telco churn columns, mapped from its CSV's headers, one of each type.
    static let telco = """
        {"id": "customerID", "features": [
          {"name": "tenure", "type": "integer", "unit": "months", "description": "Months with the company."},
          {"name": "senior_citizen", "column": "SeniorCitizen", "type": "boolean"},
          {"name": "contract", "column": "Contract", "type": "category", "categories": ["Month-to-month", "One year", "Two year"]},
          {"name": "internet_service", "column": "InternetService", "type": "category", "categories": ["DSL", "Fiber optic", "No"], "group": "services"},
          {"name": "monthly_charges", "column": "MonthlyCharges", "type": "number", "unit": "USD", "description": null},
          {"name": "total_charges", "column": "TotalCharges", "type": "number", "unit": "USD"}
        ]}
        """

    @Test("the built-in catalogue is the default schema: Deploy/schema/default.json is its document, which reads back as it")
    func catalogue() throws {
        let schema = FeatureSchema.catalogue
        #expect(schema.names == FeatureCatalogue.names)
        #expect(schema.features.allSatisfy { $0.kind == .number && $0.description != nil })
        let document = schema.document()
        #expect(try FeatureSchema.parse(Array(document.utf8), source: "document") == schema)
        #expect(!document.contains("$schema$"), "migration 15 dollar-quotes the document with $schema$")
        let file = try String(contentsOf: Self.root.appendingPathComponent("Deploy/schema/default.json"), encoding: .utf8)
        #expect(file == document, "Deploy/schema/default.json is out of date: churngrid profiles schema --default > Deploy/schema/default.json")
    }

    @Test("a schema of every type reads as written; values are read by type, categories by name or by code")
    func telcoSchema() throws {
        let s = try FeatureSchema.parse(Array(Self.telco.utf8), source: "telco.json")
        #expect(s.id == "customerID" && s.features[2].column == "Contract" && s.features[0].column == nil)
        #expect(s.names == ["tenure", "senior_citizen", "contract", "internet_service", "monthly_charges", "total_charges"])
        #expect(s.features.map(\.kind.sqlType) == ["integer", "boolean", "smallint", "smallint", "real", "real"])
        #expect(s.features[0].unit == "months" && s.features[3].group == "services" && s.features[4].description == nil)
        #expect(try FeatureSchema.parse(Array(s.document().utf8), source: "again") == s)

        func value(_ cell: String, _ name: String) -> Result<Float, FeatureSchema.ValueProblem> {
            s.value(of: cell, feature: s.index(of: name) ?? -1)
        }
        #expect(try value("Two year", "contract").get() == 2)
        #expect(try value("1", "contract").get() == 1)
        #expect(try value("1.0", "contract").get() == 1)  // pandas writes codes so when a column has missing values
        #expect(try value(" One year ", "contract").get() == 1)
        #expect(try value("Fiber optic", "internet_service").get() == 1)
        #expect(try value("", "contract").get().isNaN)
        #expect(try value("NaN", "tenure").get().isNaN)
        #expect(try value("72", "tenure").get() == 72)
        #expect(try value("72.0", "tenure").get() == 72)
        #expect(try value("Yes", "senior_citizen").get() == 1)
        #expect(try value("0", "senior_citizen").get() == 0)
        #expect(try value("false", "senior_citizen").get() == 0)
        #expect(try value("29.85", "monthly_charges").get() == Float(29.85))

        func problem(_ cell: String, _ name: String) -> String {
            if case .failure(let p) = value(cell, name) { return p.message }
            return "accepted"
        }
        #expect(problem("Two years", "contract").contains("closest: Two year"))
        #expect(problem("3", "contract").contains("nor a code 0–2"))
        #expect(problem("-1", "contract").contains("nor a code 0–2"))
        #expect(problem("1.5", "contract").contains("closest"))
        #expect(problem("72.5", "tenure").contains("not a whole number"))
        #expect(problem("20000000", "tenure").contains("cannot hold exactly"))
        #expect(problem("maybe", "senior_citizen").contains("not a boolean"))
        #expect(problem("inf", "monthly_charges").contains("not a finite number"))
        #expect(problem("1e39", "monthly_charges").contains("not a finite number"))
        #expect(problem("12,5", "monthly_charges").contains("not a number"))
    }

    @Test("a category named like a code is matched by name first")
    func numericCategoryNames() throws {
        let s = try FeatureSchema.parse(Array(#"{"id": "id", "features": [{"name": "plan", "type": "category", "categories": ["2", "1"]}]}"#.utf8), source: "s")
        #expect(try s.value(of: "2", feature: 0).get() == 0)
        #expect(try s.value(of: "1", feature: 0).get() == 1)
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var label: String
        var text: String
        var code: FeatureSchemaError.Code
        var field: String?
        var mentions: String
        var testDescription: String { label }
    }

    static func features(_ items: String) -> String { #"{"id": "subscriber_id", "features": [\#(items)]}"# }

    static let bad: [Bad] = [
        Bad(label: "not JSON", text: "{\"id\": \"x\",\n \"features\": [}", code: .malformedJSON, field: nil, mentions: "line 2"),
        Bad(label: "not an object", text: "[]", code: .wrongType, field: nil, mentions: "not an object"),
        Bad(label: "no features", text: #"{"id": "subscriber_id"}"#, code: .missingKey, field: nil, mentions: "no 'features'"),
        Bad(label: "empty features", text: features(""), code: .missingKey, field: "features", mentions: "no features"),
        Bad(label: "unknown top key", text: #"{"id": "a", "featurez": []}"#, code: .unknownKey, field: "featurez", mentions: "closest: features"),
        Bad(label: "duplicate name", text: features(#"{"name": "tenure", "type": "number"}, {"name": "tenure", "type": "integer"}"#),
            code: .duplicateName, field: "features[1].name", mentions: "also features[0]"),
        Bad(label: "unknown type", text: features(#"{"name": "tenure", "type": "numbr"}"#), code: .unknownType, field: "features[0].type",
            mentions: "closest: number"),
        Bad(label: "missing type", text: features(#"{"name": "tenure"}"#), code: .missingKey, field: "features[0]", mentions: "no 'type'"),
        Bad(label: "misspelt key", text: features(#"{"name": "plan", "type": "category", "categroies": ["a"]}"#), code: .unknownKey,
            field: "features[0].categroies", mentions: "closest: categories"),
        Bad(label: "category without categories", text: features(#"{"name": "plan", "type": "category"}"#), code: .badCategories,
            field: "features[0]", mentions: "no 'categories'"),
        Bad(label: "empty categories", text: features(#"{"name": "plan", "type": "category", "categories": []}"#), code: .badCategories,
            field: "features[0].categories", mentions: "at least one"),
        Bad(label: "duplicate category", text: features(#"{"name": "plan", "type": "category", "categories": ["a", "b", "a"]}"#),
            code: .duplicateName, field: "features[0].categories[2]", mentions: "also categories[0]"),
        Bad(label: "categories on a number", text: features(#"{"name": "plan", "type": "number", "categories": ["a"]}"#),
            code: .badCategories, field: "features[0].categories", mentions: "only a category"),
        Bad(label: "upper case", text: features(#"{"name": "TotalCharges", "type": "number"}"#), code: .badName, field: "features[0].name",
            mentions: "e.g. totalcharges"),
        Bad(label: "space", text: features(#"{"name": "total charges", "type": "number"}"#), code: .badName, field: "features[0].name",
            mentions: "e.g. total_charges"),
        Bad(label: "reserved word", text: features(#"{"name": "order", "type": "number"}"#), code: .badName, field: "features[0].name",
            mentions: "reserves"),
        Bad(label: "table column", text: features(#"{"name": "shard_key", "type": "number"}"#), code: .badName, field: "features[0].name",
            mentions: "keeps for itself"),
        Bad(label: "feature named as the id", text: #"{"id": "customer_id", "features": [{"name": "customer_id", "type": "integer"}]}"#, code: .duplicateName,
            field: "features[0].name", mentions: "id column"),
        Bad(label: "column as the id", text: #"{"id": "customerID", "features": [{"name": "customer", "column": "customerID", "type": "integer"}]}"#,
            code: .duplicateName, field: "features[0].column", mentions: "id column"),
        Bad(label: "two features on one column", text: features(#"{"name": "a", "column": "X", "type": "number"}, {"name": "b", "column": "X", "type": "number"}"#),
            code: .duplicateName, field: "features[1].column", mentions: "also features[0]'s"),
        Bad(label: "a header with a tab", text: features(#"{"name": "a", "column": "A\tB", "type": "number"}"#), code: .badName,
            field: "features[0].column", mentions: "control characters"),
        Bad(label: "system column", text: features(#"{"name": "xmin", "type": "number"}"#), code: .badName, field: "features[0].name",
            mentions: "system column"),
        Bad(label: "NUL in a description", text: features(#"{"name": "a", "type": "number", "description": "x\u0000y"}"#), code: .wrongType,
            field: "features[0].description", mentions: "U+0000"),
        Bad(label: "a category meaning missing", text: features(#"{"name": "plan", "type": "category", "categories": ["a", "NaN"]}"#),
            code: .badCategories, field: "features[0].categories[1]", mentions: "never be matched"),
        Bad(label: "a category with a trailing space", text: features(#"{"name": "plan", "type": "category", "categories": ["a "]}"#),
            code: .badCategories, field: "features[0].categories[0]", mentions: "never be matched"),
        Bad(label: "number as a name", text: features(#"{"name": 7, "type": "number"}"#), code: .wrongType, field: "features[0].name",
            mentions: "not a string"),
        Bad(label: "duplicate key", text: features(#"{"name": "a", "type": "number", "type": "integer"}"#), code: .duplicateKey,
            field: "features[0].type", mentions: "given twice"),
        Bad(label: "too many features", text: features((0...FeatureSchema.maxFeatures).map { #"{"name": "f\#($0)", "type": "number"}"# }.joined(separator: ",")),
            code: .tooMany, field: "features", mentions: "at most 1597"),
    ]

    @Test("a bad schema is refused naming the field, the problem and the fix", arguments: bad)
    func refused(_ c: Bad) {
        #expect {
            _ = try FeatureSchema.parse(Array(c.text.utf8), source: "bad.json")
        } throws: { e in
            guard let e = e as? FeatureSchemaError else { return false }
            let ok = e.code == c.code && e.field == c.field && e.description.contains(c.mentions) && e.description.hasPrefix("bad.json")
            if !ok { print("\(c.label): \(e)") }
            return ok
        }
    }
}
