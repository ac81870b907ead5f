import ClusterSystem
import Distributed
import WireFormat

extension CoordinatorActor {
    /// How long each worker may take to erase.
    static let erasureCallTimeout: Duration = .seconds(30)

    /// Erases `subscribers` from every worker's memory, then from PostgreSQL (see `Erasure` for the
    /// order), and records in the audit log that it did: the ids erased, never what was removed. Refused while a job
    /// or a campaign run is running (their results would be written after it) or another erasure is.
    public distributed func erase(subscribers: BulkArray<Int64>) async throws -> ErasureReport {
        let caller = ClusterActorSystem.caller
        let ids = try Erasure.validated(subscribers.elements)
        guard !erasing else { throw ErasureRefusal("another erasure is running; run this one when it has finished") }
        if let job = job(), job.state == .running {
            throw ErasureRefusal("job \(job.id) is running (\(job.shardsDone)/\(job.shardCount) shards): erase when it has finished, or its scores of these subscribers would be written after the erasure")
        }
        guard !campaignBusy else { throw ErasureRefusal("a campaign run is deciding: erase when it has finished") }
        guard outcomesImporting == 0 else { throw ErasureRefusal("outcomes are being imported: erase when the import has finished") }
        guard !deploying else { throw ErasureRefusal("a model is being deployed: erase when it has finished") }
        guard !jobStarting else { throw ErasureRefusal("a job is being started: erase when it has finished") }
        // After a coordinator start, workers of the saved map that have not registered again may
        // hold copies: they could not be asked.
        guard awaited.isEmpty else {
            throw ErasureRefusal("workers of the saved shard map have not registered again yet (\(awaited.sorted().joined(separator: ", "))): erase when they have, or when the rejoin grace has passed")
        }
        guard !mapUnsaved else {
            throw ErasureRefusal("the shard map's last change is not saved yet (PostgreSQL was away): erase when it is, so that a coordinator taking over knows which workers were asked")
        }
        guard !comparing else { throw ErasureRefusal("a model comparison is running: erase when it has finished") }
        erasing = true
        defer { erasing = false }
        // From now on a worker that comes back without having been asked drops its copies, even
        // if this erasure stops half-way.
        lastErasure = .now
        let start = ContinuousClock.now
        let target = "subscribers " + ids.map(String.init).joined(separator: ",")
        // No shard moves, joins or failovers meanwhile: every copy is on a worker asked below.
        await lockMembership()
        defer { unlockMembership() }

        let workers = memberWorkers()
        let term = term, wire = BulkArray(ids), timeout = Self.erasureCallTimeout
        let answers = await Self.onEveryWorker(workers, timeout: timeout) { try await $0.erase(wire, term: term) }
        var report = ErasureReport()
        report.subscribers = ids.count
        var found = Set<Int64>()
        var failed: [String] = []
        for (name, answer) in answers {
            switch answer {
            case .success(let r):
                found.formUnion(r.found.elements)
                report.copies += r.copies
                report.workers += 1
            case .failure(let error):
                failed.append("\(name) (\(error))")
            }
        }
        report.foundInMemory = found.count
        guard failed.isEmpty else {
            await audit(caller, action: "erase", target: target, outcome: "failed: not every worker confirmed")
            throw ClusterError("the erasure stopped before PostgreSQL: \(failed.joined(separator: ", ")) did not confirm. Nothing was deleted from PostgreSQL; the other workers have already erased the subscribers from memory. Run the erasure again (erasing twice is harmless).")
        }

        let deleted: DatabaseErasure
        do {
            // The audit row is written in the erasure's own transaction: no erasure without its record.
            let (actor, roles, credential) = Self.auditFields(caller)
            deleted = try await database.erase(ids, shardCount: shardCount, audit: AuditEntry(actor: actor, roles: roles, credential: credential, action: "erase",
                                                                                              target: target, outcome: "erased"))
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down: the subscribers are erased from memory, not from PostgreSQL; run the erasure again on the coordinator that took over")
        } catch {
            await audit(caller, action: "erase", target: target, outcome: "failed: PostgreSQL")
            throw ClusterError("the subscribers are erased from every worker's memory but PostgreSQL failed: \(error). Run the erasure again (erasing twice is harmless).")
        }
        report.rows = deleted.rows
        report.snapshots = deleted.snapshots
        if let generation = deleted.generation {
            for (name, worker) in workers {
                do {
                    _ = try await ClusterActorSystem.$callTimeout.withValue(timeout) { try await worker.profilesErased(from: generation.from, to: generation.to, term: term) }
                } catch {
                    // Its copies only stay at the older generation: their snapshots are refused until they are loaded again.
                    logger.warning("a worker did not take the profiles' new generation after the erasure", metadata: ["worker": "\(name)", "error": "\(error)"])
                }
            }
        }
        report.seconds = seconds(ContinuousClock.now - start)
        logger.notice("subscribers erased", metadata: ["subscribers": "\(ids.count)", "inMemory": "\(report.foundInMemory)", "copies": "\(report.copies)",
                                                        "workers": "\(report.workers)", "rows": "\(deleted.rows.values.reduce(0, +))",
                                                        "snapshots": "\(deleted.snapshots)", "seconds": "\(report.seconds)"])
        return report
    }
}
