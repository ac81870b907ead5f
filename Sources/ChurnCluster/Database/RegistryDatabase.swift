import Foundation
import Postgres
import ProfileDatabase

/// The model registry's tables (`model_registry`, `model_served`; migration 12).
extension ClusterDatabase {
    private static let registryColumns = """
        name, version, source, format, array_to_json(features)::text, octet_length(bytes), sha256, added_by,
        (extract(epoch FROM added_at) * 1000)::bigint,
        EXISTS (SELECT 1 FROM model_served s WHERE s.name = r.name AND s.version = r.version)
        """

    private static func registered(_ row: [String?]) throws -> RegisteredModel {
        guard row.count == 10, let name = row[0], let version = row[1], let features = row[4],
              let names = try? JSONDecoder().decode([String].self, from: Data(features.utf8)) else {
            throw ClusterError("model_registry has a malformed row (\(row.first.flatMap { $0 } ?? "?"))")
        }
        return RegisteredModel(name: name, version: version, source: row[2] ?? "", format: row[3] ?? "", features: names,
                               bytes: row[5].flatMap { Int($0) } ?? 0, sha256: row[6] ?? "", addedBy: row[7] ?? "",
                               addedAt: row[8].flatMap { Int64($0) } ?? 0, served: row[9] == "t")
    }

    /// Adds a model version (nothing when that name already has that version). With `reference`,
    /// the version's drift reference is stored in the same transaction (refused, and nothing
    /// added, when the version already has one).
    /// - Returns: the stored entry and whether it is new.
    func addModel(name: String, version: String, source: String, features: [String], bytes: [UInt8], by: String,
                  reference: DriftReference? = nil) async throws -> (RegisteredModel, Bool) {
        let hex = Self.hex(bytes), format = ModelRegistry.format(of: bytes), names = Self.textArray(features)
        guard let reference else {
            return try await run { c in try Self.insertModel(c, name: name, version: version, source: source, format: format, names: names, hex: hex, by: by) }
        }
        let term = term
        return try await run { c in
            try Self.transaction(c, fencedBy: term) {
                let result = try Self.insertModel(c, name: name, version: version, source: source, format: format, names: names, hex: hex, by: by)
                // No job may take a reference of the version between this check and the file's rows.
                try Self.lockDriftReferences(c, modelVersion: version)
                if let held = try c.query("SELECT job_id FROM model_drift_reference WHERE model_version = $1 LIMIT 1", [version]).scalar {
                    throw ModelRefusal(.referenceExists, "model \(name) version \(version) already has a drift reference "
                                       + (held == "0" ? "(from a file)" : "(taken by job \(held))") + "; it is kept, and nothing was added")
                }
                // A first job storing its reference meanwhile wins: nothing of the file's is kept.
                guard try Self.insert(c, reference: reference, modelVersion: version) == reference.bins.count else {
                    throw ModelRefusal(.referenceExists, "model \(name) version \(version) got a drift reference from a job while the file's was added; "
                                       + "it is kept, and nothing was added")
                }
                return result
            }
        }
    }

    private static func insertModel(_ c: PostgresConnection, name: String, version: String, source: String, format: String, names: String,
                                    hex: String, by: String) throws -> (RegisteredModel, Bool) {
        let inserted = try c.query("""
            INSERT INTO model_registry (name, version, source, format, features, bytes, sha256, added_by)
            VALUES ($1, $2, $3, $4, $5, decode($6, 'hex'), encode(sha256(decode($6, 'hex')), 'hex'), $7)
            ON CONFLICT (name, version) DO NOTHING RETURNING 1
            """, [name, version, source, format, names, hex, by]).rows.count == 1
        let row = try c.query("SELECT \(Self.registryColumns) FROM model_registry r WHERE name = $1 AND version = $2", [name, version]).rows
        guard let first = row.first else { throw ClusterError("model \(name) version \(version) vanished while it was added") }
        return (try Self.registered(first), inserted)
    }

    /// The feature schema in force (`profiles migrate --schema`).
    func featureSchema() async throws -> FeatureSchemaStore.Stored {
        try await run { c in try FeatureSchemaStore.inForce(c) }
    }

