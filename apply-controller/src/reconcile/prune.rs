//! The prune step: the inventory after the apply follows the source ([`next_inventory`]); with
//! `prune`, what left it is deleted (when its live labels still name this Kustomization and no
//! annotation protects it), and objects whose delete failed stay in the inventory for the next
//! run.

use super::*;

impl Run<'_> {
    /// The inventory after `change_set` over `old`, and what was pruned. A failed delete keeps
    /// its object in the inventory written to the status, and fails the step.
    pub(super) async fn prune_stale(
        &mut self,
        applier: &Applier,
        old: &Inventory,
        change_set: &ChangeSet,
    ) -> Result<(Inventory, ChangeSet), Stop> {
        let next = next_inventory(old, change_set, self.ks.spec.prune);
        if next.prune.is_empty() {
            return Ok((next.inventory, ChangeSet::default()));
        }
        let report = applier
            .prune(
                old,
                &next.inventory,
                &PruneOptions::new(self.owner(), &self.shared.args.controller_namespace),
            )
            .await;
        if !report.is_success() {
            self.status.inventory = Some(report.inventory);
            let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
            return Err(Stop::failed(
                reasons::PRUNE_FAILED,
                format!("Kustomization/{}: prune failed: {}", self.key, errors.join("; ")),
            ));
        }
        Ok((report.inventory, report.change_set))
    }
}
