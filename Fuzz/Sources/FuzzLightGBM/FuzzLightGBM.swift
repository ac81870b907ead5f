import TreeModel

/// Loads, compiles, scores and explains: everything a model file reaches once it loads.
func exercise(_ model: TreeEnsemble) {
    guard let forest = try? CompiledForest(model) else { return }
    let explainer = TreeExplainer(model)
    let n = model.featureCount
    let rows: [[Float]] = [
        [Float](repeating: .nan, count: n),
        [Float](repeating: 0, count: n),
        (0..<n).map { Float($0 % 7) - 3 },
        (0..<n).map { $0 % 2 == 0 ? .infinity : -1e-36 },
    ]
    for row in rows {
        _ = forest.margin(row: row)
        _ = explainer.contributions(row: row, method: .exact)
        _ = explainer.contributions(row: row, method: .approximate)
    }
    _ = try? forest.score(columns: (0..<n).map { j in rows.map { $0[j] } })
}

/// libFuzzer entry: a LightGBM text model file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLightGBM(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        exercise(try TreeEnsemble.lightgbm(text: bytes, file: "fuzz.txt"))
    } catch {
        _ = error.description
    }
    return 0
}