    /// The features earlier schema versions had and `inForce` does not (`FeatureSchemaStore.dropped`).
    func droppedFeatures(inForce: FeatureSchemaStore.Stored) async throws -> [String] {
        try await run { c in try FeatureSchemaStore.dropped(c, inForce: inForce) }
    }

    /// Every registered version, by name, newest first.
    func registeredModels(name: String? = nil) async throws -> [RegisteredModel] {
        try await run { c in
            let rows = try c.query("SELECT \(Self.registryColumns) FROM model_registry r WHERE $1::text IS NULL OR name = $1 ORDER BY name, added_at DESC, version",
                                   [name]).rows
            return try rows.map(Self.registered)
        }
    }

    /// A registered version's entry and file bytes (`version` exact or a unique prefix).
    func registeredModel(name: String, version: String) async throws -> (RegisteredModel, [UInt8]) {
        try await run { c in
            let versions = try c.query("SELECT version FROM model_registry WHERE name = $1", [name]).rows.compactMap { $0[0] }
            let exact = try ModelRegistry.resolve(version, among: versions, model: name)
            let rows = try c.query("SELECT \(Self.registryColumns), encode(bytes, 'hex') FROM model_registry r WHERE name = $1 AND version = $2",
                                   [name, exact]).rows
            guard let row = rows.first, let hex = row[10], let bytes = Self.unhex(hex) else {
                throw ClusterError("model \(name) version \(exact) has no readable file in model_registry")
            }
            return (try Self.registered(Array(row.prefix(10))), bytes)
        }
    }

    /// Removes a version (refused for the one served).
    /// - Returns: the version removed.
    func removeModel(name: String, version: String) async throws -> String {
        let term = term
        return try await run { c in
            try Self.transaction(c, fencedBy: term) {
                let versions = try c.query("SELECT version FROM model_registry WHERE name = $1 FOR UPDATE", [name]).rows.compactMap { $0[0] }
                let exact = try ModelRegistry.resolve(version, among: versions, model: name)
                if try c.query("SELECT 1 FROM model_served WHERE name = $1 AND version = $2", [name, exact]).rows.count == 1 {
                    throw ModelRefusal(.served, "model \(name) version \(exact) is the one the cluster serves: deploy another first (churngrid models deploy)")
                }
                if try c.query("SELECT 1 FROM model_served WHERE name = $1 AND challenger_version = $2", [name, exact]).rows.count == 1 {
                    throw ModelRefusal(.served, "model \(name) version \(exact) is the challenger the cluster serves: end it first "
                                       + "(churngrid models deploy \(name) --version <the champion's> ends it; models promote \(name) makes it the champion)")
                }
                if try c.query("SELECT 1 FROM model_active WHERE name = $1 AND challenger_version = $2", [name, exact]).rows.count == 1 {
                    throw ModelRefusal(.served, "model \(name) version \(exact) is the challenger of the active model \(name): end it first "
                                       + "(churngrid models deploy \(name) --version <the champion's> ends it; models promote \(name) makes it the champion)")
                }
                if try c.query("SELECT 1 FROM model_active WHERE name = $1 AND version = $2", [name, exact]).rows.count == 1 {
                    throw ModelRefusal(.served, "model \(name) version \(exact) is active beside the served model: deactivate it first (churngrid models deactivate \(name))")
                }
                _ = try c.query("DELETE FROM model_registry WHERE name = $1 AND version = $2", [name, exact])
                return exact
            }
        }
    }

    /// The models active beside the served one, by name, with their files.
    func activeModels() async throws -> [(name: String, version: String, segment: String, bytes: [UInt8])] {
        try await run { c in
            try c.query("""
                SELECT a.name, a.version, a.segment, encode(r.bytes, 'hex') FROM model_active a
                JOIN model_registry r USING (name, version) ORDER BY a.name
                """).rows.compactMap { row in
                guard let name = row[0], let version = row[1], let segment = row[2], let hex = row[3], let bytes = Self.unhex(hex) else { return nil }
                return (name, version, segment, bytes)
            }
        }
    }

