import Postgres

/// Drift references and per-job drift in PostgreSQL (`model_drift_reference`, `model_drift`).
extension ClusterDatabase {
    /// The reference of `modelVersion` over `population` (docs/models.md, "Drift of each model":
    /// '' every subscriber, else an active model's segment), if one was taken; a file's reference
    /// (`models add --reference`, job 0) serves every population.
    func driftReference(modelVersion: String, population: String = "") async throws -> DriftReference? {
        try await run { c in
            // One reference, never a mix: the population's own, else a file's.
            let rows = try c.query("""
                SELECT feature, edges, counts, job_id FROM model_drift_reference
                WHERE model_version = $1 AND (population, job_id) = (
                    SELECT population, job_id FROM model_drift_reference
                    WHERE model_version = $1 AND (population = $2 OR (population = '' AND job_id = 0))
                    ORDER BY population = $2 DESC, job_id LIMIT 1)
                """, [modelVersion, population]).rows
            guard let first = rows.first, let job = first[3].flatMap({ Int64($0) }) else { return nil }
            var bins: [String: (edges: [Float], counts: [Int64])] = [:]
            for r in rows {
                guard let name = r[0], let edges = Self.numbers(r[1]).map({ $0.map { Float($0) } }),
                      let counts = Self.integers(r[2]) else {
                    throw ClusterError("model_drift_reference of model \(modelVersion) has a malformed row for '\(r[0] ?? "?")'")
                }
                bins[name] = (edges, counts)
            }
            return DriftReference(job: job, bins: bins)
        }
    }

    /// Stores a reference (the first one stored for a version stays: a second coordinator that
    /// took one at the same time keeps the first; the job's own drift rows are stored after).
    /// - Returns: the reference that is stored.
    func saveDriftReference(modelVersion: String, population: String = "", _ reference: DriftReference) async throws -> DriftReference {
        let term = term
        _ = try await run { c in
            try Self.transaction(c, fencedBy: term) { try Self.insert(c, reference: reference, modelVersion: modelVersion, population: population) }
        }
        return try await driftReference(modelVersion: modelVersion, population: population) ?? reference
    }

    /// Inserts a reference's rows (in the caller's transaction; rows already there stay).
    /// - Returns: the rows inserted (fewer than the bins when another reference got there first).
    @discardableResult
    static func insert(_ c: PostgresConnection, reference: DriftReference, modelVersion: String, population: String = "") throws -> Int {
        try lockDriftReferences(c, modelVersion: modelVersion)
        var inserted = 0
        for (name, bin) in reference.bins.sorted(by: { $0.key < $1.key }) {
            inserted += try c.query("""
                INSERT INTO model_drift_reference (model_version, population, feature, edges, counts, job_id) VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (model_version, population, feature) DO NOTHING RETURNING 1
                """, [modelVersion, population, name, EventLog.doubleArray(bin.edges.map(Double.init)), EventLog.intArray(bin.counts),
                      String(reference.job)]).rows.count
        }
        return inserted
    }

    /// Serialises the writers of `modelVersion`'s references until the transaction ends (a job
    /// taking one and `models add --reference` checking for one and adding a file's).
    static func lockDriftReferences(_ c: PostgresConnection, modelVersion: String) throws {
        _ = try c.query("SELECT pg_advisory_xact_lock(hashtext('churngrid drift reference ' || $1))", [modelVersion])
    }

    /// Stores a job's drift (once: a job measured again keeps its first rows).
    func save(drift report: DriftReport, counts: [String: [Int64]]) async throws {
        let term = term
        try await run { c in
            try Self.transaction(c, fencedBy: term) {
                for f in report.features {
                    _ = try c.query("""
                        INSERT INTO model_drift (job_id, model_version, reference_job_id, feature, psi, level, counts) VALUES ($1, $2, $3, $4, $5, $6, $7)
                        ON CONFLICT (job_id, model_version, feature) DO NOTHING
                        """, [String(report.job), report.modelVersion, String(report.referenceJob), f.feature, String(f.psi), f.level.rawValue,
                              EventLog.intArray(counts[f.feature] ?? [])])
                }
            }
        }
    }

