//! Drift found when it happens. The live cache tells of every applied object whose owned fields
//! changed or that was deleted; a change that is not the last apply's own (its fingerprint is
//! not the one that apply left) asks for a reconcile of the owning Kustomization, which compares,
//! reports and corrects as on any interval. Notices are gathered per Kustomization for
//! [`DEBOUNCE`], so a burst costs one reconcile, and held while the Kustomization applies
//! ([`Applying`]), so that its own writes are compared with the record it leaves, not the one
//! before. Each object's corrections are bounded ([`Corrections`]):
//! a writer that keeps changing an object back is reported as contesting it, and corrections on
//! change pause for that object while the interval reconcile carries on as before.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;

use eddy_api::apply::Kustomization;
use eddy_apply::inventory::ObjectRef;
use eddy_apply::ssa::cache::Changed;
use kube::runtime::reflector;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Shared;
use crate::applied::Applied;

/// How long notices about one Kustomization are gathered before they are acted on.
pub const DEBOUNCE: Duration = Duration::from_millis(500);
/// Corrections of one object on change within [`FIGHT_WINDOW`] before it counts as contested.
pub const FIGHT_CORRECTIONS: usize = 5;
/// The window [`FIGHT_CORRECTIONS`] are counted in.
pub const FIGHT_WINDOW: Duration = Duration::from_secs(60);
/// How long corrections on change of a contested object pause.
pub const FIGHT_BACKOFF: Duration = Duration::from_secs(300);

/// What to do about a change of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Correct it now.
    Correct,
    /// This change makes the object contested: report it (one last reconcile), then pause.
    Contested,
    /// Contested recently: left to the interval reconcile.
    Paused,
}

/// The rate bound on corrections on change, per object. Pure: the caller passes the time.
#[derive(Debug, Default)]
pub struct Corrections {
    recent: HashMap<ObjectRef, VecDeque<Instant>>,
    paused: HashMap<ObjectRef, Instant>,
}

impl Corrections {
    /// Decides about a change of `object` seen at `now`, and counts it when corrected.
    pub fn admit(&mut self, object: &ObjectRef, now: Instant) -> Admission {
        if let Some(until) = self.paused.get(object) {
            if now < *until {
                return Admission::Paused;
            }
            self.paused.remove(object);
        }
        let recent = self.recent.entry(object.clone()).or_default();
        while recent.front().is_some_and(|at| now.duration_since(*at) >= FIGHT_WINDOW) {
            recent.pop_front();
        }
        if recent.len() >= FIGHT_CORRECTIONS {
            self.recent.remove(object);
            self.paused.insert(object.clone(), now + FIGHT_BACKOFF);
            return Admission::Contested;
        }
        recent.push_back(now);
        Admission::Correct
    }

    /// Whether `object` is contested at `now`, and until when.
    pub fn paused_until(&self, object: &ObjectRef, now: Instant) -> Option<Instant> {
        self.paused.get(object).copied().filter(|until| now < *until)
    }

    /// Forgets what is over at `now`, so that the history stays as small as the live fights.
    fn expire(&mut self, now: Instant) {
        self.paused.retain(|_, until| now < *until);
        self.recent
            .retain(|_, times| times.back().is_some_and(|at| now.duration_since(*at) < FIGHT_WINDOW));
    }
}

/// An object another writer keeps changing back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contest {
    /// The object.
    pub object: ObjectRef,
    /// Until when corrections on change are paused.
    pub until: Instant,
}

/// The contested objects per Kustomization (`namespace/name`), for its reconcile to report.
#[derive(Debug, Default)]
pub struct Contests(Mutex<Corrections>, Mutex<HashMap<String, Vec<ObjectRef>>>);

impl Contests {
    /// The objects of `key` contested now.
    pub fn of(&self, key: &str) -> Vec<Contest> {
        let now = Instant::now();
        let corrections = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut owners = self.1.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(objects) = owners.get_mut(key) else {
            return Vec::new();
        };
        let contests: Vec<Contest> = objects
            .iter()
            .filter_map(|object| {
                let until = corrections.paused_until(object, now)?;
                Some(Contest {
                    object: object.clone(),
                    until,
                })
            })
            .collect();
        objects.retain(|o| contests.iter().any(|c| &c.object == o));
        if objects.is_empty() {
            owners.remove(key);
        }
        contests
    }

