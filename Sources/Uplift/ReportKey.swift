/// Every key of the report JSON, in one place: the keys are a contract with `churngrid campaign
/// report --json` readers (issue 14), and the flat report mixes fields of several types.
enum ReportKey: String, CodingKey {
    case runID = "run_id"
    case windowDays = "window_days"
    case treatment, control
    case upliftPP = "uplift_pp"
    case upliftCI95PP = "uplift_ci95_pp"
    case waldCI95PP = "uplift_wald_ci95_pp"
    case retained
    case savedCLV = "saved_clv"
    case offerCost = "offer_cost"
    case netValue = "net_value"
    case unobserved
    case perOffer = "per_offer"
    case perChannel = "per_channel"
    case perReason = "per_reason"
    case perCell = "per_cell"
    case qini
    case upliftAt30Pct = "uplift_at_30pct"
}
