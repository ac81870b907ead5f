/// A campaign operation refused for a reason its caller can act on: what was wrong, in words, and
/// of which kind. A caller in the coordinator's process (the HTTP API) answers with the status the
/// kind means; a remote caller (the CLI) sees the text, as it would a `ClusterError`'s.
public struct CampaignRefusal: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The campaign file is wrong; `field` names where (`offers[1].cost`), when it is one field.
        case invalidCampaign
        /// An argument out of its domain (a channel, an observation window); `field` names it.
        case invalidArgument
        /// The cluster's state does not allow it now: no published job, another job published than
        /// the one named, a published job of another model, another run deciding.
        case conflict
        /// No campaign run with that id.
        case unknownRun
        /// Outcomes of subscribers the base does not have; `lines` are the first of them.
        case unknownSubscribers
        /// The write may yet be carried out by PostgreSQL (a try cut off at COMMIT, still pending
        /// when the coordinator gave up): asking again is safe only under the same request token.
        case outcomeUnknown
    }

    public var kind: Kind
    /// The offending field or argument, when there is one.
    public var field: String?
    /// The offending lines of an imported file (1-based, the header is line 1).
    public var lines: [Int]
    public var description: String

    public init(_ kind: Kind, _ description: String, field: String? = nil, lines: [Int] = []) {
        self.kind = kind
        self.description = description
        self.field = field
        self.lines = lines
    }
}