    /// Records a model active beside the served one (fenced by the lease): `name` at `version`
    /// over `segment`, or, with `version` nil, `name` no longer active.
    /// `endChallenger`: its challenger ends too, in the same transaction (another version ends it anyway).
    func setActive(name: String, version: String?, segment: String, by: String, endChallenger: Bool = false) async throws {
        let term = term
        try await run { c in
            try Self.transaction(c, fencedBy: term) {
                if let version {
                    _ = try c.query("""
                        INSERT INTO model_active (name, version, segment, activated_by) VALUES ($1, $2, $3, $4)
                        ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, segment = EXCLUDED.segment,
                            activated_by = EXCLUDED.activated_by, since = now(),
                            -- Another version ends its challenger (a new segment keeps it: it challenges the same version).
                            challenger_version = CASE WHEN model_active.version = EXCLUDED.version THEN model_active.challenger_version END,
                            challenger_basis_points = CASE WHEN model_active.version = EXCLUDED.version THEN model_active.challenger_basis_points END,
                            challenger_since = CASE WHEN model_active.version = EXCLUDED.version THEN model_active.challenger_since END,
                            challenger_by = CASE WHEN model_active.version = EXCLUDED.version THEN model_active.challenger_by END,
                            challenger_of = CASE WHEN model_active.version = EXCLUDED.version THEN model_active.challenger_of END
                        """, [name, version, segment, by])
                    if endChallenger {
                        _ = try c.query("""
                            UPDATE model_active SET challenger_version = NULL, challenger_basis_points = NULL, challenger_since = NULL,
                                challenger_by = NULL, challenger_of = NULL WHERE name = $1
                            """, [name])
                    }
                } else {
                    _ = try c.query("DELETE FROM model_active WHERE name = $1", [name])
                }
            }
        }
    }

    /// Records the challenger of the active model `name` (nil: none), fenced by the lease.
    func setActiveChallenger(name: String, version: String?, basisPoints: Int, by: String) async throws {
        let term = term
        try await run { c in
            try Self.transaction(c, fencedBy: term) {
                let updated = try c.query("""
                    UPDATE model_active SET challenger_version = $2, challenger_basis_points = $3,
                        challenger_since = CASE WHEN $2::text IS NULL THEN NULL ELSE now() END, challenger_by = CASE WHEN $2::text IS NULL THEN NULL ELSE $4 END,
                        challenger_of = CASE WHEN $2::text IS NULL THEN NULL ELSE version END
                    WHERE name = $1 RETURNING 1
                    """, [name, version, version == nil ? nil : String(basisPoints), by]).rows.count
                guard updated == 1 else { throw ClusterError("model \(name) is not active (model_active): no challenger recorded") }
            }
        }
    }

    /// The challengers recorded beside the active models: name, version, share, file bytes (nil:
    /// the row does not read) and whether it challenges the version active now (a coordinator of
    /// the previous release may have activated another version beside it during an upgrade).
    func activeChallengers() async throws -> [(name: String, version: String, basisPoints: Int, bytes: [UInt8]?, current: Bool)] {
        try await run { c in
            try c.query("""
                SELECT a.name, a.challenger_version, a.challenger_basis_points, encode(r.bytes, 'hex'), a.challenger_of IS NOT DISTINCT FROM a.version
                FROM model_active a LEFT JOIN model_registry r ON r.name = a.name AND r.version = a.challenger_version
                WHERE a.challenger_version IS NOT NULL ORDER BY a.name
                """).rows.compactMap { row in
                guard let name = row[0] else { return nil }
                let bp = row[2].flatMap { Int($0) }
                let bytes = row[3].flatMap { Self.unhex($0) }
                return (name, row[1] ?? "", bp ?? 0, bp == nil ? nil : bytes, row[4] == "t")
            }
        }
    }

    /// Records the model served (fenced by the lease).
    func setServed(name: String, version: String, by: String) async throws {
        let term = term
        try await run { c in
            try Self.transaction(c, fencedBy: term) {
                _ = try c.query("""
                    INSERT INTO model_served (singleton, name, version, deployed_by) VALUES (true, $1, $2, $3)
                    ON CONFLICT (singleton) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version, deployed_by = EXCLUDED.deployed_by, since = now(),
                        challenger_version = NULL, challenger_basis_points = NULL, challenger_since = NULL, challenger_by = NULL
                    """, [name, version, by])
            }
        }
    }

