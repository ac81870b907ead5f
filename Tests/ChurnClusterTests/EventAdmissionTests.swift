@testable import ChurnCluster
import Testing

@Suite("Event ingest admission: bounded in events and in time")
struct EventAdmissionTests {
    @Test("a batch is queued while it fits and the oldest waiting batch is young; else busy")
    func admission() {
        var s = EventIngest.Settings()
        s.maxQueuedEvents = 1_000
        s.maxQueueWait = .milliseconds(500)
        #expect(EventIngest.admits(500, queued: 0, oldestWait: .zero, s))
        #expect(!EventIngest.admits(1_001, queued: 0, oldestWait: .zero, s), "a batch bigger than the whole queue")
        #expect(EventIngest.admits(500, queued: 500, oldestWait: .milliseconds(100), s))
        #expect(!EventIngest.admits(501, queued: 500, oldestWait: .milliseconds(100), s), "full")
        #expect(!EventIngest.admits(10, queued: 20, oldestWait: .milliseconds(600), s), "room, but the backlog is too old")
        #expect(EventIngest.admits(10, queued: 0, oldestWait: .seconds(5), s), "nothing waits: nothing to be old")
    }
}
