import SubscriberProfiles

/// The text a call-centre agent reads before a retention call: why the subscriber may leave, in
/// plain words, and the offer to make. Deterministic (the same inputs give the same bytes, with
/// no locale), at most `maxLength` characters, and without the score, the subscriber id or
/// anything else the agent should not say to the customer.
public enum CallScript {
    /// The longest script, in characters.
    public static let maxLength = 500

    /// The script for `offer` to a subscriber with top reasons `reasons`.
    /// - Parameter feature: the subscriber's profile value of a catalogue column (NaN when
    ///   missing); a reason's value makes its phrase concrete ("complained 3 times…").
    public static func text(offer: Offer, reasons: TopReasons, feature: (Int) -> Double) -> String {
        let head = "Retention call. "
        let offerText = "Offer: " + clean(offer.description ?? offer.id) + ". "
        let tail = "Listen first, acknowledge the problem, then make the offer."
        var why: [String] = []
        for r in reasons where FeatureCatalogue.features.indices.contains(r) {
            let p = phrase(feature: r, value: feature(r))
            if !why.contains(p) { why.append(p) }
        }
        // Drop the weakest reasons (the last) until everything fits.
        while true {
            let whyText = why.isEmpty ? "" : "Why the customer may leave: " + why.joined(separator: "; ") + ". "
            let s = head + whyText + offerText + tail
            if s.count <= maxLength { return s }
            if why.isEmpty { return String(s.prefix(maxLength - 1)) + "…" }
            why.removeLast()
        }
    }

    /// A plain-words phrase for reason feature `feature` (a `FeatureCatalogue` index) with value
    /// `value` (NaN: the phrase names the reason without a number).
    public static func phrase(feature: Int, value v: Double) -> String {
        guard FeatureCatalogue.features.indices.contains(feature) else { return "an unknown reason" }
        let f = FeatureCatalogue.features[feature]
        guard v.isFinite else { return generic(f) }
        let n = count(v)
        switch f.name {
        case "tenure_months": return v < 12 ? "joined only \(months(v)) ago" : "has been a customer for \(months(v))"
        case "is_prepaid": return v >= 0.5 ? "is on a prepaid line" : "is on a postpaid contract"
        case "days_to_contract_end": return v < 0 ? "contract ended \(days(-v)) ago, so the customer is free to leave" : "contract ends in \(days(v))"
        case "days_to_promo_end": return v < 0 ? "promotional discount ended \(days(-v)) ago" : "promotional discount ends in \(days(v))"
        case "region": return "lives in home region \(n)"
        case "device_age_months": return "handset is \(months(v)) old"
        case "services_count": return "has \(plural(v, "service")) with us"
        case "family_lines": return "has \(plural(v, "line")) on the family plan"
        case "customer_age_years": return "the account holder's age group"
        case "arpu_30d": return "spent \(amount(v)) in the last 30 days"
        case "arpu_trend_3m": return "spending is \(change(v)) over the last 3 months"
        case "balance": return "prepaid balance is \(amount(v))"
        case "topups_30d": return "topped up \(times(v)) in the last 30 days"
        case "topup_amount_30d": return "topped up \(amount(v)) in the last 30 days"
        case "late_payments_6m": return "paid \(plural(v, "bill")) late in the last 6 months"
        case "calls_out_30d": return "made \(plural(v, "call")) in the last 30 days"
        case "call_minutes_out_30d": return "called \(plural(v, "minute")) in the last 30 days"
        case "calls_trend_3m": return "calling is \(change(v)) on the 3 months before"
        case "sms_out_30d": return "sent \(n) SMS in the last 30 days"
        case "sms_trend_3m": return "SMS use is \(change(v)) on the 3 months before"
        case "data_mb_30d": return "used \(n) MB of data in the last 30 days"
        case "data_trend_3m": return "data use is \(change(v)) on the 3 months before"
        case "offnet_call_share": return "\(percent(v)) of calls go to other operators' numbers"
        case "roaming_days_30d": return "roamed on \(plural(v, "day")) in the last 30 days"
        case "active_days_30d": return "active on only \(n) of the last 30 days"
        case "days_since_last_activity": return "no activity for \(days(v))"
        case "support_calls_30d": return "called customer care \(times(v)) in the last 30 days"
        case "complaints_90d": return "complained \(times(v)) in the last 90 days"
        case "open_tickets": return "has \(plural(v, "support ticket")) still open"
        case "dropped_call_rate": return "\(percent(v)) of calls dropped in the last 30 days"
        case "outage_hours_30d": return "\(plural(v, "hour")) of network outage at home in the last 30 days"
        case "other_tariff_views_30d": return "looked at other tariffs \(times(v)) in the last 30 days"
        case "port_out_inquiries_90d": return "asked about moving the number to another operator \(times(v)) in the last 90 days"
        case "retention_offers_12m": return "had \(plural(v, "retention offer")) in the last 12 months"
        case "competitor_activity": return "competitors are advertising heavily in the area"
        case "competitor_price_gap":
            return v > 0 ? "pays \(amount(v)) a month more than the cheapest comparable competitor offer" : "our price is already at or below competitors'"
        default: return generic(f)
        }
    }

    /// The feature's meaning, for a reason without a value or without its own phrase.
    static func generic(_ f: FeatureCatalogue.Feature) -> String {
        var m = f.meaning
        if let dot = m.firstIndex(of: ".") { m = String(m[..<dot]) }
        if let semicolon = m.firstIndex(of: ";") { m = String(m[..<semicolon]) }
        return m.prefix(1).lowercased() + m.dropFirst()
    }

    static func count(_ v: Double) -> String { String(Int64(min(max(v, -1e12), 1e12).rounded())) }
    static func plural(_ v: Double, _ word: String) -> String { count(v) + " " + word + (count(v) == "1" ? "" : "s") }
    static func days(_ v: Double) -> String { plural(v, "day") }
    static func months(_ v: Double) -> String { plural(v, "month") }
    static func percent(_ v: Double) -> String { count(v * 100) + "%" }

    static func times(_ v: Double) -> String {
        switch count(v) {
        case "1": "once"
        case "2": "twice"
        default: count(v) + " times"
        }
    }

    static func change(_ ratio: Double) -> String {
        let pct = count(abs(ratio) * 100)
        return pct == "0" ? "unchanged" : (ratio < 0 ? "down " : "up ") + pct + "%"
    }

    /// A currency amount with at most two decimals, trailing zeros dropped.
    static func amount(_ v: Double) -> String {
        let cents = Int64((min(max(v, -1e12), 1e12) * 100).rounded())
        let whole = cents / 100, frac = abs(cents % 100)
        let sign = cents < 0 && whole == 0 ? "-" : ""
        if frac == 0 { return sign + String(whole) }
        return sign + String(whole) + "." + (frac < 10 ? "0" : "") + (frac % 10 == 0 ? String(frac / 10) : String(frac))
    }

    /// A description from the campaign file without characters that break a one-line script.
    static func clean(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : $0 }).prefix(200))
    }
}
