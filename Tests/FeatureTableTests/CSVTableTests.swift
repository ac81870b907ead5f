import Testing
@testable import FeatureTable

@Suite("CSV tables")
struct CSVTableTests {
    private func table(_ text: String, numeric: Set<String> = ["a", "b"]) throws(TableError) -> CSVTable {
        try CSVTable(bytes: Array(text.utf8), file: "in.csv", numericColumns: numeric)
    }

    @Test("numeric columns parse; empty and NaN are missing; other columns are kept verbatim")
    func parses() throws {
        let t = try table("id,a,b,note\n7,1.5,,x\n8,NaN,-2e3,\"q, \"\"r\"\"\"\r\n9,inf, 3 ,\n")
        #expect(t.rowCount == 3)
        let a = try #require(t.column(named: "a"))
        let b = try #require(t.column(named: "b"))
        #expect(a[0] == 1.5 && a[1].isNaN && a[2] == .infinity)
        #expect(b[0].isNaN && b[1] == -2000 && b[2] == 3)
        #expect(t.passthroughColumns == [0, 3])
        #expect(String(decoding: t.rawCell(column: 3, row: 1), as: UTF8.self) == "\"q, \"\"r\"\"\"")
        #expect(t.rawCell(column: 3, row: 2).isEmpty)
    }

    @Test("a non-numeric cell is reported with its line and column")
    func badCell() {
        #expect {
            _ = try table("id,a,b\n1,2,3\n2,x7,3\n")
        } throws: { e in
            let e = e as! TableError
            return e.line == 3 && e.column == "a" && e.description == "in.csv:3: column 'a': 'x7' is not a number (empty or NaN means missing)"
        }
    }

    @Test("a line with the wrong number of fields is reported with its line")
    func fieldCount() {
        #expect {
            _ = try table("id,a,b\n1,2,3\n2,3\n")
        } throws: { e in (e as! TableError).line == 3 && (e as! TableError).message.contains("expected 3 fields") }
    }

    @Test("line numbers count newlines inside quoted cells")
    func quotedNewlines() {
        #expect {
            _ = try table("id,a,b\n\"x\ny\",1,2\n3,oops,4\n")
        } throws: { e in (e as! TableError).line == 4 }
    }

    @Test("a duplicate column name is refused")
    func duplicateHeader() {
        #expect(throws: TableError.self) { _ = try table("a,b,a\n1,2,3\n") }
    }

    @Test("an empty file is refused")
    func empty() {
        #expect(throws: TableError.self) { _ = try table("") }
    }
}
