import ClusterSystem
import Postgres

/// `churngrid_turned_away`: the worker processes the coordinator turned away, so that the next
/// coordinator (a restart, a standby taking over) refuses the same process at once too.
extension ClusterDatabase {
    /// The longest reason stored (an error's text can be long).
    static let turnedAwayReasonLimit = 2_000

    /// How long a record is honoured by a coordinator that starts: a process refused for a cause
    /// that passed (a slow start, a blip) is tried again, once, by a later coordinator.
    static let turnedAwayMemory = "1 hour"

    /// The processes on record from the last `turnedAwayMemory`, with why they were turned away.
    func turnedAwayWorkers() async throws -> [(node: NodeID, reason: String)] {
        try await run { c in
            try c.query("""
                SELECT node, endpoint, incarnation, public_key, reason FROM churngrid_turned_away
                WHERE turned_away_at > now() - interval '\(Self.turnedAwayMemory)' ORDER BY node
                """).rows.compactMap { r in
                guard let name = r[0], let endpoint = r[1], let incarnation = r[2].flatMap({ Int64($0) }), let key = r[3], let reason = r[4] else { return nil }
                return (NodeID(name: name, endpoint: endpoint, incarnation: UInt64(bitPattern: incarnation), publicKey: key), reason)
            }
        }
    }

    /// Records that `node` (this very process) was turned away.
    func recordTurnedAway(_ node: NodeID, reason: String) async throws {
        let reason = String(reason.prefix(Self.turnedAwayReasonLimit))
        try await run { c in
            _ = try c.query("""
                INSERT INTO churngrid_turned_away (node, endpoint, incarnation, public_key, reason) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (node) DO UPDATE SET endpoint = EXCLUDED.endpoint, incarnation = EXCLUDED.incarnation,
                    public_key = EXCLUDED.public_key, reason = EXCLUDED.reason, turned_away_at = now()
                """, [node.name, node.endpoint, String(Int64(bitPattern: node.incarnation)), node.publicKey, reason])
        }
    }

    /// Another process of `refused`'s name registers: the record of `refused` no longer holds
    /// (deleted only if it is still that process's: a later refusal of the new one stays).
    func forgetTurnedAway(_ refused: NodeID) async throws {
        try await run { c in
            _ = try c.query("DELETE FROM churngrid_turned_away WHERE node = $1 AND incarnation = $2",
                            [refused.name, String(Int64(bitPattern: refused.incarnation))])
        }
    }
}