    /// The drift of `job` for `modelVersion` (nil: the version the job served), or, with `job`
    /// nil, of the last job whose served model's drift was measured.
    func drift(job: Int64?, modelVersion: String? = nil) async throws -> DriftReport? {
        try await run { c in
            let id: Int64?
            if let job {
                id = job
            } else {
                id = try c.query("""
                    SELECT max(d.job_id) FROM model_drift d JOIN scoring_jobs j ON j.id = d.job_id AND j.model_version = d.model_version
                    """).scalar.flatMap { Int64($0) }
            }
            guard let id else { return nil }
            let rows = try c.query("""
                SELECT model_version, reference_job_id, feature, psi FROM model_drift
                WHERE job_id = $1 AND model_version = coalesce($2, (SELECT model_version FROM scoring_jobs WHERE id = $1))
                """, [String(id), modelVersion]).rows
            guard let first = rows.first else { return nil }
            return DriftReport(job: id, modelVersion: first[0] ?? "", referenceJob: first[1].flatMap { Int64($0) } ?? 0,
                               features: rows.map { FeatureDrift(feature: $0[2] ?? "", psi: $0[3].flatMap { Double($0) } ?? 0) })
        }
    }

    /// The drift of the last job measured that scored with `modelVersion` (served or active), if any.
    func lastDrift(modelVersion: String) async throws -> DriftReport? {
        let job = try await run { c in
            try c.query("SELECT max(job_id) FROM model_drift WHERE model_version = $1", [modelVersion]).scalar.flatMap { Int64($0) }
        }
        guard let job else { return nil }
        return try await drift(job: job, modelVersion: modelVersion)
    }

    /// The last completed job that scored model `name` at `version` with its figures kept
    /// (`scoring_job_models.summary`), if any.
    func lastJobFigures(name: String, version: String) async throws -> ModelJobFigures? {
        try await run { c in
            let bands = RiskBand.allCases.map { "m.summary->'per_band'->>'\($0.description)'" }.joined(separator: ", ")
            guard let row = try c.query("""
                SELECT m.job_id, m.role, m.segment, m.summary->>'subscribers', m.summary->>'mean_probability', \(bands)
                FROM scoring_job_models m JOIN scoring_jobs j ON j.id = m.job_id AND j.state = 'completed'
                WHERE m.model_name = $1 AND m.model_version = $2 AND m.summary IS NOT NULL
                ORDER BY m.job_id DESC LIMIT 1
                """, [name, version]).rows.first, let job = row[0].flatMap({ Int64($0) }) else { return nil }
            return ModelJobFigures(job: job, role: row[1] ?? "", segment: row[2] ?? "", subscribers: row[3].flatMap { Int($0) } ?? 0,
                                   meanProbability: row[4].flatMap { Double($0) } ?? 0, perBand: row[5...].map { $0.flatMap { Int($0) } ?? 0 })
        }
    }

    /// The integers of a PostgreSQL bigint[]'s text; nil when it is not one.
    static func integers(_ text: String?) -> [Int64]? { elements(text) { Int64($0) } }

    /// The numbers of a PostgreSQL array's text ({1,2.5,…}); nil when it is not one.
    static func numbers(_ text: String?) -> [Double]? { elements(text) { Double($0) } }

    /// The elements of a one-dimensional PostgreSQL array's text, each read by `parse`; nil when
    /// the text is not such an array or an element does not parse.
    private static func elements<T>(_ text: String?, _ parse: (Substring) -> T?) -> [T]? {
        guard let text, text.hasPrefix("{"), text.hasSuffix("}") else { return nil }
        let inner = text.dropFirst().dropLast()
        if inner.isEmpty { return [] }
        var out: [T] = []
        for part in inner.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = parse(part) else { return nil }
            out.append(v)
        }
        return out
    }
}
