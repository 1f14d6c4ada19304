//! The apply engine: server-side apply of rendered manifests in stages, with per-object policies
//! from annotations, take-over of fields edited with kubectl, recreation on immutable-field
//! errors, drift detection by server-side dry-run, and pruning. Objects come from the kustomize
//! renderer as [`DynamicObject`]s; every verb returns a report ([`ChangeSet`], [`Drift`],
//! [`PruneReport`]) from which apply-controller builds its inventory, events and status.

pub mod cache;
mod changeset;
mod drift;
mod error;
pub mod fields;
pub mod order;
mod prune;
mod resolver;
pub mod wait;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, GetParams, Patch, PatchParams};
use kube::discovery::Scope;
use serde_json::{Value, json};
use tokio::time::Instant;

pub use crate::inventory::ObjectRef;
use crate::status::{self, ObjectHealth, WaitError, WaitOptions};
pub use changeset::{Action, ChangeSet, ChangeSetEntry};
pub use drift::{Drift, FieldDrift};
pub use error::{ApplyError, Error, api_message};
use error::{immutable_fields, is_conflict, is_not_found, object_message};
pub use order::Stage;
pub use prune::{PROTECTED_NAMESPACES, PruneOptions, PruneReport};
pub use resolver::Resolver;

/// The field manager apply-controller applies with.
pub const FIELD_MANAGER: &str = "eddy-apply";

/// Label naming the Kustomization that applied an object.
pub const OWNER_NAME_LABEL: &str = "apply.eddy.dev/name";
/// Label naming the namespace of the Kustomization that applied an object.
pub const OWNER_NAMESPACE_LABEL: &str = "apply.eddy.dev/namespace";
/// Annotation selecting the apply policy: `Ignore`, `IfNotPresent` or `Merge` (default: apply
/// with force, taking every field in the manifest).
pub const SSA_ANNOTATION: &str = "apply.eddy.dev/ssa";
/// Annotation `disabled`: an object that exists is neither applied nor pruned.
pub const RECONCILE_ANNOTATION: &str = "apply.eddy.dev/reconcile";
/// Annotation `enabled`: recreate this object when an immutable field changes.
pub const FORCE_ANNOTATION: &str = "apply.eddy.dev/force";
/// Annotation `disabled`: never prune this object.
pub const PRUNE_ANNOTATION: &str = "apply.eddy.dev/prune";

/// The groups whose per-object policy annotations (`<group>/ssa`, `/reconcile`, `/force`,
/// `/prune`) the engine honours: Eddy's own, and Flux kustomize-controller's, so that a
/// repository migrated from Flux keeps its protections unchanged.
pub const POLICY_ANNOTATION_GROUPS: [&str; 2] = ["apply.eddy.dev", "kustomize.toolkit.fluxcd.io"];

/// `kubectl apply`'s copy of the manifest, which may hold Secret data in clear; removed on
/// take-over.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How long a kind that a CRD of the same set defines may take to appear in discovery.
const DISCOVERY_SETTLE: Duration = Duration::from_secs(10);

/// The Kustomization whose objects these are: stamped on applied objects as labels, and
/// required on live objects before pruning them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The Kustomization's name.
    pub name: String,
    /// The Kustomization's namespace.
    pub namespace: String,
}

impl Owner {
    /// An owner.
    pub fn new(name: &str, namespace: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// Whether `labels` name this owner.
    pub fn owns(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        labels.get(OWNER_NAME_LABEL) == Some(&self.name) && labels.get(OWNER_NAMESPACE_LABEL) == Some(&self.namespace)
    }
}

/// Options of the apply verbs.
#[derive(Clone)]
pub struct ApplyOptions {
    /// Recreate objects whose immutable fields changed (the Kustomization's `spec.force`); per
    /// object, the annotation `apply.eddy.dev/force: enabled` does the same.
    pub force: bool,
    /// Stamped as the owner labels on every applied object.
    pub owner: Option<Owner>,
    /// Managers whose fields are taken back before applying (see
    /// [`fields::DEFAULT_TAKEOVER_MANAGERS`]).
    pub takeover_managers: Vec<String>,
    /// How long to wait for cluster definitions and classes to become ready, and for an object
    /// being recreated to go away.
    pub wait_timeout: Duration,
    /// Poll interval of those waits.
    pub wait_interval: Duration,
    /// Objects applied at once within a stage.
    pub concurrency: usize,
}

impl std::fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("force", &self.force)
            .field("owner", &self.owner)
            .field("takeover_managers", &self.takeover_managers)
            .field("wait_timeout", &self.wait_timeout)
            .field("wait_interval", &self.wait_interval)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            force: false,
            owner: None,
            takeover_managers: fields::DEFAULT_TAKEOVER_MANAGERS.map(String::from).into(),
            wait_timeout: Duration::from_secs(60),
            wait_interval: Duration::from_millis(500),
            concurrency: 4,
        }
    }
}

