//! The apply step: the live cache watches every kind about to be applied, ignored fields keep
//! their live values (a failed read stops the run), and the staged server-side apply runs as the
//! Kustomization's identity; objects created before a failure stay in the inventory.

use super::*;

impl Run<'_> {
    /// Applies `objects` in stages as the Kustomization's identity, with the live cache watching
    /// their kinds first. On failure, objects created before it are added to `old` in the
    /// inventory (so a later prune finds them) and nothing is pruned.
    pub(super) async fn apply_objects(
        &mut self,
        applier: &Applier,
        objects: Vec<DynamicObject>,
        old: &Inventory,
    ) -> Result<ChangeSet, Stop> {
        let options = ApplyOptions {
            force: self.ks.spec.force,
            owner: Some(self.owner()),
            wait_timeout: self.timing.timeout,
            concurrency: usize::from(self.shared.args.apply_concurrency),
            ..ApplyOptions::default()
        };
        self.watch_kinds(applier, &objects).await;
        match applier.apply_all_staged(objects, &options).await {
            Ok(change_set) => Ok(change_set),
            Err(err) => {
                let created: Vec<_> = err
                    .change_set
                    .entries
                    .iter()
                    .filter(|e| e.action == Change::Created)
                    .map(|e| e.object.to_entry())
                    .collect();
                if !created.is_empty() {
                    self.status.inventory = Some(inventory::merge(old, &created));
                }
                let message = format!("Kustomization/{}: apply failed: {err}", self.key);
                Err(Stop::failed(reasons::APPLY_FAILED, message).because(err))
            }
        }
    }

    /// Starts the live cache's watch of every kind about to be applied, so that the next
    /// reconcile can be answered from it.
    pub(super) async fn watch_kinds(&self, applier: &Applier, objects: &[DynamicObject]) {
        let mut seen = BTreeSet::new();
        for object in objects {
            let Ok(object) = ObjectRef::from_object(object) else {
                continue;
            };
            if !seen.insert((object.group.clone(), object.version.clone(), object.kind.clone())) {
                continue;
            }
            if let Ok(Some((resource, capabilities))) = applier.resolver().resolve(&object).await {
                self.shared.live.watch_kind(
                    &resource,
                    matches!(capabilities.scope, kube::discovery::Scope::Namespaced),
                );
            }
        }
    }

    /// Sets the ignored fields of each desired object to their live values.
    pub(super) async fn keep_ignored_fields(
        &self,
        applier: &Applier,
        ignore: &IgnoreRules,
        objects: &mut [DynamicObject],
    ) -> Result<(), Stop> {
        for object in objects.iter_mut() {
            let mut value =
                serde_json::to_value(&*object).map_err(|e| Stop::failed(reasons::BUILD_FAILED, e.to_string()))?;
            if ignore.paths_for(&value).is_empty() {
                continue;
            }
            let Ok(reference) = ObjectRef::from_object(object) else {
                continue;
            };
            let read = match applier.resolver().api_for(&reference).await {
                Ok(api) => api.get_opt(&reference.name).await.map_err(|e| api_message(&e)),
                // A kind not served yet (its CRD is in this apply) has no objects.
                Err(SsaError::UnknownKind { .. }) => Ok(None),
                Err(e) => Err(e.to_string()),
            };
            let live = live_for_ignore(&reference, read).map_err(|message| {
                Stop::failed(reasons::APPLY_FAILED, format!("Kustomization/{}: {message}", self.key))
            })?;
            let live = live.and_then(|l| serde_json::to_value(l).ok());
            ignore.apply_to_desired(&mut value, live.as_ref());
            *object = serde_json::from_value(value).map_err(|e| Stop::failed(reasons::BUILD_FAILED, e.to_string()))?;
        }
        Ok(())
    }
}

/// The live object whose ignored fields the desired one keeps, from the read of it: only a
/// NotFound (`Ok(None)`) means there is none. Any failed read (a timeout, 429, 403) stops the run
/// with the reason, because taking it for an absent object would overwrite the ignored fields.
pub(super) fn live_for_ignore(
    object: &ObjectRef,
    read: Result<Option<DynamicObject>, String>,
) -> Result<Option<DynamicObject>, String> {
    read.map_err(|message| format!("reading {object} for its ignored fields failed, nothing applied: {message}"))
}
