//! kstatus-compatible conditions: Ready (normal polarity), Reconciling and Stalled (present only
//! while true). Every controller sets conditions through here so that transition times and
//! observedGeneration follow one rule: the time moves only when the status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The object is fully reconciled (`True`), failed (`False`) or in progress (`Unknown`).
pub const READY: &str = "Ready";
/// Work is in progress; present only while true.
pub const RECONCILING: &str = "Reconciling";
/// A terminal error needs a human; present only while true.
pub const STALLED: &str = "Stalled";

/// Reasons shared by every controller. Kind-specific reasons live with their controller.
pub mod reason {
    /// The controller reconciled the object.
    pub const SUCCEEDED: &str = "ReconciliationSucceeded";
    /// The controller failed to reconcile the object.
    pub const FAILED: &str = "ReconciliationFailed";
    /// Work is in progress.
    pub const PROGRESSING: &str = "Progressing";
    /// Work is in progress again after a failure.
    pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
    /// `spec.suspend` is set.
    pub const SUSPENDED: &str = "Suspended";
    /// The controller for this kind does not act on it yet.
    pub const NOT_IMPLEMENTED: &str = "NotImplemented";
}

/// The three values of a condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"`.
    Unknown,
}

impl Status {
    /// The string Kubernetes stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// Sets condition `type_` in `conditions`, adding it if absent. The transition time is kept when
/// the status does not change, and set to `now` when it does; reason, message and
/// observedGeneration always take the new values.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) {
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status.as_str() {
                existing.status = status.as_str().to_owned();
                existing.last_transition_time = Time(now);
            }
            existing.reason = reason.to_owned();
            existing.message = message;
            existing.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.as_str().to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation,
            last_transition_time: Time(now),
        }),
    }
}

/// Removes condition `type_`, as abnormal-true conditions are removed when they stop holding.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether Ready is True and describes `generation`, the test dependants and `eddy` use.
pub fn is_ready(conditions: &[Condition], generation: Option<i64>) -> bool {
    get(conditions, READY).is_some_and(|c| {
        c.status == Status::True.as_str() && (generation.is_none() || c.observed_generation == generation)
    })
}

/// Marks the end of a successful reconcile: Ready True, Reconciling and Stalled gone.
pub fn mark_ready(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    set(conditions, READY, Status::True, reason, message, generation, now);
    remove(conditions, RECONCILING);
    remove(conditions, STALLED);
}

/// Marks work in progress: Reconciling True and Ready Unknown with the same message.
pub fn mark_reconciling(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message = message.into();
    set(
        conditions,
        RECONCILING,
        Status::True,
        reason,
        message.clone(),
        generation,
        now,
    );
    set(conditions, READY, Status::Unknown, reason, message, generation, now);
}

/// Marks a failure that a retry may fix: Ready False, Reconciling True with reason
/// `ProgressingWithRetry`, Stalled gone.
pub fn mark_failed(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message = message.into();
    set(
        conditions,
        READY,
        Status::False,
        reason,
        message.clone(),
        generation,
        now,
    );
    set(
        conditions,
        RECONCILING,
        Status::True,
        reason::PROGRESSING_WITH_RETRY,
        message,
        generation,
        now,
    );
    remove(conditions, STALLED);
}

/// Marks a failure only a change of the object can fix: Ready False, Stalled True, Reconciling
/// gone.
pub fn mark_stalled(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message = message.into();
    set(
        conditions,
        READY,
        Status::False,
        reason,
        message.clone(),
        generation,
        now,
    );
    set(conditions, STALLED, Status::True, reason, message, generation, now);
    remove(conditions, RECONCILING);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let mut conditions = Vec::new();
        mark_failed(&mut conditions, "FetchFailed", "remote down", Some(1), at(100));
        mark_failed(&mut conditions, "FetchFailed", "remote still down", Some(2), at(200));
        let ready = get(&conditions, READY).unwrap();
        assert_eq!(ready.last_transition_time, Time(at(100)));
        assert_eq!(ready.message, "remote still down");
        assert_eq!(ready.observed_generation, Some(2));
    }

    #[test]
    fn transition_time_moves_when_the_status_changes() {
        let mut conditions = Vec::new();
        mark_failed(&mut conditions, "FetchFailed", "remote down", Some(1), at(100));
        mark_ready(
            &mut conditions,
            reason::SUCCEEDED,
            "stored revision main@sha1:abc",
            Some(1),
            at(300),
        );
        let ready = get(&conditions, READY).unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_transition_time, Time(at(300)));
        assert!(
            get(&conditions, RECONCILING).is_none(),
            "Reconciling is removed once ready"
        );
        assert!(is_ready(&conditions, Some(1)));
        assert!(
            !is_ready(&conditions, Some(2)),
            "a Ready for an older generation does not count"
        );
    }

    #[test]
    fn stalled_and_reconciling_exclude_each_other() {
        let mut conditions = Vec::new();
        mark_reconciling(&mut conditions, reason::PROGRESSING, "fetching", Some(1), at(1));
        assert_eq!(get(&conditions, READY).unwrap().status, "Unknown");
        mark_stalled(&mut conditions, "InvalidURL", "url has no scheme", Some(1), at(2));
        assert!(get(&conditions, RECONCILING).is_none());
        assert_eq!(get(&conditions, STALLED).unwrap().status, "True");
        mark_failed(&mut conditions, "FetchFailed", "timeout", Some(2), at(3));
        assert!(get(&conditions, STALLED).is_none());
        assert_eq!(
            get(&conditions, RECONCILING).unwrap().reason,
            reason::PROGRESSING_WITH_RETRY
        );
    }
}
