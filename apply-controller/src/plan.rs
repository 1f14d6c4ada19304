//! The decisions of a reconcile that need no I/O: whether anything must be rendered and applied
//! ([`plan`]), and which inventory the apply leaves ([`next_inventory`]). They take what the
//! reconcile gathered (the last apply, the live cache's comparison, the request) and return
//! data, so every combination is unit-tested here.

use eddy_api::apply::Inventory;
use eddy_apply::inventory::{self, InventoryEntry, ObjectRef};
use eddy_apply::ssa::ChangeSet;

use crate::applied::{Applied, Comparison};

/// What a reconcile knows before it renders anything.
#[derive(Clone, Copy, Debug)]
pub struct Situation<'a> {
    /// What the last successful apply left, when it was from the same inputs (artifact, revision,
    /// generation, variables, identity) and the render did not read anything that can move on
    /// its own (a remote base at a branch).
    pub same_inputs: Option<&'a Applied>,
    /// The reconcile was requested (`requestedAt` not yet handled): the cache is not trusted.
    pub forced: bool,
    /// Ready is True for this generation.
    pub ready: bool,
    /// `status.drift` lists drift left uncorrected (report-only mode).
    pub drift_shown: bool,
}

/// What the reconcile does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Every object is as the last apply left it: health from the cache, nothing sent.
    Verify,
    /// Render and apply; first compare `drifted` with a dry-run and report the difference.
    Apply {
        /// Objects to compare and report before applying (all of them when forced).
        drifted: Vec<ObjectRef>,
    },
}

/// Decides the step from the situation and the live cache's `comparison` of the last apply's
/// objects (ignored when the inputs changed).
pub fn plan(situation: Situation<'_>, comparison: Comparison) -> Step {
    let Some(previous) = situation.same_inputs else {
        return Step::Apply { drifted: Vec::new() };
    };
    if situation.forced {
        let drifted = previous.objects.iter().map(|(object, _)| object.clone()).collect();
        return Step::Apply { drifted };
    }
    match comparison {
        // A drift report stays until an apply shows it is gone, unless the objects are back as
        // applied and Ready holds.
        Comparison::Unchanged if situation.ready || !situation.drift_shown => Step::Verify,
        Comparison::Unchanged | Comparison::Unknown => Step::Apply { drifted: Vec::new() },
        Comparison::Drifted(drifted) => Step::Apply { drifted },
    }
}

/// The inventory an apply leaves, and what to prune.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NextInventory {
    /// The objects of this revision: every object the apply reported, skipped ones included
    /// (they are the source's, and pruning checks the live owner labels before deleting).
    pub inventory: Inventory,
    /// Objects of the previous inventory that left the source, to delete; empty without prune.
    pub prune: Vec<InventoryEntry>,
}

/// The inventory after applying `change_set` over `old`. It follows the source: an object that
/// left the source leaves the inventory whether or not it is pruned (as in Flux), so that turning
/// prune on later, or deleting the Kustomization, never deletes what left the source long ago.
pub fn next_inventory(old: &Inventory, change_set: &ChangeSet, prune: bool) -> NextInventory {
    let inventory = change_set.to_inventory();
    let prune = if prune {
        inventory::stale(old, &inventory)
    } else {
        Vec::new()
    };
    NextInventory { inventory, prune }
}

#[cfg(test)]
mod tests {
    use eddy_apply::ssa::{Action, ChangeSetEntry};

    use super::*;

    fn object(name: &str) -> ObjectRef {
        ObjectRef::new("v1", "ConfigMap", "shop", name)
    }

    fn applied(names: &[&str]) -> Applied {
        Applied {
            input: 1,
            objects: names.iter().map(|n| (object(n), 7)).collect(),
            floating: false,
        }
    }

