@testable import ChurnCluster
import Testing
import WireFormat

/// Counts a worker reports (copies erased, subscribers scanned or compared, snapshot figures) are
/// added up by the coordinator over every worker or shard: a hostile or broken answer with a
/// negative or huge count is a malformed frame naming the count, never an overflow that stops the
/// coordinator half-way (after an erasure in memory, before its audit row).
@Suite("Counts in workers' answers")
struct ReportedCountsTests {
    static let hostile = [-1, Int.min, WireReader.maxCount + 1, Int.max]

    @Test("copies erased")
    func erasure() throws {
        #expect(try WorkerErasure.decode(WorkerErasure(found: [7], copies: 2).wireBytes()).copies == 2)
        for bad in Self.hostile {
            #expect { _ = try WorkerErasure.decode(WorkerErasure(found: [7], copies: bad).wireBytes()) } throws: { "\($0)".contains("copies erased") }
        }
    }

    @Test("subscribers scanned and in a cell, by a shard's campaign candidates")
    func candidates() throws {
        var part = ShardCandidates(shard: 3, modelVersion: "v1")
        part.scanned = 10
        part.inCell = 4
        #expect(try ShardCandidates.decode(part.wireBytes()).scanned == 10)
        for bad in Self.hostile {
            var p = part
            p.scanned = bad
            #expect { _ = try ShardCandidates.decode(p.wireBytes()) } throws: { "\($0)".contains("subscribers scanned") }
            p = part
            p.inCell = bad
            #expect { _ = try ShardCandidates.decode(p.wireBytes()) } throws: { "\($0)".contains("subscribers in a cell") }
        }
    }

    @Test("subscribers compared, and top-decile counts within them")
    func comparison() throws {
        #expect(try ComparisonPart.decode(ComparisonPart(version: "v", subscribers: 5, histograms: [], top: [1, 2, 5]).wireBytes()).top == [1, 2, 5])
        for bad in Self.hostile {
            #expect { _ = try ComparisonPart.decode(ComparisonPart(version: "v", subscribers: bad, histograms: [], top: []).wireBytes()) } throws: { "\($0)".contains("subscribers compared") }
        }
        #expect(throws: WireError.self) { _ = try ComparisonPart.decode(ComparisonPart(version: "v", subscribers: 5, histograms: [], top: [1, 6, 0]).wireBytes()) }
        #expect(throws: WireError.self) { _ = try ComparisonPart.decode(ComparisonPart(version: "v", subscribers: 5, histograms: [], top: [Int.max, 0, 0]).wireBytes()) }
    }

    @Test("a worker's snapshot figures")
    func snapshots() throws {
        var w = SnapshotWrite(worker: "w1")
        w.written = 3
        w.subscribers = 30
        w.bytes = 300
        #expect(try SnapshotWrite.decode(w.wireBytes()).bytes == 300)
        for bad in Self.hostile {
            var v = w
            v.bytes = bad
            #expect { _ = try SnapshotWrite.decode(v.wireBytes()) } throws: { "\($0)".contains("bytes written") }
            v = w
            v.subscribers = bad
            #expect { _ = try SnapshotWrite.decode(v.wireBytes()) } throws: { "\($0)".contains("subscribers written") }
        }
    }
}
