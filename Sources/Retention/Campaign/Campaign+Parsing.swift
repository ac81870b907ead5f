import SubscriberProfiles

extension Campaign {
    /// Top-level keys, in documentation order.
    static let topKeys = ["name", "value_tiers", "offers", "matrix", "contact_policy", "capacity", "budget",
                          "control_fraction", "region_utc_offsets_minutes"]
    static let offerKeys = ["id", "channel", "cost", "acceptance", "retention_effect", "retention_effect_by_reason",
                            "reasons", "eligible", "description"]
    static let policyKeys = ["channels", "global", "cooldown_after_refusal_days", "quiet_hours"]

    /// Reads and checks a campaign file.
    ///
    /// Required keys: `name`, `value_tiers`, `offers`, `matrix`, `control_fraction`. Optional:
    /// `contact_policy` (no caps), `capacity` (unlimited), `budget` (unlimited),
    /// `region_utc_offsets_minutes` (all regions on UTC). In an offer, `id`, `channel`, `cost`,
    /// `acceptance` and `retention_effect` are required; `reasons` (any reason), `eligible`
    /// (everyone), `retention_effect_by_reason` and `description` are optional.
    ///
    /// - Parameters:
    ///   - bytes: the file's contents (UTF-8 JSON, at most `maxFileBytes`).
    ///   - source: its name, for errors.
    ///   - eligibilityFeatures: the profile columns an offer's `eligible` may name, in column order
    ///     (default: the built-in catalogue; on a cluster, the catalogue and the schema's others:
    ///     `EligibilityRule.feature` indexes this list). Reasons always name catalogue features.
    /// - Throws: `CampaignError` for the first problem in file order, naming the field's path
    ///   (`offers[1].cost`), the problem and the fix.
    public static func parse(_ bytes: [UInt8], source: String, eligibilityFeatures: [String] = FeatureCatalogue.names) throws(CampaignError) -> Campaign {
        let top = CampaignPlace(source: source)
        return try CampaignFileReader(eligibilityFeatures: eligibilityFeatures).campaign(try document(bytes, top), top)
    }

    /// Checks a campaign file where the feature schema in force is not at hand (the CLI, the HTTP
    /// API, before asking the coordinator): everything `parse` checks, except that an offer's
    /// `eligible` may name any feature — the coordinator checks those against the schema. The
    /// result is for its name and counts, not for deciding (such a rule's `feature` is -1).
    public static func check(_ bytes: [UInt8], source: String) throws(CampaignError) -> Campaign {
        let top = CampaignPlace(source: source)
        return try CampaignFileReader(anyEligibilityFeature: true).campaign(try document(bytes, top), top)
    }

    /// The file as one JSON document, size checked.
    private static func document(_ bytes: [UInt8], _ top: CampaignPlace) throws(CampaignError) -> StrictJSON {
        guard bytes.count <= maxFileBytes else {
            throw top.error(.fileTooLarge, "the file has \(bytes.count) bytes, at most \(maxFileBytes) are read", "shorten it")
        }
        switch StrictJSONReader.read(bytes) {
        case .success(let document): return document
        case .failure(let error): throw top.error(.malformedJSON, "\(error)", "fix the JSON syntax there; the file must be one object")
        }
    }

    /// The features its offers' eligibility reads, by name from the list it was parsed with.
    public func eligibilityFeatureNames(among names: [String]) -> [String] {
        var out: [String] = [], seen = Set<String>()
        for offer in offers {
            for rule in offer.eligibility where names.indices.contains(rule.feature) && seen.insert(names[rule.feature]).inserted {
                out.append(names[rule.feature])
            }
        }
        return out
    }
}

/// Where in a campaign file a value is, and how to report a problem there.
struct CampaignPlace {
    var source: String
    var field: String?

    func key(_ k: String) -> CampaignPlace {
        var p = self
        p.field = field.map { "\($0).\(k)" } ?? k
        return p
    }

    func item(_ i: Int) -> CampaignPlace {
        var p = self
        p.field = (field ?? "") + "[\(i)]"
        return p
    }

