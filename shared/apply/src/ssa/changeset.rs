//! Change sets: what a verb did to each object. Inventories, change logs and events are built
//! from them.

use std::fmt;

use crate::inventory::{Inventory, InventoryEntry, ObjectRef};
use crate::status::Health;

/// What a verb did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// The object did not exist and was created (or was recreated after an immutable change).
    Created,
    /// The object existed and the apply changed it.
    Configured,
    /// The object existed and the apply changed nothing (its resourceVersion did not move).
    Unchanged,
    /// The object was deleted, or was already gone.
    Deleted,
    /// A policy (annotation, owner labels, protected namespace) left the object alone.
    Skipped,
}

impl Action {
    /// The word used in change logs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Skipped => "skipped",
        }
    }
}

/// One object and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeSetEntry {
    /// The object, with its namespace cleared when its kind is cluster-scoped.
    pub object: ObjectRef,
    /// What happened.
    pub action: Action,
    /// The fingerprint of the fields the engine owns in the object as the apply left it (see
    /// [`super::cache::fingerprint`]); `None` when nothing was applied.
    pub fingerprint: Option<u64>,
    /// The object's health in the apply's response; `None` when nothing was applied.
    pub health: Option<Health>,
}

impl ChangeSetEntry {
    /// An entry without a fingerprint or health.
    pub fn new(object: ObjectRef, action: Action) -> Self {
        Self {
            object,
            action,
            fingerprint: None,
            health: None,
        }
    }
}

/// `Deployment/shop/web configured`, Flux's change-log line.
impl fmt::Display for ChangeSetEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.object, self.action.as_str())
    }
}

/// What a verb did, one entry per object, in the order the objects were handled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// The entries.
    pub entries: Vec<ChangeSetEntry>,
}

impl ChangeSet {
    /// The inventory of everything the set names (applied, unchanged and skipped alike), sorted
    /// by id. Built from what the engine reported, never from the desired list.
    pub fn to_inventory(&self) -> Inventory {
        let mut entries: Vec<InventoryEntry> = self.entries.iter().map(|entry| entry.object.to_entry()).collect();
        entries.sort();
        entries.dedup_by(|a, b| a.id == b.id);
        Inventory { entries }
    }

    /// The action taken on `object`, if it is in the set.
    pub fn action_of(&self, object: &ObjectRef) -> Option<Action> {
        self.entries.iter().find(|e| e.object == *object).map(|e| e.action)
    }

    /// Entries that created, configured or deleted something.
    pub fn changes(&self) -> impl Iterator<Item = &ChangeSetEntry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.action, Action::Created | Action::Configured | Action::Deleted))
    }

    /// One line per change (`Kind/ns/name created`), for an event message; empty when nothing
    /// changed.
    pub fn change_log(&self) -> String {
        self.changes().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    }

    /// The objects that were applied (not skipped): what a `wait` should check.
    pub fn applied_objects(&self) -> Vec<ObjectRef> {
        self.entries
            .iter()
            .filter(|e| matches!(e.action, Action::Created | Action::Configured | Action::Unchanged))
            .map(|e| e.object.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_logs_list_changes_only() {
        let set = ChangeSet {
            entries: vec![
                ChangeSetEntry::new(
                    ObjectRef::new("apps/v1", "Deployment", "shop", "web"),
                    Action::Configured,
                ),
                ChangeSetEntry::new(ObjectRef::new("v1", "ConfigMap", "shop", "web"), Action::Unchanged),
                ChangeSetEntry::new(ObjectRef::new("v1", "Namespace", "", "shop"), Action::Created),
            ],
        };
        assert_eq!(
            set.change_log(),
            "Deployment/shop/web configured\nNamespace/shop created"
        );
        assert_eq!(set.applied_objects().len(), 3);
    }
}
