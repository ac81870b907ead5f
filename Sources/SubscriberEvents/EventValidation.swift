/// The checks an owning worker makes of an event that reached it over the wire (where nothing
/// guarantees it came through `EventParser`): the same rules as the parser's, with the worker's
/// own clock for lateness.
extension SubscriberEvent {
    /// Why the event cannot be applied as of `now` (ms since 1970), or nil when it can. Does not
    /// know whether the subscriber exists (the shard answers that).
    public func rejection(now: Int64, allowedLatenessMillis: Int64 = WindowedState.allowedLatenessMillis,
                          maxFutureMillis: Int64 = WindowedState.maxFutureMillis) -> RejectionReason? {
        if let r = EventParser.checkID(eventID, field: "event_id") { return r.0 }
        if let r = EventParser.checkID(source, field: "source") { return r.0 }
        guard subscriberID > 0 else { return .badSubscriberID }
        if let r = valueRejection { return r }
        if at > now &+ maxFutureMillis { return .inFuture }
        if at < now &- allowedLatenessMillis { return .tooLate }
        return nil
    }

    /// Why the event's value does not fit its type (nil: it does): checked on arrival and again
    /// when an event is applied, so a logged row altered in PostgreSQL (a value out of range, NaN
    /// or infinite) is skipped on replay as a rejection rather than trapping a worker.
    public var valueRejection: RejectionReason? {
        let spec = type.spec
        switch spec.value {
        case .required, .optional:
            guard !value.isNaN else { return .missingValue }
            guard value.isFinite else { return .nonFiniteValue }
            guard spec.range.contains(value) else { return .valueOutOfRange }
        case .forbidden:
            guard value == 1 else { return .valueNotAllowed }
        }
        return nil
    }
}
