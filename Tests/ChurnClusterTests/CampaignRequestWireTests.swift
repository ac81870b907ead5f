import ChurnCluster
import Testing
import WireFormat

/// A campaign run's request on the wire, across a rolling upgrade: without a token it is the
/// previous release's bytes exactly (an old coordinator reads it), and a request of the previous
/// release (no token) reads as one without.
@Suite("Campaign run requests on the wire")
struct CampaignRequestWireTests {
    @Test("no token: the previous release's three fields, nothing after; a token round-trips; tokens are checked")
    func compatible() throws {
        let config = Array(#"{"name": "x"}"#.utf8)
        let plain = CampaignRunRequest(config: config, source: "c.json", job: 7)
        var old = WireWriter(capacity: 64)
        old.write(BulkArray(config)); old.write("c.json"); old.write(Optional(Int64(7)))
        #expect(plain.wireBytes() == old.bytes, "a request without a token is what the previous release sends and reads")
        let back = try CampaignRunRequest.decode(old.bytes)
        #expect(back.requestToken == nil && back.job == 7 && back.source == "c.json")
        let tokened = try CampaignRunRequest.decode(CampaignRunRequest(config: config, source: "c.json", job: nil, requestToken: "nightly-2026-12-07").wireBytes())
        #expect(tokened.requestToken == "nightly-2026-12-07" && tokened.job == nil)
        #expect(CampaignRunRequest.validToken("cli-3f2a.b:c_d-E") && !CampaignRunRequest.validToken("")
                && !CampaignRunRequest.validToken("has space") && !CampaignRunRequest.validToken(String(repeating: "a", count: 129))
                && !CampaignRunRequest.validToken("é"))
    }
}