    fn admit(&self, key: &str, object: &ObjectRef) -> Admission {
        let now = Instant::now();
        let mut corrections = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        corrections.expire(now);
        let admission = corrections.admit(object, now);
        if admission == Admission::Contested {
            let mut owners = self.1.lock().unwrap_or_else(PoisonError::into_inner);
            let objects = owners.entry(key.to_owned()).or_default();
            if !objects.contains(object) {
                objects.push(object.clone());
            }
        }
        admission
    }
}

/// The Kustomizations applying now (`namespace/name`): notices about them wait until the apply's
/// record is stored.
#[derive(Debug, Default)]
pub struct Applying(Mutex<HashSet<String>>);

impl Applying {
    /// Marks `key` as applying until the returned guard is dropped.
    pub fn begin(&self, key: &str) -> ApplyingGuard<'_> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned());
        ApplyingGuard {
            applying: self,
            key: key.to_owned(),
        }
    }

    /// Whether `key` is applying now.
    pub fn contains(&self, key: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(key)
    }
}

/// Marks a Kustomization as applying while it lives.
pub struct ApplyingGuard<'a> {
    applying: &'a Applying,
    key: String,
}

impl Drop for ApplyingGuard<'_> {
    fn drop(&mut self) {
        self.applying
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// The objects among `changes` (in the order they were seen) whose latest state differs from
/// what `applied` left: changes that are not the apply's own. Only the latest notice of an object
/// counts, so an apply's intermediate writes (a take-over before the apply) are not drift. An
/// object the apply did not leave (not applied, or skipped) is no one's drift.
pub fn drifted<'a>(applied: &Applied, changes: impl IntoIterator<Item = &'a Changed>) -> Vec<ObjectRef> {
    let mut latest: HashMap<&ObjectRef, Option<u64>> = HashMap::new();
    for change in changes {
        latest.insert(&change.object, change.fingerprint);
    }
    let mut drifted: Vec<ObjectRef> = latest
        .into_iter()
        .filter(|(changed, now)| {
            applied
                .objects
                .iter()
                .any(|(object, fingerprint)| object == *changed && *now != Some(*fingerprint))
        })
        .map(|(object, _)| object.clone())
        .collect();
    drifted.sort();
    drifted
}

