/// The subscriber feature catalogue: the one place that defines every profile feature, its
/// unit and meaning. Profile storage, the PostgreSQL table, the generator and the default model
/// all take their columns, in this order, from here. `docs/features.md` explains each.
public enum FeatureCatalogue {
    /// What a feature describes; the reasons shown to a call-centre agent are grouped this way.
    public enum Group: String, Sendable, CaseIterable {
        case account, billing, usage, experience, intent, market
    }

    /// One profile feature.
    public struct Feature: Sendable, Equatable {
        /// Column name (snake_case), also the model's feature name.
        public var name: String
        /// Unit of the value.
        public var unit: String
        /// What the value means, and what missing means for it.
        public var meaning: String
        /// What it describes.
        public var group: Group
    }

    /// Every feature, in column order.
    public static let features: [Feature] = [
        // Account and contract
        .init(name: "tenure_months", unit: "months", meaning: "Months since the line was activated.", group: .account),
        .init(name: "is_prepaid", unit: "0/1", meaning: "1 for a prepaid line, 0 for postpaid.", group: .account),
        .init(name: "days_to_contract_end", unit: "days", meaning: "Days until the commitment period ends; negative once it has ended; missing for prepaid lines.", group: .account),
        .init(name: "days_to_promo_end", unit: "days", meaning: "Days until the current promotional discount ends; missing when there is none.", group: .account),
        .init(name: "region", unit: "code", meaning: "Home region code (0–11), an ordinal code for trees.", group: .account),
        .init(name: "device_age_months", unit: "months", meaning: "Age of the handset seen on the network.", group: .account),
        .init(name: "services_count", unit: "count", meaning: "Services on the account (voice, data, TV, fixed broadband, insurance…).", group: .account),
        .init(name: "family_lines", unit: "count", meaning: "Lines in the same family or shared plan, this one included.", group: .account),
        .init(name: "customer_age_years", unit: "years", meaning: "Age of the account holder; missing when unknown.", group: .account),
        // Billing and balance
        .init(name: "arpu_30d", unit: "currency/month", meaning: "Revenue from the line over the last 30 days.", group: .billing),
        .init(name: "arpu_trend_3m", unit: "ratio", meaning: "Last 30 days' revenue over the average of the 3 months before, minus 1.", group: .billing),
        .init(name: "balance", unit: "currency", meaning: "Prepaid balance; missing for postpaid lines.", group: .billing),
        .init(name: "topups_30d", unit: "count", meaning: "Prepaid top-ups in the last 30 days.", group: .billing),
        .init(name: "topup_amount_30d", unit: "currency", meaning: "Sum of prepaid top-ups in the last 30 days.", group: .billing),
        .init(name: "late_payments_6m", unit: "count", meaning: "Postpaid bills paid late in the last 6 months.", group: .billing),
        // Usage
        .init(name: "calls_out_30d", unit: "count", meaning: "Outgoing calls in the last 30 days.", group: .usage),
        .init(name: "call_minutes_out_30d", unit: "minutes", meaning: "Outgoing call minutes in the last 30 days.", group: .usage),
        .init(name: "calls_trend_3m", unit: "ratio", meaning: "Outgoing calls, last 30 days over the 3-month average, minus 1.", group: .usage),
        .init(name: "sms_out_30d", unit: "count", meaning: "SMS sent in the last 30 days.", group: .usage),
        .init(name: "sms_trend_3m", unit: "ratio", meaning: "SMS sent, last 30 days over the 3-month average, minus 1.", group: .usage),
        .init(name: "data_mb_30d", unit: "MB", meaning: "Mobile data used in the last 30 days.", group: .usage),
        .init(name: "data_trend_3m", unit: "ratio", meaning: "Mobile data, last 30 days over the 3-month average, minus 1.", group: .usage),
        .init(name: "offnet_call_share", unit: "0–1", meaning: "Share of outgoing calls to other operators' numbers.", group: .usage),
        .init(name: "roaming_days_30d", unit: "days", meaning: "Days with roaming activity in the last 30 days.", group: .usage),
        .init(name: "active_days_30d", unit: "days", meaning: "Days with any chargeable activity in the last 30 days.", group: .usage),
        .init(name: "days_since_last_activity", unit: "days", meaning: "Days since the last chargeable event.", group: .usage),
        // Experience and operations
        .init(name: "support_calls_30d", unit: "count", meaning: "Calls to customer care in the last 30 days.", group: .experience),
        .init(name: "complaints_90d", unit: "count", meaning: "Formal complaints in the last 90 days.", group: .experience),
        .init(name: "open_tickets", unit: "count", meaning: "Support tickets still open.", group: .experience),
        .init(name: "dropped_call_rate", unit: "0–1", meaning: "Share of the line's calls dropped by the network in the last 30 days.", group: .experience),
        .init(name: "outage_hours_30d", unit: "hours", meaning: "Hours of network outage in the line's home cell in the last 30 days.", group: .experience),
        // Intent
        .init(name: "other_tariff_views_30d", unit: "count", meaning: "Views of other tariffs in the self-care app in the last 30 days.", group: .intent),
        .init(name: "port_out_inquiries_90d", unit: "count", meaning: "Requests for the porting code or porting conditions in the last 90 days.", group: .intent),
        .init(name: "retention_offers_12m", unit: "count", meaning: "Retention offers made to the line in the last 12 months.", group: .intent),
        // Market
        .init(name: "competitor_activity", unit: "0–1", meaning: "Competitors' marketing intensity in the home region (index).", group: .market),
        .init(name: "competitor_price_gap", unit: "currency/month", meaning: "Our price minus the cheapest comparable competitor offer in the region.", group: .market),
    ]

    /// Feature names in column order.
    public static let names: [String] = features.map(\.name)

    /// Number of features.
    public static var count: Int { features.count }

    /// Column position of the feature called `name`.
    public static func index(of name: String) -> Int? {
        names.firstIndex(of: name)
    }
}
