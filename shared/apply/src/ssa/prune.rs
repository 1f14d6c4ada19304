//! Pruning: deleting the objects that left the inventory, in reverse apply order, but only those
//! that still carry this owner's labels and do not opt out, and never a system namespace or the
//! controller's own. A failed delete keeps the object in the inventory so the next run retries.

use kube::api::DeleteParams;

use super::{
    Action, Applier, ChangeSet, ChangeSetEntry, Error, Owner, has_policy, is_not_found, object_message, order,
};
use crate::inventory::{self, Inventory, InventoryEntry, ObjectRef};

/// Namespaces that are never deleted, whatever their labels say.
pub const PROTECTED_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Options of [`Applier::prune`].
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Only objects labelled with this owner are deleted.
    pub owner: Owner,
    /// Namespaces never deleted: [`PROTECTED_NAMESPACES`] and the controller's own.
    pub protected_namespaces: Vec<String>,
}

impl PruneOptions {
    /// Options protecting [`PROTECTED_NAMESPACES`] and `controller_namespace`.
    pub fn new(owner: Owner, controller_namespace: &str) -> Self {
        let mut protected_namespaces: Vec<String> = PROTECTED_NAMESPACES.iter().map(|n| (*n).to_owned()).collect();
        protected_namespaces.push(controller_namespace.to_owned());
        Self {
            owner,
            protected_namespaces,
        }
    }

    fn protects(&self, object: &ObjectRef) -> bool {
        object.group.is_empty() && object.kind == "Namespace" && self.protected_namespaces.contains(&object.name)
    }
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct PruneReport {
    /// `deleted` (including objects already gone) or `skipped`, per stale object.
    pub change_set: ChangeSet,
    /// The inventory to record: the new one plus every object whose delete failed.
    pub inventory: Inventory,
    /// One error per object that could not be deleted (or whose entry is malformed).
    pub errors: Vec<Error>,
}

impl PruneReport {
    /// Whether every stale object was deleted or deliberately left alone.
    pub fn is_success(&self) -> bool {
        self.errors.is_empty()
    }
}

impl Applier {
    /// Deletes the objects of `old` that are not in `new` (background propagation, reverse
    /// apply order), when their live labels name `options.owner` and they are not annotated
    /// `prune: disabled`, `reconcile: disabled` or `ssa: Ignore` (in Eddy's or Flux's group, see
    /// [`super::POLICY_ANNOTATION_GROUPS`]). Objects already gone count as deleted. For a
    /// Kustomization's deletion, pass an empty `new`.
    pub async fn prune(&self, old: &Inventory, new: &Inventory, options: &PruneOptions) -> PruneReport {
        let mut stale: Vec<(ObjectRef, InventoryEntry)> = Vec::new();
        let mut report = PruneReport::default();
        for entry in inventory::stale(old, new) {
            match ObjectRef::from_entry(&entry) {
                Ok(object) => stale.push((object, entry)),
                Err(err) => report.errors.push(err.into()),
            }
        }
        stale.sort_by_key(|(object, _)| order::sort_key(object));
        stale.reverse();
        let mut kept = Vec::new();
        for (object, entry) in stale {
            match self.prune_one(&object, options).await {
                Ok(action) => {
                    tracing::debug!(object = %object, action = action.as_str(), "pruned");
                    report.change_set.entries.push(ChangeSetEntry::new(object, action));
                }
                Err(err) => {
                    kept.push(entry);
                    report.errors.push(err);
                }
            }
        }
        report.inventory = inventory::merge(new, &kept);
        report
    }

    async fn prune_one(&self, object: &ObjectRef, options: &PruneOptions) -> Result<Action, Error> {
        if options.protects(object) {
            return Ok(Action::Skipped);
        }
        let api = match self.resolver().api_for(object).await {
            Ok(api) => api,
            // The kind is no longer served (its CRD was deleted): nothing of it is left.
            Err(Error::UnknownKind { .. }) => return Ok(Action::Deleted),
            Err(err) => return Err(err),
        };
        let live = match self.get(&api, object).await {
            Ok(Some(live)) => live,
            Ok(None) => return Ok(Action::Deleted),
            Err(err) => return Err(err),
        };
        let owned = live.metadata.labels.as_ref().is_some_and(|l| options.owner.owns(l));
        let opted_out = has_policy(&live, "prune", "disabled")
            || has_policy(&live, "reconcile", "disabled")
            || has_policy(&live, "ssa", "Ignore");
        if !owned || opted_out {
            return Ok(Action::Skipped);
        }
        match api.delete(&object.name, &DeleteParams::background()).await {
            Ok(_) => Ok(Action::Deleted),
            Err(err) if is_not_found(&err) => Ok(Action::Deleted),
            Err(source) => Err(Error::Delete {
                object: object.clone(),
                message: object_message(object, &source),
                source,
            }),
        }
    }
}
