import SubscriberProfiles

/// libFuzzer entry: a feature schema file. A schema that reads must render to a document that
/// reads back as the same schema, and every feature must take (or refuse) a few typical cells.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSchema(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let schema: FeatureSchema
    do {
        schema = try FeatureSchema.parse(bytes, source: "fuzz.json")
    } catch {
        _ = error.description
        return 0
    }
    let again: FeatureSchema
    do {
        again = try FeatureSchema.parse(Array(schema.document().utf8), source: "document")
    } catch {
        fatalError("a schema's own document does not read back: \(error)")
    }
    if again != schema { fatalError("a schema's document reads back as another schema") }
    for j in 0..<schema.count {
        for cell in ["", "0", "1", "-1", "2.5", "true", "NaN", "1e39", "x", schema.names[j]] {
            switch schema.value(of: cell, feature: j) {
            case .success(let v) where v.isInfinite: fatalError("'\(cell)' read as \(v)")
            case .success, .failure: break
            }
        }
        if schema.index(of: schema.names[j]) != j { fatalError("feature \(j) is not found by its name") }
    }
    return 0
}