fn annotation<'a>(object: &'a DynamicObject, key: &str) -> Option<&'a str> {
    object.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Whether `object` carries the policy annotation `<group>/<name>: value` (value compared
/// without case) under any of [`POLICY_ANNOTATION_GROUPS`].
fn has_policy(object: &DynamicObject, name: &str, value: &str) -> bool {
    meta_has_policy(&object.metadata, name, value)
}

/// [`has_policy`] of an object's metadata.
fn meta_has_policy(metadata: &ObjectMeta, name: &str, value: &str) -> bool {
    let Some(annotations) = metadata.annotations.as_ref() else {
        return false;
    };
    POLICY_ANNOTATION_GROUPS.iter().any(|group| {
        annotations
            .get(&format!("{group}/{name}"))
            .is_some_and(|v| v.eq_ignore_ascii_case(value))
    })
}

/// The per-object policy, read from the manifest and, where Flux does, the live object.
#[derive(Clone, Copy, Debug, Default)]
struct Policy {
    ignore: bool,
    if_not_present: bool,
    merge: bool,
    reconcile_disabled: bool,
    force: bool,
}

impl Policy {
    fn of(desired: &DynamicObject, live: Option<&ObjectMeta>) -> Self {
        let either = |name: &str, value: &str| {
            has_policy(desired, name, value) || live.is_some_and(|l| meta_has_policy(l, name, value))
        };
        Self {
            ignore: either("ssa", "Ignore"),
            if_not_present: has_policy(desired, "ssa", "IfNotPresent"),
            merge: has_policy(desired, "ssa", "Merge"),
            reconcile_disabled: either("reconcile", "disabled"),
            force: has_policy(desired, "force", "enabled"),
        }
    }

    fn skips(self, exists: bool) -> bool {
        self.ignore || (exists && (self.if_not_present || self.reconcile_disabled))
    }
}

/// The apply engine: a client, a field manager and a discovery cache. Share one (in an `Arc`)
/// across reconciles so that discovery is not repeated.
pub struct Applier {
    resolver: Resolver,
    field_manager: String,
}

/// A manifest resolved against discovery and ready to send.
struct Prepared {
    object: ObjectRef,
    desired: DynamicObject,
    api: Api<DynamicObject>,
}

impl Applier {
    /// An engine applying as [`FIELD_MANAGER`].
    pub fn new(client: kube::Client) -> Self {
        Self {
            resolver: Resolver::new(client),
            field_manager: FIELD_MANAGER.to_owned(),
        }
    }

    /// The same engine applying as `field_manager`.
    pub fn with_field_manager(mut self, field_manager: &str) -> Self {
        self.field_manager = field_manager.to_owned();
        self
    }

    /// The field manager applies are made with.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// The discovery cache.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Applies `objects` in stages: cluster definitions (CRDs, Namespaces, ClusterRoles), then
    /// `*Class` kinds, each waited for until ready, discovery refreshed after the first; then the
    /// rest in [`order::KIND_ORDER`]. Manifests without an identity fail the call before
    /// anything is applied; a stage with errors stops the call after that stage.
    pub async fn apply_all_staged(
        &self,
        objects: Vec<DynamicObject>,
        options: &ApplyOptions,
    ) -> Result<ChangeSet, ApplyError> {
        let sorted = identify_and_sort(objects)?;
        let defines_kinds = sorted
            .iter()
            .any(|(o, _)| o.group == "apiextensions.k8s.io" && o.kind == "CustomResourceDefinition");
        let mut change_set = ChangeSet::default();
        let mut rest = sorted.into_iter().peekable();
        while let Some((first, _)) = rest.peek() {
            let stage = order::stage_of(first);
            let mut batch = Vec::new();
            while let Some((object, manifest)) = rest.next_if(|(o, _)| order::stage_of(o) == stage) {
                batch.push((object, manifest));
            }
            let settle = defines_kinds && stage != Stage::ClusterDefinitions;
            let (entries, mut errors) = self.apply_batch(batch, options, settle).await;
            let applied: Vec<ObjectRef> = entries
                .iter()
                .filter(|e| e.action != Action::Skipped)
                .map(|e| e.object.clone())
                .collect();
            change_set.entries.extend(entries);
            if errors.is_empty() && stage != Stage::Rest && !applied.is_empty() {
                let wait = WaitOptions {
                    timeout: options.wait_timeout,
                    interval: options.wait_interval,
                    fail_fast: true,
                };
                if let Err(source) = wait::wait(&self.resolver, &applied, &wait).await {
                    let stage = match stage {
                        Stage::ClusterDefinitions => "cluster definitions",
                        _ => "classes",
                    };
                    errors.push(Error::Wait { stage, source });
                }
                if stage == Stage::ClusterDefinitions {
                    self.resolver.invalidate();
                }
            }
            if !errors.is_empty() {
                return Err(ApplyError { change_set, errors });
            }
        }
        Ok(change_set)
    }

    /// Applies `objects` in [`order::sort_key`] order without stages or waits.
    pub async fn apply_all(
        &self,
        objects: Vec<DynamicObject>,
        options: &ApplyOptions,
    ) -> Result<ChangeSet, ApplyError> {
        let sorted = identify_and_sort(objects)?;
        let (entries, errors) = self.apply_batch(sorted, options, false).await;
        let change_set = ChangeSet { entries };
        if errors.is_empty() {
            Ok(change_set)
        } else {
            Err(ApplyError { change_set, errors })
        }
    }

    async fn apply_batch(
        &self,
        batch: Vec<(ObjectRef, DynamicObject)>,
        options: &ApplyOptions,
        settle: bool,
    ) -> (Vec<ChangeSetEntry>, Vec<Error>) {
        let results: Vec<Result<ChangeSetEntry, Error>> = futures::stream::iter(batch)
            .map(|(_, manifest)| self.apply_object(manifest, options, settle))
            .buffered(options.concurrency.max(1))
            .collect()
            .await;
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok(entry) => entries.push(entry),
                Err(err) => errors.push(err),
            }
        }
        (entries, errors)
    }

    /// Applies one object and reports what changed.
    pub async fn apply(&self, object: DynamicObject, options: &ApplyOptions) -> Result<ChangeSetEntry, Error> {
        self.apply_object(object, options, false).await
    }

    async fn apply_object(
        &self,
        manifest: DynamicObject,
        options: &ApplyOptions,
        settle: bool,
    ) -> Result<ChangeSetEntry, Error> {
        let Prepared { object, desired, api } = self.prepare(manifest, options, settle).await?;
        let entry = |action| ChangeSetEntry::new(object.clone(), action);
        // Always ask the apiserver: the policy and the take-over depend on the live object, and
        // no cache of Eddy's own objects can tell that an object made by someone else does not
        // exist. The cheap probe answers for an object that does not exist yet, and for one whose
        // policy says to leave it alone; anything else is read in full.
        let live = match self.probe(&api, &object).await? {
            // Where absence is the whole point (create it only if nobody has), the cache's
            // answer is confirmed, so an object made a moment ago by someone else is not missed.
            None if has_policy(&desired, "ssa", "IfNotPresent") => self.get(&api, &object).await?,
            None => None,
            Some(metadata) if Policy::of(&desired, Some(&metadata)).skips(true) => {
                tracing::debug!(object = %object, "skipped by policy");
                return Ok(entry(Action::Skipped));
            }
            Some(_) => self.get(&api, &object).await?,
        };
        let policy = Policy::of(&desired, live.as_ref().map(|l| &l.metadata));
        if policy.skips(live.is_some()) {
            tracing::debug!(object = %object, "skipped by policy");
            return Ok(entry(Action::Skipped));
        }
        let mut before = live.clone();
        if let Some(live) = &live
            && !policy.merge
            && let Some(patched) = self.take_over(&api, &object, live, options).await?
        {
            before = Some(patched);
        }
        let params = self.apply_params(policy);
        let applied = match api.patch(&object.name, &params, &Patch::Apply(&desired)).await {
            Ok(applied) => applied,
            Err(err) => {
                if let Some(fields) = immutable_fields(&err) {
                    if !(options.force || policy.force) {
                        return Err(Error::Immutable {
                            message: object_message(&object, &err),
                            object,
                            fields,
                        });
                    }
                    let recreated = self.recreate(&api, &object, &desired, &params, options).await?;
                    tracing::info!(object = %object, fields = ?fields, "recreated to change immutable fields");
                    let (fingerprint, health) = cache::summarize_applied(&recreated, &self.field_manager);
                    return Ok(ChangeSetEntry {
                        fingerprint: Some(fingerprint),
                        health: Some(health),
                        ..entry(Action::Created)
                    });
                }
                return Err(self.apply_error(&object, err, false));
            }
        };
        let action = match &before {
            None => Action::Created,
            Some(before) if is_unchanged(before, &applied, &self.field_manager) => Action::Unchanged,
            Some(_) => Action::Configured,
        };
        tracing::debug!(object = %object, action = action.as_str(), "applied");
        let (fingerprint, health) = cache::summarize_applied(&applied, &self.field_manager);
        Ok(ChangeSetEntry {
            fingerprint: Some(fingerprint),
            health: Some(health),
            ..entry(action)
        })
    }

    fn apply_params(&self, policy: Policy) -> PatchParams {
        let params = PatchParams::apply(&self.field_manager);
        // Merge leaves fields that other managers own with them: no force, so a conflict is
        // reported rather than resolved.
        if policy.merge { params } else { params.force() }
    }

    fn apply_error(&self, object: &ObjectRef, err: kube::Error, dry_run: bool) -> Error {
        if is_conflict(&err) {
            return Error::Conflict {
                object: object.clone(),
                message: object_message(object, &err),
            };
        }
        Error::Apply {
            object: object.clone(),
            dry_run,
            message: object_message(object, &err),
            source: err,
        }
    }

    /// The metadata of the live object, `None` when the apiserver says it does not exist. Read
    /// with `resourceVersion=0`, which the apiserver answers from its watch cache without a
    /// quorum read of etcd, at almost no cost (measured with `BENCH_BACKLOG=1 scripts/bench-apply
    /// 1000`: 41.9 s against 46.1 s with a full read, 42.4 s with none). The cache trails etcd
    /// by the time a watch event takes to arrive (milliseconds; more under heavy etcd load), so
    /// an object created by someone else within that moment can be answered absent: an object
    /// that existed before is always seen, and a NotFound for an `IfNotPresent` manifest is
    /// confirmed with a consistent read. A change to an existing object's annotations is seen by
    /// the consistent read that follows. Only NotFound counts as absent: any other failure stops
    /// the apply of this object. A server that cannot answer with metadata alone (406) is read
    /// in full.
    async fn probe(&self, api: &Api<DynamicObject>, object: &ObjectRef) -> Result<Option<ObjectMeta>, Error> {
        match api.get_metadata_opt_with(&object.name, &GetParams::any()).await {
            Ok(found) => Ok(found.map(|partial| partial.metadata)),
            Err(kube::Error::Api(status)) if status.code == 406 => {
                Ok(self.get(api, object).await?.map(|live| live.metadata))
            }
            Err(source) => Err(Error::Get {
                object: object.clone(),
                message: object_message(object, &source),
                source,
            }),
        }
    }

    async fn get(&self, api: &Api<DynamicObject>, object: &ObjectRef) -> Result<Option<DynamicObject>, Error> {
        api.get_opt(&object.name).await.map_err(|source| Error::Get {
            object: object.clone(),
            message: object_message(object, &source),
            source,
        })
    }

    /// Resolves the manifest's kind (waiting up to [`DISCOVERY_SETTLE`] when `settle`, for
    /// kinds whose CRD was just applied), fixes its namespace to the kind's scope, stamps the
    /// owner labels and drops fields an apply must not carry.
    async fn prepare(
        &self,
        mut desired: DynamicObject,
        options: &ApplyOptions,
        settle: bool,
    ) -> Result<Prepared, Error> {
        let mut object = ObjectRef::from_object(&desired)?;
        let deadline = Instant::now() + DISCOVERY_SETTLE;
        let (resource, capabilities) = loop {
            match self.resolver.resolve(&object).await? {
                Some(found) => break found,
                None if settle && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                None => return Err(Error::UnknownKind { object }),
            }
        };
        match capabilities.scope {
            Scope::Cluster => {
                object.namespace.clear();
                desired.metadata.namespace = None;
            }
            Scope::Namespaced if object.namespace.is_empty() => {
                return Err(Error::InvalidObject {
                    object,
                    reason: "the kind is namespaced but the object has no namespace".into(),
                });
            }
            Scope::Namespaced => {}
        }
        if let Some(owner) = &options.owner {
            let labels = desired.metadata.labels.get_or_insert_default();
            labels.insert(OWNER_NAME_LABEL.into(), owner.name.clone());
            labels.insert(OWNER_NAMESPACE_LABEL.into(), owner.namespace.clone());
        }
        desired.metadata.managed_fields = None;
        desired.metadata.resource_version = None;
        desired.metadata.uid = None;
        desired.metadata.creation_timestamp = None;
        let api = self.resolver.api_with(&object, &resource, &capabilities.scope);
        Ok(Prepared { object, desired, api })
    }

    /// Takes over the fields of the managers to take over (see [`fields::taken_over`]: what
    /// `kubectl apply` or Flux's kustomize-controller set becomes the engine's own, what other
    /// kubectl commands set is released) and removes kubectl's last-applied annotation, so that
    /// the forced apply that follows owns the manifest's fields alone, removes what an earlier
    /// applier set and the manifest lacks, and a later removal from the manifest really removes
    /// a field. Returns the patched object when it patched.
    async fn take_over(
        &self,
        api: &Api<DynamicObject>,
        object: &ObjectRef,
        live: &DynamicObject,
        options: &ApplyOptions,
    ) -> Result<Option<DynamicObject>, Error> {
        /// Reads and tries again this often when the object changed between read and patch.
        const ATTEMPTS: usize = 3;
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        };
        let mut live = live.clone();
        for attempt in 1..=ATTEMPTS {
            let Some((patch, managers)) = self.takeover_patch(object, &live, options) else {
                return Ok(None);
            };
            match api.patch(&object.name, &params, &patch).await {
                Ok(patched) => {
                    tracing::info!(object = %object, managers = ?managers, "took over fields");
                    return Ok(Some(patched));
                }
                // The resourceVersion test failed: another writer (a controller updating the
                // status, say) changed the object since it was read. Read it again.
                Err(kube::Error::Api(status)) if status.code == 422 && attempt < ATTEMPTS => {
                    tracing::debug!(object = %object, "object changed during the take-over; reading it again");
                    match self.get(api, object).await? {
                        Some(again) => live = again,
                        None => return Ok(None),
                    }
                }
                Err(source) => {
                    return Err(Error::Takeover {
                        object: object.clone(),
                        managers,
                        message: object_message(object, &source),
                        source,
                    });
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The JSON patch that takes over `live`'s fields (see [`Self::take_over`]) and the managers
    /// it takes them from; `None` when there is nothing to take over. It tests the resourceVersion
    /// read, so that it never writes over a concurrent change of ownership.
    fn takeover_patch(
        &self,
        object: &ObjectRef,
        live: &DynamicObject,
        options: &ApplyOptions,
    ) -> Option<(Patch<()>, Vec<String>)> {
        let entries = live.metadata.managed_fields.as_deref().unwrap_or_default();
        let filtered = fields::taken_over(
            entries,
            &options.takeover_managers,
            &self.field_manager,
            &object.api_version(),
        );
        let last_applied = annotation(live, LAST_APPLIED_ANNOTATION).is_some();
        if filtered.is_none() && !last_applied {
            return None;
        }
        let mut operations = Vec::new();
        let mut managers = Vec::new();
        if let Some(version) = &live.metadata.resource_version {
            operations.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": version}));
        }
        if let Some((kept, removed)) = filtered {
            // An empty list would mean "leave managedFields alone"; one empty entry clears them.
            let value = if kept.is_empty() {
                json!([{}])
            } else {
                serde_json::to_value(&kept).unwrap_or_else(|_| json!([{}]))
            };
            operations.push(json!({"op": "replace", "path": "/metadata/managedFields", "value": value}));
            managers = removed;
        }
        if last_applied {
            operations.push(json!({
                "op": "remove",
                "path": format!("/metadata/annotations/{}", LAST_APPLIED_ANNOTATION.replace('/', "~1")),
            }));
            managers.push("kubectl last-applied-configuration".into());
        }
        let patch = Patch::Json(
            serde_json::from_value(Value::Array(operations)).expect("a JSON patch built from valid operations"),
        );
        Some((patch, managers))
    }

    /// Deletes the object, waits until it is gone, and applies it again.
    async fn recreate(
        &self,
        api: &Api<DynamicObject>,
        object: &ObjectRef,
        desired: &DynamicObject,
        params: &PatchParams,
        options: &ApplyOptions,
    ) -> Result<DynamicObject, Error> {
        let failed = |message: String| Error::Recreate {
            object: object.clone(),
            message,
        };
        match api.delete(&object.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(failed(format!("delete: {}", object_message(object, &err)))),
        }
        let deadline = Instant::now() + options.wait_timeout;
        loop {
            match api.get_opt(&object.name).await {
                Ok(None) => break,
                Ok(Some(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(options.wait_interval).await;
                }
                Ok(Some(_)) => {
                    return Err(failed(format!(
                        "still exists {:?} after it was deleted",
                        options.wait_timeout
                    )));
                }
                Err(err) => return Err(failed(format!("get: {}", object_message(object, &err)))),
            }
        }
        api.patch(&object.name, params, &Patch::Apply(desired))
            .await
            .map_err(|err| failed(format!("apply: {}", object_message(object, &err))))
    }

    /// Waits until `objects` are healthy (see [`wait::wait`]).
    pub async fn wait(&self, objects: &[ObjectRef], options: &WaitOptions) -> Result<Vec<ObjectHealth>, WaitError> {
        wait::wait(&self.resolver, objects, options).await
    }

    /// Waits until `objects` are healthy, reading health from `observed` where it answers (see
    /// [`wait::wait_observed`]).
    pub async fn wait_observed(
        &self,
        objects: &[ObjectRef],
        options: &WaitOptions,
        observed: &(dyn Fn(&ObjectRef) -> Option<status::Health> + Sync),
        changes: Option<tokio::sync::watch::Receiver<()>>,
    ) -> Result<Vec<ObjectHealth>, WaitError> {
        wait::wait_observed(&self.resolver, objects, options, observed, changes).await
    }
}

/// Whether an apply left `before` as it was: the same resourceVersion, or, when something else
/// wrote the object meanwhile (a controller updating status or its own annotations), no
/// difference in a field that `manager` owns before or after the apply.
fn is_unchanged(before: &DynamicObject, applied: &DynamicObject, manager: &str) -> bool {
    if before.metadata.resource_version.is_some()
        && before.metadata.resource_version == applied.metadata.resource_version
    {
        return true;
    }
    let ours = |object: &DynamicObject| -> Vec<_> {
        object
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|e| {
                e.manager.as_deref() == Some(manager) && e.subresource.as_deref().unwrap_or_default().is_empty()
            })
            .cloned()
            .collect()
    };
    let (ours_before, ours_after) = (ours(before), ours(applied));
    let before = serde_json::to_value(before).unwrap_or_default();
    let applied = serde_json::to_value(applied).unwrap_or_default();
    drift::changed_paths(&applied, &before).iter().all(|path| {
        fields::owners(&before, &ours_before, path).is_empty() && fields::owners(&applied, &ours_after, path).is_empty()
    })
}

/// Identifies every manifest (all identity errors at once) and sorts them in apply order.
fn identify_and_sort(objects: Vec<DynamicObject>) -> Result<Vec<(ObjectRef, DynamicObject)>, ApplyError> {
    let mut sorted = Vec::new();
    let mut errors = Vec::new();
    for manifest in objects {
        match ObjectRef::from_object(&manifest) {
            Ok(object) => sorted.push((object, manifest)),
            Err(err) => errors.push(Error::from(err)),
        }
    }
    if !errors.is_empty() {
        return Err(ApplyError {
            change_set: ChangeSet::default(),
            errors,
        });
    }
    sorted.sort_by_key(|(object, _)| order::sort_key(object));
    Ok(sorted)
}

/// Parses rendered manifests (e.g. the kustomize engine's `ResMap::to_values`) into objects the
/// engine applies.
pub fn objects_from_values(values: Vec<Value>) -> Result<Vec<DynamicObject>, ApplyError> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for value in values {
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)")
            .to_owned();
        match serde_json::from_value::<DynamicObject>(value) {
            Ok(object) => objects.push(object),
            Err(err) => errors.push(Error::from(crate::inventory::IdentityError::Incomplete {
                object: format!("{name} ({err})"),
                missing: "a valid object shape",
            })),
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(ApplyError {
            change_set: ChangeSet::default(),
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn policies_come_from_annotations() {
        let with = |annotations: Value| {
            manifest(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "annotations": annotations}}),
            )
        };
        let plain = with(json!({}));
        assert!(!Policy::of(&plain, None).skips(true));
        let ignore = with(json!({SSA_ANNOTATION: "Ignore"}));
        assert!(Policy::of(&ignore, None).skips(false));
        assert!(
            Policy::of(&plain, Some(&ignore.metadata)).skips(true),
            "Ignore on the live object counts"
        );
        let if_not_present = with(json!({SSA_ANNOTATION: "IfNotPresent"}));
        assert!(!Policy::of(&if_not_present, None).skips(false));
        assert!(Policy::of(&if_not_present, None).skips(true));
        let disabled = with(json!({RECONCILE_ANNOTATION: "disabled"}));
        assert!(Policy::of(&plain, Some(&disabled.metadata)).skips(true));
        assert!(!Policy::of(&disabled, None).skips(false), "created when absent");
        assert!(Policy::of(&with(json!({SSA_ANNOTATION: "Merge"})), None).merge);
        assert!(Policy::of(&with(json!({FORCE_ANNOTATION: "Enabled"})), None).force);
    }

    #[test]
    fn flux_policy_annotations_count_like_eddys() {
        let flux = |name: &str, value: &str| {
            manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": "a", "annotations": {format!("kustomize.toolkit.fluxcd.io/{name}"): value},
            }}))
        };
        let plain = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}));
        assert!(Policy::of(&flux("ssa", "IfNotPresent"), None).skips(true));
        assert!(!Policy::of(&flux("ssa", "IfNotPresent"), None).skips(false));
        assert!(Policy::of(&plain, Some(&flux("ssa", "Ignore").metadata)).skips(true));
        assert!(Policy::of(&plain, Some(&flux("reconcile", "disabled").metadata)).skips(true));
        assert!(Policy::of(&flux("ssa", "merge"), None).merge);
        assert!(Policy::of(&flux("force", "enabled"), None).force);
        assert!(has_policy(&flux("prune", "disabled"), "prune", "disabled"));
        assert!(!has_policy(&flux("prune", "enabled"), "prune", "disabled"));
        let elsewhere = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "a", "annotations": {"example.com/prune": "disabled"},
        }}));
        assert!(
            !has_policy(&elsewhere, "prune", "disabled"),
            "only Eddy's and Flux's groups"
        );
    }
}
