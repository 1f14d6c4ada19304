//! What the last successful apply of each Kustomization left: a hash of its inputs and the
//! fingerprint of every applied object. Compared with the live cache, it tells whether a
//! reconcile has anything to do without one API request. Kept in memory: after a restart the
//! first reconcile of each Kustomization applies in full, as before the cache existed.

use std::collections::HashMap;
use std::sync::Mutex;

use eddy_apply::inventory::ObjectRef;
use eddy_apply::ssa::ChangeSet;
use eddy_apply::ssa::cache::{LiveCache, Lookup};

/// The last apply of one Kustomization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Hash of everything the rendered objects depend on (see `reconcile::input_key`).
    pub input: u64,
    /// The applied objects and the fingerprint of the fields the engine owns in each.
    pub objects: Vec<(ObjectRef, u64)>,
    /// The render read a remote base at a branch, which may have moved since: the same inputs
    /// do not mean the same objects, so the next reconcile renders again.
    pub floating: bool,
}

impl Applied {
    /// The record of `change_set`, applied from `input`; `floating` when the render read a
    /// remote base at a branch.
    pub fn new(input: u64, change_set: &ChangeSet, floating: bool) -> Self {
        Self {
            input,
            floating,
            objects: change_set
                .entries
                .iter()
                .filter_map(|e| e.fingerprint.map(|f| (e.object.clone(), f)))
                .collect(),
        }
    }
}

/// What the live cache says about the objects of an [`Applied`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Every object is there with the fields as applied.
    Unchanged,
    /// These objects changed or disappeared.
    Drifted(Vec<ObjectRef>),
    /// The cache cannot tell (a kind not watched or not synced yet).
    Unknown,
}

/// Compares `applied` with the live cache.
pub fn compare(applied: &Applied, live: &LiveCache) -> Comparison {
    let mut drifted = Vec::new();
    for (object, fingerprint) in &applied.objects {
        match live.lookup(object) {
            Lookup::Unknown => return Comparison::Unknown,
            Lookup::Absent => drifted.push(object.clone()),
            Lookup::Present(entry) if entry.fingerprint != *fingerprint => drifted.push(object.clone()),
            Lookup::Present(_) => {}
        }
    }
    if drifted.is_empty() {
        Comparison::Unchanged
    } else {
        Comparison::Drifted(drifted)
    }
}

/// The records, by Kustomization `namespace/name`.
#[derive(Default)]
pub struct Memory(Mutex<HashMap<String, Applied>>);

impl Memory {
    /// The record of `key`.
    pub fn get(&self, key: &str) -> Option<Applied> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Replaces the record of `key`.
    pub fn set(&self, key: &str, applied: Applied) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), applied);
    }

    /// Forgets `key`: its next reconcile applies in full.
    pub fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}