    fn situation(same_inputs: Option<&Applied>) -> Situation<'_> {
        Situation {
            same_inputs,
            forced: false,
            ready: true,
            drift_shown: false,
        }
    }

    fn apply(names: &[&str]) -> Step {
        Step::Apply {
            drifted: names.iter().map(|n| object(n)).collect(),
        }
    }

    #[test]
    fn new_inputs_apply_without_a_drift_report() {
        for comparison in [
            Comparison::Unchanged,
            Comparison::Unknown,
            Comparison::Drifted(vec![object("a")]),
        ] {
            let mut forced = situation(None);
            forced.forced = true;
            assert_eq!(plan(situation(None), comparison.clone()), apply(&[]));
            assert_eq!(plan(forced, comparison), apply(&[]));
        }
    }

    #[test]
    fn unchanged_objects_are_verified_from_the_cache() {
        let previous = applied(&["a", "b"]);
        assert_eq!(plan(situation(Some(&previous)), Comparison::Unchanged), Step::Verify);
        let mut not_ready = situation(Some(&previous));
        not_ready.ready = false;
        assert_eq!(plan(not_ready, Comparison::Unchanged), Step::Verify, "no drift shown");
    }

    #[test]
    fn a_shown_drift_is_cleared_by_an_apply_unless_ready() {
        let previous = applied(&["a"]);
        let mut shown = situation(Some(&previous));
        shown.drift_shown = true;
        assert_eq!(plan(shown, Comparison::Unchanged), Step::Verify);
        shown.ready = false;
        assert_eq!(plan(shown, Comparison::Unchanged), apply(&[]));
    }

    #[test]
    fn a_cache_that_cannot_tell_means_an_apply() {
        let previous = applied(&["a"]);
        assert_eq!(plan(situation(Some(&previous)), Comparison::Unknown), apply(&[]));
    }

    #[test]
    fn drifted_objects_are_reported_then_applied() {
        let previous = applied(&["a", "b"]);
        assert_eq!(
            plan(situation(Some(&previous)), Comparison::Drifted(vec![object("b")])),
            apply(&["b"])
        );
    }

    #[test]
    fn a_request_compares_every_object_whatever_the_cache_says() {
        let previous = applied(&["a", "b"]);
        let mut forced = situation(Some(&previous));
        forced.forced = true;
        for comparison in [
            Comparison::Unchanged,
            Comparison::Unknown,
            Comparison::Drifted(vec![object("b")]),
        ] {
            assert_eq!(plan(forced, comparison), apply(&["a", "b"]));
        }
    }

    fn inventory(names: &[&str]) -> Inventory {
        Inventory {
            entries: names.iter().map(|n| object(n).to_entry()).collect(),
        }
    }

    fn change_set(entries: &[(&str, Action)]) -> ChangeSet {
        ChangeSet {
            entries: entries
                .iter()
                .map(|(name, action)| ChangeSetEntry::new(object(name), *action))
                .collect(),
        }
    }

    #[test]
    fn the_inventory_follows_the_source_with_or_without_prune() {
        let old = inventory(&["a", "b", "gone"]);
        let applied = change_set(&[
            ("a", Action::Unchanged),
            ("b", Action::Configured),
            ("new", Action::Created),
        ]);
        let pruned = next_inventory(&old, &applied, true);
        assert_eq!(pruned.inventory, inventory(&["a", "b", "new"]));
        assert_eq!(pruned.prune, inventory(&["gone"]).entries);
        let kept = next_inventory(&old, &applied, false);
        assert_eq!(kept.inventory, inventory(&["a", "b", "new"]), "orphaned, not kept");
        assert!(kept.prune.is_empty());
    }

    #[test]
    fn skipped_objects_stay_in_the_inventory() {
        let old = inventory(&["once"]);
        let applied = change_set(&[("once", Action::Skipped)]);
        let next = next_inventory(&old, &applied, true);
        assert_eq!(next.inventory, inventory(&["once"]));
        assert!(next.prune.is_empty());
    }

    #[test]
    fn a_first_apply_prunes_nothing() {
        let applied = change_set(&[("a", Action::Created)]);
        let next = next_inventory(&Inventory::default(), &applied, true);
        assert_eq!(next.inventory, inventory(&["a"]));
        assert!(next.prune.is_empty());
    }
}