    func error(_ code: CampaignError.Code, _ problem: String, _ fix: String) -> CampaignError {
        CampaignError(code: code, source: source, field: field, problem: problem, fix: fix)
    }
}

/// Checks a parsed JSON document against the campaign format and builds the typed campaign.
struct CampaignFileReader {
    /// What `eligible` may name (see `Campaign.parse`).
    var eligibilityFeatures: [String] = FeatureCatalogue.names
    /// `Campaign.check`: any name (checked later against the schema in force).
    var anyEligibilityFeature = false

    func campaign(_ root: StrictJSON, _ place: CampaignPlace) throws(CampaignError) -> Campaign {
        let f = try fields(root, place, allowed: Campaign.topKeys, what: "the campaign")
        for k in ["name", "value_tiers", "offers", "matrix", "control_fraction"] where f[k] == nil {
            throw place.key(k).error(.missingKey, "the campaign has no \(k)", Self.missingFix[k] ?? "add it")
        }
        let name = try identifier(f["name"], place.key("name"), what: "campaign name")
        let cuts = try tierCuts(f["value_tiers"], place.key("value_tiers"))
        let offers = try offerList(f["offers"], place.key("offers"))
        let matrix = try strategyMatrix(f["matrix"], place.key("matrix"), cuts: cuts.count, offers: offers)
        var policy = ContactPolicyRules()
        if let v = f["contact_policy"] { policy = try contactPolicy(v, place.key("contact_policy")) }
        var capacity: [Channel: Int] = [:]
        if let v = f["capacity"] {
            let at = place.key("capacity")
            for (k, value) in try fields(v, at, allowed: nil, what: "capacity") {
                let c = try channel(named: k, at.key(k))
                capacity[c] = try integer(value, at.key(k), min: 0, max: Int(Int32.max), meaning: "contacts per run")
            }
        }
        var budget: Double?
        if let v = f["budget"] { budget = try number(v, place.key("budget"), min: 0, max: 1e15) }
        let control = try number(f["control_fraction"], place.key("control_fraction"), min: 0, max: 1, maxIncluded: false)
        var offsets = Array(repeating: 0, count: Campaign.regionCount)
        if let v = f["region_utc_offsets_minutes"] {
            let at = place.key("region_utc_offsets_minutes")
            guard case .array(let items) = v else { throw wrongType(v, at, "an array of \(Campaign.regionCount) integers") }
            guard items.count == Campaign.regionCount else {
                throw at.error(.outOfRange, "\(items.count) offsets, one per home region is needed (\(Campaign.regionCount), regions 0–\(Campaign.regionCount - 1))",
                               "give exactly \(Campaign.regionCount) offsets in minutes, e.g. 60 for UTC+1")
            }
            for (i, item) in items.enumerated() {
                offsets[i] = try integer(item, at.item(i), min: -720, max: 840, meaning: "minutes from UTC")
            }
        }
        return Campaign(name: name, valueTierCuts: cuts, offers: offers, matrix: matrix, contactPolicy: policy,
                        capacity: capacity, budget: budget, controlFraction: control, regionUTCOffsetsMinutes: offsets)
    }

    static let missingFix = [
        "name": "add \"name\": a name of 1–64 characters A-Z, a-z, 0-9, _, - or .",
        "value_tiers": "add \"value_tiers\": [0.3333, 0.6667] (terciles of the value if retained)",
        "offers": "add \"offers\": [ … ]",
        "matrix": "add \"matrix\": {tier: {band: [offer ids]}}",
        "control_fraction": "add \"control_fraction\": 0.1 (0 holds nobody out, and then no uplift can be measured)",
    ]

    // MARK: Sections

