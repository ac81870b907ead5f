import SubscriberProfiles

/// Profile columns the world reads and writes, resolved by name from `FeatureCatalogue` once.
/// A name the catalogue lacks resolves to −1 and reads as missing (NaN), so a catalogue change
/// degrades the world's realism instead of trapping.
enum Column {
    static func named(_ name: String) -> Int { FeatureCatalogue.index(of: name) ?? -1 }

    static let tenure = named("tenure_months")
    static let prepaid = named("is_prepaid")
    static let contractEnd = named("days_to_contract_end")
    static let promoEnd = named("days_to_promo_end")
    static let deviceAge = named("device_age_months")
    static let services = named("services_count")
    static let lines = named("family_lines")
    static let customerAge = named("customer_age_years")
    static let arpu = named("arpu_30d")
    static let arpuTrend = named("arpu_trend_3m")
    static let late = named("late_payments_6m")
    static let callsTrend = named("calls_trend_3m")
    static let smsTrend = named("sms_trend_3m")
    static let dataTrend = named("data_trend_3m")
    static let offnet = named("offnet_call_share")
    static let inactiveDays = named("days_since_last_activity")
    static let support = named("support_calls_30d")
    static let complaints = named("complaints_90d")
    static let tickets = named("open_tickets")
    static let dropped = named("dropped_call_rate")
    static let outage = named("outage_hours_30d")
    static let tariffViews = named("other_tariff_views_30d")
    static let portInquiries = named("port_out_inquiries_90d")
    static let retentionOffers = named("retention_offers_12m")
    static let pressure = named("competitor_activity")
    static let priceGap = named("competitor_price_gap")
}

/// Read access to one profile in catalogue order; NaN for a missing value or an unknown column.
struct ProfileView {
    let read: (Int) -> Float

    @inline(__always)
    subscript(_ column: Int) -> Double {
        column >= 0 ? Double(read(column)) : .nan
    }

    /// The value, or `fallback` when missing.
    @inline(__always)
    func value(_ column: Int, or fallback: Double = 0) -> Double {
        let v = self[column]
        return v.isNaN ? fallback : v
    }
}
