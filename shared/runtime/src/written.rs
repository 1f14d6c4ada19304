//! The status this process last wrote, per object. A controller is the single writer of its
//! objects' status while it holds the Lease, so what it wrote is the truth, whereas the copy a
//! reconcile starts from comes from a watch that may not have delivered the last write yet. A
//! reconcile that started from that copy would prune by an older inventory and write an older
//! Ready back. Entries are keyed by UID (a recreated object starts afresh) and forgotten when the
//! object's finalizer is released; a new process starts empty and reads the status from its first
//! list, which is current.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use kube::{Resource, ResourceExt};

/// The last written status of each object, by UID.
pub struct LastWritten<S>(Mutex<HashMap<String, S>>);

impl<S> Default for LastWritten<S> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<S: Clone> LastWritten<S> {
    /// The status to start a reconcile of `obj` from: the one this process last wrote, else the
    /// object's own (`observed`).
    pub fn current<K: Resource>(&self, obj: &K, observed: Option<&S>) -> Option<S> {
        let remembered = obj
            .uid()
            .and_then(|uid| self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&uid).cloned());
        remembered.or_else(|| observed.cloned())
    }

    /// Records that `status` was written to `obj`.
    pub fn record<K: Resource>(&self, obj: &K, status: &S) {
        if let Some(uid) = obj.uid() {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(uid, status.clone());
        }
    }

    /// Forgets `obj` (deleted: its finalizer was released).
    pub fn forget<K: Resource>(&self, obj: &K) {
        if let Some(uid) = obj.uid() {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn object(uid: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                uid: Some(uid.to_owned()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn the_last_write_wins_over_a_stale_copy() {
        let written = LastWritten::default();
        let web = object("1");
        assert_eq!(written.current(&web, Some(&"from the watch")), Some("from the watch"));
        written.record(&web, &"written");
        assert_eq!(written.current(&web, Some(&"older, from the watch")), Some("written"));
        assert_eq!(written.current(&web, None), Some("written"));
    }

    #[test]
    fn a_recreated_or_forgotten_object_starts_from_its_own_status() {
        let written = LastWritten::default();
        written.record(&object("1"), &"written");
        assert_eq!(written.current(&object("2"), Some(&"new object")), Some("new object"));
        written.forget(&object("1"));
        assert_eq!(written.current(&object("1"), None), None);
    }
}
