import FeatureTable

/// Reads every cell of a table the way scoring does: numeric columns as floats, the rest as text.
func exercise(_ t: CSVTable) {
    for name in t.header { _ = t.column(named: name) }
    for c in t.passthroughColumns {
        for r in 0..<t.rowCount {
            _ = t.text(column: c, row: r)
            _ = t.rawCell(column: c, row: r)
        }
    }
    if t.lines.count != t.rowCount { fatalError("\(t.lines.count) line numbers for \(t.rowCount) rows") }
}

/// libFuzzer entry: a CSV file, read with no numeric column, every other column numeric, and all.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSV(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let plain = try? CSVTable(bytes: bytes, file: "fuzz.csv", numericColumns: []) else { return 0 }
    exercise(plain)
    let header = plain.header
    let some = Set(header.indices.filter { $0 % 2 == 1 }.map { header[$0] })
    for numeric in [some, Set(header)] {
        do {
            exercise(try CSVTable(bytes: bytes, file: "fuzz.csv", numericColumns: numeric))
        } catch {
            _ = error.description
        }
    }
    return 0
}
