//! `alertOn: change`: an Alert that speaks when an object's state changes instead of on every
//! event. Per Alert and object it remembers whether the object is failing (and with which
//! error, sent when) and the last revision reported healthy; [`decide`] is a pure function of
//! that memory, the event and the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::dedup;
use crate::event::{Event, EventSeverity};

/// Info reasons that say work is under way, not that the object is healthy again.
const IN_PROGRESS: [&str; 4] = [
    "Progressing",
    "ProgressingWithRetry",
    "DependencyNotReady",
    "Reconciling",
];

/// Most objects remembered per process; beyond it the least recently seen are forgotten (at
/// worst one message is sent again).
const MAX_OBJECTS: usize = 100_000;

/// What an Alert remembers of one object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectState {
    /// The error last sent, and when, while the object fails.
    failing: Option<(dedup::Key, Instant)>,
    /// The revision last reported as applied.
    healthy_revision: Option<String>,
    seen: Option<Instant>,
}

/// What to do with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send it as it is.
    Send,
    /// Send it as the recovery from the error sent before.
    SendRecovered,
    /// Nothing changed: drop it.
    Drop,
}

/// Decides on `event` for an object in `state`, and updates the state.
pub fn decide(state: &mut ObjectState, event: &Event, repeat: Option<Duration>, now: Instant) -> Decision {
    state.seen = Some(now);
    match event.severity {
        EventSeverity::Error => {
            let error = dedup::key(event);
            let decision = match state.failing {
                Some((sent, at)) if sent == error => match repeat {
                    Some(repeat) if now.saturating_duration_since(at) >= repeat => Decision::Send,
                    _ => Decision::Drop,
                },
                _ => Decision::Send,
            };
            if decision == Decision::Send {
                state.failing = Some((error, now));
            }
            decision
        }
        EventSeverity::Info if IN_PROGRESS.contains(&event.reason.as_str()) => Decision::Drop,
        EventSeverity::Info => {
            let revision = event.revision().map(str::to_owned);
            if state.failing.take().is_some() {
                state.healthy_revision = revision;
                return Decision::SendRecovered;
            }
            if revision.is_some() && revision != state.healthy_revision {
                state.healthy_revision = revision;
                Decision::Send
            } else {
                Decision::Drop
            }
        }
    }
}

/// The states of every (Alert, object) pair, bounded.
#[derive(Debug, Default)]
pub struct States {
    objects: HashMap<(String, String), ObjectState>,
}

impl States {
    /// The state of `object` under `alert`, created empty.
    pub fn get(&mut self, alert: &str, object: &str) -> &mut ObjectState {
        if self.objects.len() >= MAX_OBJECTS {
            let mut seen: Vec<Option<Instant>> = self.objects.values().map(|s| s.seen).collect();
            let (_, median, _) = seen.select_nth_unstable(MAX_OBJECTS / 2);
            let median = *median;
            self.objects.retain(|_, state| state.seen > median);
        }
        self.objects.entry((alert.to_owned(), object.to_owned())).or_default()
    }

    /// Forgets everything about `alert` (deleted, or its spec changed).
    pub fn forget_alert(&mut self, alert: &str) {
        self.objects.retain(|(owner, _), _| owner != alert);
    }

    /// Forgets every Alert for which `keep` is false.
    pub fn retain_alerts(&mut self, keep: impl Fn(&str) -> bool) {
        self.objects.retain(|(owner, _), _| keep(owner));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::event::InvolvedObject;

    fn event(severity: EventSeverity, reason: &str, message: &str, revision: &str) -> Event {
        Event {
            object: InvolvedObject {
                kind: "Kustomization".into(),
                namespace: "shop".into(),
                name: "web".into(),
                uid: String::new(),
                api_version: "apply.eddy.dev/v1alpha1".into(),
                resource_version: String::new(),
            },
            severity,
            timestamp: String::new(),
            message: message.into(),
            reason: reason.into(),
            metadata: BTreeMap::from([("revision".to_owned(), revision.to_owned())]),
            reporting_controller: "apply-controller".into(),
        }
    }

    #[test]
    fn an_error_is_sent_once_then_a_recovery_then_nothing_until_a_new_revision() {
        let mut state = ObjectState::default();
        let t = Instant::now();
        let failed = event(
            EventSeverity::Error,
            "HealthCheckFailed",
            "web not ready after 5m0s",
            "r1",
        );
        let applied = event(EventSeverity::Info, "ReconciliationSucceeded", "applied", "r1");
        assert_eq!(decide(&mut state, &failed, None, t), Decision::Send);
        let again = event(
            EventSeverity::Error,
            "HealthCheckFailed",
            "web not ready after 5m2s",
            "r1",
        );
        for minutes in [5, 10, 60, 600] {
            let later = t + Duration::from_secs(60 * minutes);
            assert_eq!(decide(&mut state, &again, None, later), Decision::Drop);
        }
        let progressing = event(EventSeverity::Info, "Progressing", "applying", "r1");
        assert_eq!(
            decide(&mut state, &progressing, None, t),
            Decision::Drop,
            "progress is no recovery"
        );
        assert_eq!(decide(&mut state, &applied, None, t), Decision::SendRecovered);
        assert_eq!(decide(&mut state, &applied, None, t), Decision::Drop);
        let next = event(EventSeverity::Info, "ReconciliationSucceeded", "applied", "r2");
        assert_eq!(decide(&mut state, &next, None, t), Decision::Send);
    }

    #[test]
    fn a_lasting_error_repeats_only_at_the_repeat_interval() {
        let mut state = ObjectState::default();
        let t = Instant::now();
        let failed = event(EventSeverity::Error, "HealthCheckFailed", "not ready", "r1");
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(decide(&mut state, &failed, hour, t), Decision::Send);
        assert_eq!(
            decide(&mut state, &failed, hour, t + Duration::from_secs(3599)),
            Decision::Drop
        );
        assert_eq!(
            decide(&mut state, &failed, hour, t + Duration::from_secs(3600)),
            Decision::Send
        );
        assert_eq!(
            decide(&mut state, &failed, hour, t + Duration::from_secs(3700)),
            Decision::Drop
        );
    }

    #[test]
    fn a_different_error_is_a_change() {
        let mut state = ObjectState::default();
        let t = Instant::now();
        let health = event(EventSeverity::Error, "HealthCheckFailed", "not ready", "r1");
        let build = event(EventSeverity::Error, "BuildFailed", "kustomization.yaml: bad", "r2");
        assert_eq!(decide(&mut state, &health, None, t), Decision::Send);
        assert_eq!(decide(&mut state, &build, None, t), Decision::Send);
        assert_eq!(decide(&mut state, &build, None, t), Decision::Drop);
    }

    #[test]
    fn states_are_kept_per_alert_and_object_and_forgotten_with_the_alert() {
        let mut states = States::default();
        let t = Instant::now();
        let failed = event(EventSeverity::Error, "HealthCheckFailed", "not ready", "r1");
        assert_eq!(
            decide(states.get("shop/a", "K/shop/web"), &failed, None, t),
            Decision::Send
        );
        assert_eq!(
            decide(states.get("shop/b", "K/shop/web"), &failed, None, t),
            Decision::Send
        );
        assert_eq!(
            decide(states.get("shop/a", "K/shop/web"), &failed, None, t),
            Decision::Drop
        );
        states.forget_alert("shop/a");
        assert_eq!(
            decide(states.get("shop/a", "K/shop/web"), &failed, None, t),
            Decision::Send
        );
    }
}