    func tierCuts(_ value: StrictJSON?, _ at: CampaignPlace) throws(CampaignError) -> [Double] {
        guard case .array(let items)? = value else { throw wrongType(value, at, "an array of quantile cut points") }
        guard items.count <= Campaign.maxTierCuts else {
            throw at.error(.outOfRange, "\(items.count) cut points, at most \(Campaign.maxTierCuts)", "use fewer tiers")
        }
        var cuts: [Double] = []
        for (i, item) in items.enumerated() {
            let x = try number(item, at.item(i), min: 0, max: 1, minIncluded: false, maxIncluded: false)
            if let last = cuts.last, x <= last {
                throw at.item(i).error(.notIncreasing, "\(plain(x)) is not above the cut point before it (\(plain(last)))",
                                       "list the cut points in strictly increasing order")
            }
            cuts.append(x)
        }
        return cuts
    }

    func offerList(_ value: StrictJSON?, _ at: CampaignPlace) throws(CampaignError) -> [Offer] {
        guard case .array(let items)? = value else { throw wrongType(value, at, "an array of offers") }
        guard items.count <= Campaign.maxOffers else {
            throw at.error(.outOfRange, "\(items.count) offers, at most \(Campaign.maxOffers)", "split the campaign")
        }
        var seen: [String: Int] = [:]
        var offers: [Offer] = []
        for (i, item) in items.enumerated() {
            let o = try offer(item, at.item(i))
            if let other = seen[o.id] {
                throw at.item(i).key("id").error(.duplicateOffer, "offers[\(other)] has the same id \(quoted(o.id))", "give each offer an id of its own")
            }
            seen[o.id] = i
            offers.append(o)
        }
        return offers
    }