    /// Records the challenger of the served model `name` (nil: none), fenced by the lease.
    func setChallenger(name: String, version: String?, basisPoints: Int, by: String) async throws {
        let term = term
        try await run { c in
            try Self.transaction(c, fencedBy: term) {
                let updated = try c.query("""
                    UPDATE model_served SET challenger_version = $2, challenger_basis_points = $3,
                        challenger_since = CASE WHEN $2::text IS NULL THEN NULL ELSE now() END, challenger_by = CASE WHEN $2::text IS NULL THEN NULL ELSE $4 END
                    WHERE name = $1 RETURNING 1
                    """, [name, version, version == nil ? nil : String(basisPoints), by]).rows.count
                guard updated == 1 else { throw ClusterError("model \(name) is not the model served (model_served): no challenger recorded") }
            }
        }
    }

    /// The challenger recorded beside the served model: its version, share and file bytes (nil: none).
    func servedChallenger() async throws -> (name: String, version: String, basisPoints: Int, bytes: [UInt8])? {
        let row = try await run { c in
            try c.query("SELECT name, challenger_version, challenger_basis_points FROM model_served WHERE challenger_version IS NOT NULL").rows.first
        }
        guard let row, let name = row[0], let version = row[1], let bp = row[2].flatMap({ Int($0) }) else { return nil }
        let (_, bytes) = try await registeredModel(name: name, version: version)
        return (name, version, bp, bytes)
    }

    /// What a coordinator that starts (or takes over) serves: registers the `--model` file as
    /// model `name`, and serves it only when no model is recorded as served yet (a new cluster);
    /// otherwise the model deployed last stays (a restart never changes or rolls back the model:
    /// `churngrid models deploy` does).
    /// - Returns: the model served (name, version and bytes) and why.
    /// - Parameter startupProblem: why the --model file cannot be served on the schema in force
    ///   (nil: it can): it is then not registered, and the cluster starts only if a model is served.
    func modelToServe(startup: ModelPackage, features: [String], name: String, by: String,
                      startupProblem: String? = nil) async throws -> (name: String, version: String, bytes: [UInt8], reason: String) {
        var inserted = false
        if startupProblem == nil {
            (_, inserted) = try await addModel(name: name, version: startup.version, source: startup.source, features: features,
                                               bytes: startup.bytes.elements, by: by)
        }
        let served = try await run { c in
            try c.query("SELECT name, version FROM model_served").rows.first.map { ($0[0] ?? "", $0[1] ?? "") }
        }
        if let startupProblem {
            guard let served else { throw ClusterError("--model \(startup.source): \(startupProblem)") }
            let (_, bytes) = try await registeredModel(name: served.0, version: served.1)
            return (served.0, served.1, bytes, "the model deployed last (model_served); --model \(startup.source) is not registered: \(startupProblem)")
        }
        guard let served else {
            try await setServed(name: name, version: startup.version, by: by)
            return (name, startup.version, startup.bytes.elements, "--model (no model was served yet)")
        }
        if served.0 == name && served.1 == startup.version { return (name, startup.version, startup.bytes.elements, "--model, the model served") }
        let (_, bytes) = try await registeredModel(name: served.0, version: served.1)
        return (served.0, served.1, bytes, "the model deployed last (model_served); --model \(startup.source) is registered as \(name) \(startup.version)\(inserted ? " (new)" : "")"
                + " but not served: churngrid models deploy \(name) --version \(startup.version) serves it")
    }

    /// The latest outcome observed of every subscriber that has one: the ids that churned and those that did not.
    func latestOutcomes() async throws -> (churned: [Int64], retained: [Int64]) {
        try await run { c in
            var churned: [Int64] = [], retained: [Int64] = []
            for row in try c.query("SELECT DISTINCT ON (subscriber_id) subscriber_id, churned FROM subscriber_outcomes ORDER BY subscriber_id, observed_at DESC").rows {
                guard let id = row[0].flatMap({ Int64($0) }) else { continue }
                if row[1] == "t" { churned.append(id) } else { retained.append(id) }
            }
            return (churned, retained)
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: bytes.count * 2)
        for (i, b) in bytes.enumerated() {
            out[2 * i] = digits[Int(b >> 4)]
            out[2 * i + 1] = digits[Int(b & 15)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func unhex(_ text: String) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count % 2 == 0 else { return nil }
        func v(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            case 0x41...0x46: c - 0x41 + 10
            default: nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let h = v(u[i]), let l = v(u[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }
}
