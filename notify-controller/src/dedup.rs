//! The duplicate window: an event that says the same as one sent within the window is dropped.
//! "The same" is a key over what the event says: the object, the reason, the revision, and the
//! message with its timings, timestamps and counters taken out, so that "Health check passed in
//! 2.1s" and "... in 2.4s" are one event while a new revision is always a new one.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use sha2::{Digest, Sha256};

use crate::event::Event;

/// Most keys held at once; beyond it the oldest half is forgotten (at worst a duplicate is sent).
const MAX_KEYS: usize = 200_000;

/// What in a message varies without changing what it says: RFC 3339 timestamps, and Go-style
/// durations (`1m2.5s`, `350ms`) and counts (`3`, `3/10`) that stand alone between spaces or
/// punctuation. Digits inside a name (`web-2`), a version (`1.2.3`) or an address stay.
static VOLATILE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<pre>^|[\s(\[=,;])",
        r"(?P<value>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
        r"|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+",
        r"|\d+(\.\d+)?(/\d+)?)",
        r"(?P<post>$|[\s)\],;:%])",
    ))
    .expect("constant regex")
});

/// The message with its volatile parts replaced by `#`.
pub fn normalize(message: &str) -> String {
    // Twice, since neighbouring values share the space between them.
    let once = VOLATILE.replace_all(message, "${pre}#${post}");
    VOLATILE.replace_all(&once, "${pre}#${post}").into_owned()
}

/// A hash of what an event says.
pub type Key = [u8; 32];

/// The key of what `event` says.
pub fn key(event: &Event) -> Key {
    let mut hasher = Sha256::new();
    for part in [
        event.object.api_version.as_str(),
        &event.object.kind,
        &event.object.namespace,
        &event.object.name,
        &event.reason,
        match event.severity {
            crate::event::EventSeverity::Info => "info",
            crate::event::EventSeverity::Error => "error",
        },
        event.metadata.get("revision").map_or("", String::as_str),
        event.metadata.get("originRevision").map_or("", String::as_str),
        event.metadata.get("token").map_or("", String::as_str),
        &normalize(&event.message),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

/// Remembers which keys were let through, and when.
#[derive(Debug)]
pub struct Window {
    length: Duration,
    seen: HashMap<Key, Instant>,
}

impl Window {
    /// A window of `length`; zero lets everything through.
    pub fn new(length: Duration) -> Self {
        Self {
            length,
            seen: HashMap::new(),
        }
    }

    /// Whether an event with `key` should be sent at `now`; if so, it is remembered.
    pub fn admit(&mut self, key: Key, now: Instant) -> bool {
        if self.length.is_zero() {
            return true;
        }
        if let Some(&at) = self.seen.get(&key)
            && now.saturating_duration_since(at) < self.length
        {
            return false;
        }
        if self.seen.len() >= MAX_KEYS {
            self.forget_before(now);
        }
        self.seen.insert(key, now);
        true
    }

    /// Drops expired keys, and the oldest half if that is not enough.
    fn forget_before(&mut self, now: Instant) {
        let length = self.length;
        self.seen.retain(|_, at| now.saturating_duration_since(*at) < length);
        if self.seen.len() >= MAX_KEYS {
            let mut times: Vec<Instant> = self.seen.values().copied().collect();
            let (_, median, _) = times.select_nth_unstable(MAX_KEYS / 2);
            let median = *median;
            self.seen.retain(|_, at| *at > median);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::event::{EventSeverity, InvolvedObject};

    fn event(message: &str, revision: &str) -> Event {
        Event {
            object: InvolvedObject {
                kind: "Kustomization".into(),
                namespace: "shop".into(),
                name: "web".into(),
                uid: String::new(),
                api_version: "apply.eddy.dev/v1alpha1".into(),
                resource_version: String::new(),
            },
            severity: EventSeverity::Error,
            timestamp: "2026-12-03T10:00:00Z".into(),
            message: message.into(),
            reason: "HealthCheckFailed".into(),
            metadata: BTreeMap::from([("revision".to_owned(), revision.to_owned())]),
            reporting_controller: "apply-controller".into(),
        }
    }

    #[test]
    fn timings_counters_and_timestamps_do_not_make_a_new_event() {
        let a = event(
            "health check failed after 2m0.5s: 3 of 10 objects not ready at 2026-12-03T10:00:00Z",
            "main@sha1:aaa",
        );
        let b = event(
            "health check failed after 2m3.01s: 4 of 10 objects not ready at 2026-12-03T10:05:11.5Z",
            "main@sha1:aaa",
        );
        assert_eq!(key(&a), key(&b));
        assert_eq!(normalize("took 350ms then 1h2m3s"), "took # then #");
        assert_eq!(normalize("3 of 10 ready, 4/10 (40%)"), "# of # ready, # (#%)");
        assert_eq!(
            normalize("web-2 runs v1.2.3 on 10.0.0.1:8080"),
            "web-2 runs v1.2.3 on 10.0.0.1:8080"
        );
    }

    #[test]
    fn a_new_revision_or_a_new_reason_is_a_new_event() {
        let a = event("health check failed", "main@sha1:aaa");
        let b = event("health check failed", "main@sha1:bbb");
        assert_ne!(key(&a), key(&b));
        let mut c = a.clone();
        c.reason = "ReconciliationFailed".into();
        assert_ne!(key(&a), key(&c));
        let d = event("Deployment/shop/web-1 not ready", "main@sha1:aaa");
        let e = event("Deployment/shop/web-2 not ready", "main@sha1:aaa");
        assert_ne!(key(&d), key(&e), "names with digits stay apart");
        let mut info = a.clone();
        info.severity = EventSeverity::Info;
        assert_ne!(key(&a), key(&info), "severity is part of what an event says");
    }

    #[test]
    fn the_window_sends_once_then_again_after_it_passes() {
        let mut window = Window::new(Duration::from_secs(300));
        let start = Instant::now();
        let k = key(&event("failed", "r1"));
        assert!(window.admit(k, start));
        assert!(!window.admit(k, start + Duration::from_secs(299)));
        assert!(window.admit(k, start + Duration::from_secs(301)));
        assert!(window.admit(key(&event("failed", "r2")), start + Duration::from_secs(302)));
        let mut off = Window::new(Duration::ZERO);
        assert!(off.admit(k, start) && off.admit(k, start));
    }

    #[test]
    fn a_full_window_forgets_the_oldest_not_the_newest() {
        let mut window = Window::new(Duration::from_secs(3600));
        let start = Instant::now();
        for i in 0..MAX_KEYS as u64 {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            window.admit(k, start + Duration::from_micros(i));
        }
        let mut newest = [0u8; 32];
        newest[..8].copy_from_slice(&(MAX_KEYS as u64 - 1).to_le_bytes());
        let later = start + Duration::from_secs(1);
        assert!(window.admit([9; 32], later));
        assert!(window.seen.len() <= MAX_KEYS / 2 + 1);
        assert!(!window.admit(newest, later), "the newest keys are kept");
    }
}