    func offer(_ value: StrictJSON, _ at: CampaignPlace) throws(CampaignError) -> Offer {
        let f = try fields(value, at, allowed: Campaign.offerKeys, what: "an offer")
        for k in ["id", "channel", "cost", "acceptance", "retention_effect"] where f[k] == nil {
            throw at.key(k).error(.missingKey, "the offer has no \(k)", "add \"\(k)\"")
        }
        let id = try identifier(f["id"], at.key("id"), what: "offer id")
        guard case .string(let channelName)? = f["channel"] else { throw wrongType(f["channel"], at.key("channel"), "a channel name") }
        let channel = try channel(named: channelName, at.key("channel"))
        let cost = try number(f["cost"], at.key("cost"), min: 0, max: 1e12)
        let acceptance = try number(f["acceptance"], at.key("acceptance"), min: 0, max: 1)
        let effect = try number(f["retention_effect"], at.key("retention_effect"), min: 0, max: 1)
        var reasons: [Int] = []
        if let v = f["reasons"] {
            let rat = at.key("reasons")
            guard case .array(let items) = v else { throw wrongType(v, rat, "an array of feature names") }
            for (i, item) in items.enumerated() {
                guard case .string(let n) = item else { throw wrongType(item, rat.item(i), "a feature name") }
                let feature = try feature(named: n, rat.item(i), what: "reason")
                guard !reasons.contains(feature) else { throw rat.item(i).error(.duplicateEntry, "\(quoted(n)) is listed twice", "list it once") }
                reasons.append(feature)
            }
        }
        var byReason: [ReasonEffect] = []
        if let v = f["retention_effect_by_reason"] {
            let bat = at.key("retention_effect_by_reason")
            for (n, item) in try fields(v, bat, allowed: nil, what: "retention_effect_by_reason") {
                let feature = try feature(named: n, bat.key(n), what: "reason")
                guard reasons.isEmpty || reasons.contains(feature) else {
                    throw bat.key(n).error(.inconsistent, "\(quoted(n)) is not among the offer's reasons, so the offer never goes to a subscriber for it",
                                           "add \(quoted(n)) to \"reasons\" or remove its effect")
                }
                byReason.append(ReasonEffect(feature: feature, effect: try number(item, bat.key(n), min: 0, max: 1)))
            }
        }
        var rules: [EligibilityRule] = []
        if let v = f["eligible"] {
            let eat = at.key("eligible")
            for (n, item) in try fields(v, eat, allowed: nil, what: "eligible") {
                guard let feature = eligibilityFeatures.firstIndex(of: n) ?? (anyEligibilityFeature ? -1 : nil) else {
                    throw eat.key(n).error(.unknownFeature, "unknown eligibility feature \(quoted(n)): the feature schema has no such feature",
                                           "use a feature of the schema in force (docs/features.md, or the operator's schema); closest: \(closest(n, eligibilityFeatures))")
                }
                guard case .array(let values) = item else { throw wrongType(item, eat.key(n), "an array of allowed values") }
                guard !values.isEmpty else {
                    throw eat.key(n).error(.emptyList, "no allowed values, so no subscriber would be eligible", "list the allowed values or remove \(quoted(n))")
                }
                var allowed: [Float] = []
                for (i, x) in values.enumerated() {
                    let limit = Double(Float.greatestFiniteMagnitude)
                    allowed.append(Float(try number(x, eat.key(n).item(i), min: -limit, max: limit)))
                }
                rules.append(EligibilityRule(feature: feature, allowed: allowed))
            }
        }
        var description: String?
        if let v = f["description"] {
            guard case .string(let s) = v else { throw wrongType(v, at.key("description"), "a string") }
            guard s.count <= 200, !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw at.key("description").error(.outOfRange, "the description has \(s.count) characters or control characters",
                                                  "write at most 200 characters on one line (it is read out to the subscriber)")
            }
            description = s
        }
        return Offer(id: id, channel: channel, cost: cost, acceptance: acceptance, retentionEffect: effect, reasons: reasons,
                     effectByReason: byReason, eligibility: rules, description: description)
    }

    func strategyMatrix(_ value: StrictJSON?, _ at: CampaignPlace, cuts: Int, offers: [Offer]) throws(CampaignError) -> StrategyMatrix {
        let tierNames = Campaign.tierNames(cuts: cuts)
        var matrix = StrategyMatrix(tierCount: tierNames.count)
        for (tierName, row) in try fields(value, at, allowed: nil, what: "the matrix") {
            guard let tier = tierNames.firstIndex(of: tierName) else {
                throw at.key(tierName).error(.unknownTier, "unknown value tier \(quoted(tierName)); with \(cuts) cut point\(cuts == 1 ? "" : "s") the tiers are \(tierNames.joined(separator: ", "))",
                                             "use one of them; closest: \(closest(tierName, tierNames))")
            }
            let rowAt = at.key(tierName)
            for (bandName, cell) in try fields(row, rowAt, allowed: nil, what: "a matrix row") {
                guard let band = RiskBand(wireName: bandName) else {
                    throw rowAt.key(bandName).error(.unknownBand, "unknown risk band \(quoted(bandName))",
                                                    "use low, medium, high or very_high; closest: \(closest(bandName, RiskBand.allCases.map(\.wireName)))")
                }
                let cellAt = rowAt.key(bandName)
                guard case .array(let ids) = cell else { throw wrongType(cell, cellAt, "an array of offer ids") }
                var indices: [Int] = []
                for (i, item) in ids.enumerated() {
                    guard case .string(let id) = item else { throw wrongType(item, cellAt.item(i), "an offer id") }
                    guard let k = offers.firstIndex(where: { $0.id == id }) else {
                        throw cellAt.item(i).error(.unknownOffer, "no offer has the id \(quoted(id))",
                                                   "define it in \"offers\" or use one of \(offers.map(\.id).joined(separator: ", ")); closest: \(closest(id, offers.map(\.id)))")
                    }
                    guard !indices.contains(k) else { throw cellAt.item(i).error(.duplicateEntry, "\(quoted(id)) is listed twice", "list it once") }
                    indices.append(k)
                }
                matrix.set(tier: tier, band: band, offers: indices)
            }
        }
        return matrix
    }

    func contactPolicy(_ value: StrictJSON, _ at: CampaignPlace) throws(CampaignError) -> ContactPolicyRules {
        let f = try fields(value, at, allowed: Campaign.policyKeys, what: "contact_policy")
        var rules = ContactPolicyRules()
        if let v = f["channels"] {
            let cat = at.key("channels")
            for (k, cap) in try fields(v, cat, allowed: nil, what: "channels") {
                rules.channels[try channel(named: k, cat.key(k))] = try self.cap(cap, cat.key(k))
            }
        }
        if let v = f["global"] { rules.global = try cap(v, at.key("global")) }
        if let v = f["cooldown_after_refusal_days"] {
            rules.cooldownAfterRefusalDays = try integer(v, at.key("cooldown_after_refusal_days"), min: 0, max: 3_650, meaning: "days")
        }
        if let v = f["quiet_hours"] {
            let qat = at.key("quiet_hours")
            for (k, window) in try fields(v, qat, allowed: nil, what: "quiet_hours") {
                rules.quietHours[try channel(named: k, qat.key(k))] = try quietHours(window, qat.key(k))
            }
        }
        return rules
    }

    func cap(_ value: StrictJSON, _ at: CampaignPlace) throws(CampaignError) -> ContactPolicyRules.Cap {
        let f = try fields(value, at, allowed: ["max", "days"], what: "a contact cap")
        for k in ["max", "days"] where f[k] == nil {
            throw at.key(k).error(.missingKey, "the cap has no \(k)", "write it as {\"max\": K, \"days\": D}: at most K contacts in D days")
        }
        return .init(max: try integer(f["max"], at.key("max"), min: 1, max: 10_000, meaning: "contacts"),
                     days: try integer(f["days"], at.key("days"), min: 1, max: 3_650, meaning: "days"))
    }

    func quietHours(_ value: StrictJSON, _ at: CampaignPlace) throws(CampaignError) -> QuietHours {
        let f = try fields(value, at, allowed: ["from", "to"], what: "quiet hours")
        func time(_ k: String) throws(CampaignError) -> Int {
            guard let v = f[k] else {
                throw at.key(k).error(.missingKey, "the quiet hours have no \(k)", "write them as {\"from\": \"21:00\", \"to\": \"09:00\"}")
            }
            guard case .string(let s) = v else { throw wrongType(v, at.key(k), "a time \"HH:MM\"") }
            let b = Array(s.utf8)
            func d(_ x: UInt8) -> Int? { (0x30...0x39).contains(x) ? Int(x - 0x30) : nil }
            guard b.count == 5, b[2] == UInt8(ascii: ":"), let h1 = d(b[0]), let h2 = d(b[1]), let m1 = d(b[3]), let m2 = d(b[4]),
                  h1 * 10 + h2 < 24, m1 * 10 + m2 < 60 else {
                throw at.key(k).error(.badQuietHours, "\(quoted(s)) is not a time of day HH:MM (00:00 to 23:59)", "write it as \"21:00\"")
            }
            return (h1 * 10 + h2) * 60 + m1 * 10 + m2
        }
        let from = try time("from"), to = try time("to")
        guard from != to else {
            throw at.error(.badQuietHours, "from and to are both \(QuietHours.clock(from)): the window would be empty or the whole day",
                           "give two different times; to stop a channel entirely, leave it out of the matrix")
        }
        return QuietHours(from: from, to: to)
    }

    // MARK: Values

    /// An object's members in file order, refusing keys given twice and, when `allowed` is given, keys outside it.
    func fields(_ value: StrictJSON?, _ place: CampaignPlace, allowed: [String]?, what: String) throws(CampaignError) -> KeyValuePairs {
        guard case .object(let pairs)? = value else { throw wrongType(value, place, "an object {…}") }
        var seen = Set<String>()
        for (k, _) in pairs {
            if let allowed, !allowed.contains(k) {
                throw place.key(k).error(.unknownKey, "unknown key \(quoted(k)) in \(what)",
                                         "remove it or use one of \(allowed.joined(separator: ", ")); closest: \(closest(k, allowed))")
            }
            guard seen.insert(k).inserted else { throw place.key(k).error(.duplicateKey, "\(quoted(k)) is given twice", "keep one of them") }
        }
        return KeyValuePairs(pairs: pairs)
    }

    /// An object's members, in file order, with lookup by key.
    struct KeyValuePairs: Sequence {
        var pairs: [(key: String, value: StrictJSON)]
        subscript(_ k: String) -> StrictJSON? { pairs.first { $0.key == k }?.value }
        var isEmpty: Bool { pairs.isEmpty }
        func makeIterator() -> IndexingIterator<[(key: String, value: StrictJSON)]> { pairs.makeIterator() }
    }

    func number(_ value: StrictJSON?, _ place: CampaignPlace, min: Double, max: Double,
                minIncluded: Bool = true, maxIncluded: Bool = true) throws(CampaignError) -> Double {
        guard case .number(let x)? = value else { throw wrongType(value, place, "a number") }
        let lower = (minIncluded ? "≥ " : "> ") + plain(min), upper = (maxIncluded ? "≤ " : "< ") + plain(max)
        guard x.isFinite else { throw place.error(.outOfRange, "the number is too large to be finite", "give a number \(lower) and \(upper)") }
        if x < min || (!minIncluded && x == min) { throw place.error(.outOfRange, "must be \(lower), got \(plain(x))", "give a number \(lower) and \(upper)") }
        if x > max || (!maxIncluded && x == max) { throw place.error(.outOfRange, "must be \(upper), got \(plain(x))", "give a number \(lower) and \(upper)") }
        return x
    }

    func integer(_ value: StrictJSON?, _ place: CampaignPlace, min: Int, max: Int, meaning: String) throws(CampaignError) -> Int {
        let x = try number(value, place, min: Double(min), max: Double(max))
        guard x == x.rounded() else { throw place.error(.outOfRange, "must be a whole number of \(meaning), got \(plain(x))", "give an integer from \(min) to \(max)") }
        return Int(x)
    }

    func identifier(_ value: StrictJSON?, _ place: CampaignPlace, what: String) throws(CampaignError) -> String {
        guard case .string(let s)? = value else { throw wrongType(value, place, "a string") }
        guard (1...64).contains(s.utf8.count), s.utf8.allSatisfy({ b in
            (0x61...0x7A).contains(b) || (0x41...0x5A).contains(b) || (0x30...0x39).contains(b) || b == 0x5F || b == 0x2D || b == 0x2E
        }) else {
            throw place.error(.badName, "the \(what) \(quoted(s)) is not 1–64 characters of A-Z, a-z, 0-9, _, - or .",
                              "rename it (it appears in exports, the database and the control-group hash)")
        }
        return s
    }

    func channel(named name: String, _ place: CampaignPlace) throws(CampaignError) -> Channel {
        guard let c = Channel(rawValue: name) else {
            let names = Channel.allCases.map(\.rawValue)
            throw place.error(.unknownChannel, "unknown channel \(quoted(name))",
                              "use one of \(names.joined(separator: ", ")); closest: \(closest(name, names))")
        }
        return c
    }

    func feature(named name: String, _ place: CampaignPlace, what: String) throws(CampaignError) -> Int {
        guard let i = FeatureCatalogue.index(of: name) else {
            throw place.error(.unknownFeature, "unknown \(what) \(quoted(name)): the feature catalogue has no such feature",
                              "use a feature of docs/features.md; closest: \(closest(name, FeatureCatalogue.names))")
        }
        return i
    }

    func wrongType(_ value: StrictJSON?, _ place: CampaignPlace, _ expected: String) -> CampaignError {
        guard let value else { return place.error(.missingKey, "missing, expected \(expected)", "add it") }
        return place.error(.wrongType, "found \(value.typeName), expected \(expected)", "write \(expected) there")
    }

    func plain(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : "\(x)" }

    func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars.prefix(80) {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out += u.properties.generalCategory == .control ? "?" : String(u)
            }
        }
        return out + (s.unicodeScalars.count > 80 ? "…\"" : "\"")
    }

    /// The candidates nearest to `word` by edit distance (at most three, none more than one edit
    /// farther than the nearest), quoted.
    func closest(_ word: String, _ candidates: [String]) -> String {
        let names = NameSuggestions.nearest(to: word, among: candidates)
        return names.isEmpty ? "(none)" : names.map { quoted($0) }.joined(separator: ", ")
    }
}