/// Turns the live cache's notices into reconcile requests until the cache or the controller
/// stops.
pub async fn run(mut notices: mpsc::Receiver<Changed>, shared: Weak<Shared>) {
    // Per Kustomization `namespace/name`: the notices gathered and when to act on them.
    let mut pending: HashMap<String, (Vec<Changed>, Instant)> = HashMap::new();
    loop {
        let due = pending.values().map(|(_, at)| *at).min();
        tokio::select! {
            notice = notices.recv() => {
                let Some(notice) = notice else { return };
                let key = format!("{}/{}", notice.owner.namespace, notice.owner.name);
                pending
                    .entry(key)
                    .or_insert_with(|| (Vec::new(), Instant::now() + DEBOUNCE))
                    .0
                    .push(notice);
            }
            () = sleep_until(due), if due.is_some() => {
                let now = Instant::now();
                let ready: Vec<String> = pending
                    .iter()
                    .filter(|(_, (_, at))| *at <= now)
                    .map(|(key, _)| key.clone())
                    .collect();
                let Some(shared) = shared.upgrade() else { return };
                for key in ready {
                    let Some((changes, _)) = pending.remove(&key) else { continue };
                    if shared.applying.contains(&key) {
                        // Held until the apply's record is stored.
                        pending.insert(key, (changes, now + DEBOUNCE));
                    } else {
                        act(&shared, &key, &changes);
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Requests a reconcile of the Kustomization `key` when one of `changes` is drift that may be
/// corrected now, or has just become contested.
fn act(shared: &Shared, key: &str, changes: &[Changed]) {
    let Some(applied) = shared.applied.get(key) else {
        return;
    };
    let mut reconcile = false;
    for object in drifted(&applied, changes) {
        match shared.contests.admit(key, &object) {
            Admission::Correct => reconcile = true,
            Admission::Contested => {
                tracing::warn!(object = %object, kustomization = key, "another writer keeps changing the object; corrections on change paused");
                reconcile = true;
            }
            Admission::Paused => tracing::debug!(object = %object, "contested; left to the interval"),
        }
    }
    let Some((namespace, name)) = key.split_once('/') else {
        return;
    };
    if reconcile {
        tracing::debug!(kustomization = key, "applied objects changed; reconciling");
        let _ = shared
            .trigger
            .send(reflector::ObjectRef::<Kustomization>::new(name).within(namespace));
    }
}

#[cfg(test)]
mod tests {
    use eddy_apply::ssa::Owner;

    use super::*;

    fn object(name: &str) -> ObjectRef {
        ObjectRef::new("apps/v1", "Deployment", "shop", name)
    }

    fn change(name: &str, fingerprint: Option<u64>) -> Changed {
        Changed {
            object: object(name),
            owner: Owner::new("apps", "shop"),
            fingerprint,
        }
    }

    #[test]
    fn only_changes_that_are_not_the_applys_own_are_drift() {
        let applied = Applied {
            input: 1,
            objects: vec![(object("web"), 10), (object("api"), 20)],
            floating: false,
        };
        let changes = [
            change("web", Some(10)),
            change("api", Some(21)),
            change("api", Some(22)),
            change("worker", Some(5)),
        ];
        assert_eq!(drifted(&applied, &changes), vec![object("api")]);
        assert_eq!(
            drifted(&applied, &[change("web", None)]),
            vec![object("web")],
            "deleted"
        );
        assert!(
            drifted(&applied, &[change("web", Some(10))]).is_empty(),
            "the apply's own write"
        );
        assert!(
            drifted(&applied, &[change("web", Some(11)), change("web", Some(10))]).is_empty(),
            "a take-over before the apply, then the apply"
        );
        assert_eq!(
            drifted(&applied, &[change("web", Some(10)), change("web", Some(11))]),
            vec![object("web")],
            "changed after the apply"
        );
    }

    #[test]
    fn a_writer_that_keeps_changing_an_object_back_is_contested_then_left_alone() {
        let mut corrections = Corrections::default();
        let start = Instant::now();
        let web = object("web");
        for i in 0..FIGHT_CORRECTIONS {
            let at = start + Duration::from_secs(i as u64);
            assert_eq!(corrections.admit(&web, at), Admission::Correct, "correction {i}");
        }
        let fight = start + Duration::from_secs(FIGHT_CORRECTIONS as u64);
        assert_eq!(corrections.admit(&web, fight), Admission::Contested);
        assert_eq!(corrections.paused_until(&web, fight), Some(fight + FIGHT_BACKOFF));
        assert_eq!(
            corrections.admit(&web, fight + Duration::from_secs(1)),
            Admission::Paused
        );
        assert_eq!(
            corrections.admit(&object("api"), fight),
            Admission::Correct,
            "other objects are corrected as usual"
        );
        let after = fight + FIGHT_BACKOFF;
        assert_eq!(corrections.admit(&web, after), Admission::Correct, "the pause ends");
        assert_eq!(corrections.paused_until(&web, after), None);
    }

    #[test]
    fn corrections_spread_beyond_the_window_never_count_as_a_fight() {
        let mut corrections = Corrections::default();
        let start = Instant::now();
        let web = object("web");
        for i in 0..(FIGHT_CORRECTIONS * 4) {
            let at = start + FIGHT_WINDOW / FIGHT_CORRECTIONS as u32 * i as u32 + Duration::from_millis(10 * i as u64);
            assert_eq!(corrections.admit(&web, at), Admission::Correct, "correction {i}");
        }
        corrections.expire(start + FIGHT_WINDOW * 10);
        assert!(corrections.recent.is_empty() && corrections.paused.is_empty());
    }
}
