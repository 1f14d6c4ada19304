//! The live cache: one watch per applied kind, across namespaces, of the objects that carry the
//! owner label, each kept as a small [`LiveEntry`] (resourceVersion, the [`Fingerprint`] of the
//! fields the apply manager owns, kstatus health). apply-controller reads it to tell, without a
//! request per object, whether an object is still as its last apply left it, and subscribes to
//! [`Changed`] notices so that drift is found when it happens rather than at the next interval.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, DefaultBackoff, Event};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, Owner, fields};
use crate::inventory::ObjectRef;
use crate::status::{self, Health};

/// A hash of the fields a manager owns on an object ([`fields::owned_fields`]): unchanged by
/// writes of other managers (status, controllers' annotations), different once an owned value
/// changes or a field moves to another manager. In memory only: not stable across builds.
pub type Fingerprint = u64;

/// The fingerprint of the fields `manager` owns on `object` through server-side apply, e.g. of
/// the object an apply returned, to compare with [`LiveEntry::fingerprint`] later.
pub fn fingerprint(object: &DynamicObject, manager: &str) -> Fingerprint {
    summarize_applied(object, manager).0
}

/// The fingerprint of the fields `manager` owns on `object` and the object's health, from one
/// serialization: what an apply response says of the object it left.
pub fn summarize_applied(object: &DynamicObject, manager: &str) -> (Fingerprint, Health) {
    let entries = object.metadata.managed_fields.as_deref().unwrap_or_default();
    let live = serde_json::to_value(object).unwrap_or_default();
    (fingerprint_of(&live, entries, manager), status::assess(&live))
}

fn fingerprint_of(live: &Value, entries: &[ManagedFieldsEntry], manager: &str) -> Fingerprint {
    // `Value`'s Hash visits object keys in sorted order whatever serde_json's features, so equal
    // projections hash equally.
    let mut hasher = DefaultHasher::new();
    fields::owned_fields(live, entries, manager).hash(&mut hasher);
    hasher.finish()
}

/// What the cache knows of one live object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveEntry {
    /// The object's resourceVersion.
    pub resource_version: String,
    /// The fingerprint of the fields the cache's field manager owns.
    pub fingerprint: Fingerprint,
    /// Its kstatus health ([`status::assess`]).
    pub health: Health,
    /// The Kustomization its labels named when it was last seen with them.
    pub owner: Option<Owner>,
}

/// The answer of [`LiveCache::lookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The kind is not watched (at this version), its first list has not completed, or its
    /// watch is failing: ask the API server.
    Unknown,
    /// No such object carries the owner label: it does not exist, or the label was removed.
    Absent,
    /// The object as last seen.
    Present(LiveEntry),
}

/// An applied object whose owned fields changed, or that was deleted, after its kind's first
/// list: what a subscriber ([`LiveCache::subscribe`]) hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    /// The object.
    pub object: ObjectRef,
    /// The Kustomization its labels name.
    pub owner: Owner,
    /// Its new fingerprint; `None` when it was deleted.
    pub fingerprint: Option<Fingerprint>,
}

/// How many notices may wait for the subscriber; beyond, notices are dropped (the interval
/// reconcile still finds the drift).
const CHANGED_CAPACITY: usize = 4096;

/// Where a kind's watch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// The first list has not completed yet.
    Listing,
    /// Listed; events keep the entries current.
    Synced,
    /// The watch failed; it is restarted with a full list after a backoff, and the kind is
    /// Synced again when that list completes.
    Failed,
}

/// Entries by namespace (empty for cluster-scoped kinds), then name.
#[derive(Default)]
struct Objects(HashMap<String, HashMap<String, LiveEntry>>);

impl Objects {
    fn get(&self, namespace: &str, name: &str) -> Option<&LiveEntry> {
        self.0.get(namespace)?.get(name)
    }

    fn insert(&mut self, (namespace, name): (String, String), entry: LiveEntry) {
        self.0.entry(namespace).or_default().insert(name, entry);
    }

    fn remove(&mut self, (namespace, name): (String, String)) {
        if let Some(names) = self.0.get_mut(&namespace) {
            names.remove(&name);
            if names.is_empty() {
                self.0.remove(&namespace);
            }
        }
    }

    fn len(&self) -> usize {
        self.0.values().map(HashMap::len).sum()
    }
}

/// One watched kind.
struct Kind {
    namespaced: bool,
    phase: Phase,
    /// Whether the current failure was logged; reset once the kind syncs again.
    warned: bool,
    objects: Objects,
    /// The objects of a list in progress; they replace `objects` when it completes.
    relist: Option<Objects>,
}

/// What the cache and its watch tasks share.
struct Shared {
    kinds: RwLock<HashMap<GroupVersionKind, Kind>>,
    /// Signalled whenever a kind's phase changes.
    phases: watch::Sender<()>,
    /// Signalled whenever an entry changes (and with every phase change).
    changes: watch::Sender<()>,
    /// The subscriber to [`Changed`] notices, if any.
    subscriber: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<Changed>>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            kinds: RwLock::new(HashMap::new()),
            phases: watch::Sender::new(()),
            changes: watch::Sender::new(()),
            subscriber: std::sync::Mutex::new(None),
        }
    }

    /// Tells the subscriber, without waiting: a full queue drops the notice.
    fn notify(&self, changed: Changed) {
        let subscriber = self.subscriber.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = subscriber.as_ref()
            && sender.try_send(changed).is_err()
        {
            tracing::debug!("live cache change notice dropped: the subscriber is behind");
        }
    }

    /// Adds a kind to list; false when it is there already.
    fn add_kind(&self, gvk: &GroupVersionKind, namespaced: bool) -> bool {
        let mut kinds = self.write();
        if kinds.contains_key(gvk) {
            return false;
        }
        let kind = Kind {
            namespaced,
            phase: Phase::Listing,
            warned: false,
            objects: Objects::default(),
            relist: None,
        };
        kinds.insert(gvk.clone(), kind);
        true
    }

    fn phase(&self, gvk: &GroupVersionKind) -> Option<Phase> {
        self.read().get(gvk).map(|k| k.phase)
    }

    fn lookup(&self, object: &ObjectRef) -> Lookup {
        let kinds = self.read();
        let Some(kind) = kinds.get(&object.gvk()).filter(|k| k.phase == Phase::Synced) else {
            return Lookup::Unknown;
        };
        let namespace = if kind.namespaced { object.namespace.as_str() } else { "" };
        match kind.objects.get(namespace, &object.name) {
            Some(entry) => Lookup::Present(entry.clone()),
            None => Lookup::Absent,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<GroupVersionKind, Kind>> {
        // A panic while holding the lock leaves entries that are still valid data.
        self.kinds.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<GroupVersionKind, Kind>> {
        self.kinds.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a watch event; true when it completed a list.
    fn record(&self, gvk: &GroupVersionKind, event: Event<DynamicObject>, manager: &str) -> bool {
        // The object is summarized before taking the lock: lookups never wait for a projection.
        let (change, owner) = match event {
            Event::Init => (Change::ListStarted, None),
            Event::InitApply(object) | Event::Apply(object) => {
                let (key, entry) = summarize(object, manager);
                let owner = entry.owner.clone();
                (Change::Put(key, entry), owner)
            }
            Event::Delete(object) => (Change::Remove(key_of(&object)), owner_of(&object)),
            Event::InitDone => (Change::ListDone, None),
        };
        let mut kinds = self.write();
        let Some(kind) = kinds.get_mut(gvk) else {
            return false;
        };
        let notice = |owner: Option<Owner>, (namespace, name): &(String, String), fingerprint| {
            owner.map(|owner| Changed {
                object: ObjectRef {
                    group: gvk.group.clone(),
                    version: gvk.version.clone(),
                    kind: gvk.kind.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                },
                owner,
                fingerprint,
            })
        };
        match change {
            Change::ListStarted => kind.relist = Some(Objects::default()),
            Change::Put(key, entry) => match &mut kind.relist {
                Some(relist) => relist.insert(key, entry),
                None => {
                    let before = kind.objects.get(&key.0, &key.1).map(|e| e.fingerprint);
                    let changed = (before != Some(entry.fingerprint))
                        .then(|| notice(owner.clone(), &key, Some(entry.fingerprint)))
                        .flatten();
                    kind.objects.insert(key, entry);
                    drop(kinds);
                    self.changes.send_replace(());
                    if let Some(changed) = changed {
                        self.notify(changed);
                    }
                }
            },
            Change::Remove(key) => {
                // A watch filtered by label reports an object whose owner labels were removed
                // as deleted, with its new labels: the owner is the one it had.
                let last = kind.objects.get(&key.0, &key.1).and_then(|e| e.owner.clone());
                let changed = notice(last.or(owner.clone()), &key, None);
                kind.objects.remove(key);
                drop(kinds);
                self.changes.send_replace(());
                if let Some(changed) = changed {
                    self.notify(changed);
                }
            }
            Change::ListDone => {
                // Objects not listed again were deleted meanwhile: the new list replaces the old.
                if let Some(relist) = kind.relist.take() {
                    kind.objects = relist;
                }
                kind.phase = Phase::Synced;
                kind.warned = false;
                tracing::debug!(kind = %kind_name(gvk), objects = kind.objects.len(), "live cache synced");
                drop(kinds);
                self.phases.send_replace(());
                self.changes.send_replace(());
                return true;
            }
        }
        false
    }

    /// Marks a kind failed, logging the first failure since it last synced.
    fn fail(&self, gvk: &GroupVersionKind, error: &dyn fmt::Display) {
        let mut kinds = self.write();
        let Some(kind) = kinds.get_mut(gvk) else {
            return;
        };
        kind.phase = Phase::Failed;
        kind.relist = None;
        if kind.warned {
            tracing::debug!(kind = %kind_name(gvk), error = %error, "watch of applied objects failed again");
        } else {
            kind.warned = true;
            tracing::warn!(
                kind = %kind_name(gvk),
                error = %error,
                "watch of applied objects failed; objects of this kind are read from the API until it recovers"
            );
        }
        drop(kinds);
        self.phases.send_replace(());
        self.changes.send_replace(());
    }
}

/// What a watch event does to a kind's entries.
enum Change {
    ListStarted,
    Put((String, String), LiveEntry),
    Remove((String, String)),
    ListDone,
}

/// The namespace and name of a watched object.
fn key_of(object: &DynamicObject) -> (String, String) {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

/// The Kustomization a watched object's labels name.
fn owner_of(object: &DynamicObject) -> Option<Owner> {
    let labels = object.metadata.labels.as_ref()?;
    Some(Owner::new(
        labels.get(OWNER_NAME_LABEL)?,
        labels.get(OWNER_NAMESPACE_LABEL)?,
    ))
}

/// The entry of a watched object; the object itself is dropped.
fn summarize(mut object: DynamicObject, manager: &str) -> ((String, String), LiveEntry) {
    let key = key_of(&object);
    let resource_version = object.metadata.resource_version.clone().unwrap_or_default();
    // managedFields are read as the ownership tree, not projected: left out of the value.
    let entries = object.metadata.managed_fields.take().unwrap_or_default();
    let live = serde_json::to_value(&object).unwrap_or_default();
    let entry = LiveEntry {
        resource_version,
        fingerprint: fingerprint_of(&live, &entries, manager),
        health: status::assess(&live),
        owner: owner_of(&object),
    };
    (key, entry)
}

fn kind_name(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        format!("{}/{}", gvk.version, gvk.kind)
    } else {
        format!("{}/{}/{}", gvk.group, gvk.version, gvk.kind)
    }
}

/// A watch-backed cache of the objects apply-controller applied (those labelled
/// `apply.eddy.dev/name`), per kind and version, holding per object only a [`LiveEntry`]. Watches
/// start on request ([`LiveCache::watch_kind`]) and stop when the cache is dropped or shut down.
/// Needs a Tokio runtime.
pub struct LiveCache {
    client: kube::Client,
    field_manager: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl LiveCache {
    /// An empty cache whose fingerprints are of the fields `field_manager` owns.
    pub fn new(client: kube::Client, field_manager: &str) -> Arc<Self> {
        Arc::new(Self {
            client,
            field_manager: field_manager.to_owned(),
            shared: Arc::new(Shared::new()),
            cancel: CancellationToken::new(),
        })
    }

    /// Starts watching `resource` in every namespace, unless it is watched already (or the cache
    /// was shut down). Its lookups are [`Lookup::Unknown`] until the first list completes (see
    /// [`LiveCache::wait_synced`]). A failing watch (e.g. RBAC forbids listing the kind) is
    /// logged once, leaves the kind Unknown and is retried with kube's default backoff, starting
    /// again from a full list.
    pub fn watch_kind(&self, resource: &ApiResource, namespaced: bool) {
        if self.cancel.is_cancelled() {
            return;
        }
        let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
        if !self.shared.add_kind(&gvk, namespaced) {
            return;
        }
        let api = Api::all_with(self.client.clone(), resource);
        tokio::spawn(watch_kind(
            self.shared.clone(),
            api,
            gvk,
            self.field_manager.clone(),
            self.cancel.clone(),
        ));
    }

    /// What the cache knows of `object`, matched by group, version, kind, namespace (ignored for
    /// cluster-scoped kinds) and name.
    pub fn lookup(&self, object: &ObjectRef) -> Lookup {
        self.shared.lookup(object)
    }

    /// The health of an object that an apply left with `fingerprint`, as the cache last saw it:
    /// `None` when the cache cannot answer ([`Lookup::Unknown`]), InProgress while the watch
    /// has not yet delivered the object as that apply left it (absent, or an older version).
    pub fn health_since(&self, object: &ObjectRef, fingerprint: Fingerprint) -> Option<Health> {
        match self.lookup(object) {
            Lookup::Unknown => None,
            Lookup::Present(entry) if entry.fingerprint == fingerprint => Some(entry.health),
            Lookup::Present(_) | Lookup::Absent => Some(Health::in_progress("applied; not yet seen by the watch")),
        }
    }

    /// Notices of applied objects whose owned fields changed or that were deleted, from now on
    /// (not for what a first list or a relist finds). One subscriber: a second call replaces the
    /// first. The queue is bounded; a subscriber that falls behind loses notices, not memory.
    pub fn subscribe(&self) -> tokio::sync::mpsc::Receiver<Changed> {
        let (sender, receiver) = tokio::sync::mpsc::channel(CHANGED_CAPACITY);
        *self.shared.subscriber.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        receiver
    }

    /// A receiver that is marked changed whenever an entry or a phase changes, for waiting on
    /// the cache instead of polling it.
    pub fn changes(&self) -> watch::Receiver<()> {
        self.shared.changes.subscribe()
    }

    /// Whether lookups of `gvk` are answered from the cache now.
    pub fn synced(&self, gvk: &GroupVersionKind) -> bool {
        self.shared.phase(gvk) == Some(Phase::Synced)
    }

    /// Waits until `gvk` is synced, up to `timeout`. False at the timeout, at once when the kind
    /// is not watched, and as soon as its watch fails.
    pub async fn wait_synced(&self, gvk: &GroupVersionKind, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        // Subscribed before reading the phase, so that a change in between is not missed.
        let mut phases = self.shared.phases.subscribe();
        loop {
            match self.shared.phase(gvk) {
                Some(Phase::Synced) => return true,
                Some(Phase::Listing) => {}
                Some(Phase::Failed) | None => return false,
            }
            if !matches!(tokio::time::timeout_at(deadline, phases.changed()).await, Ok(Ok(()))) {
                return self.synced(gvk);
            }
        }
    }

    /// Stops every watch and forgets every kind: lookups are Unknown from now on.
    pub fn shutdown(&self) {
        self.cancel.cancel();
        self.shared.write().clear();
        self.shared.phases.send_replace(());
        self.shared.changes.send_replace(());
    }
}

/// The field manager and, per watched kind, its phase and number of objects.
impl fmt::Debug for LiveCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds = self.shared.read();
        let mut watched: Vec<(String, Phase, usize)> = kinds
            .iter()
            .map(|(gvk, kind)| (kind_name(gvk), kind.phase, kind.objects.len()))
            .collect();
        watched.sort();
        f.debug_struct("LiveCache")
            .field("field_manager", &self.field_manager)
            .field("kinds", &watched)
            .finish_non_exhaustive()
    }
}

impl Drop for LiveCache {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The watch task of one kind: events into the shared entries until cancelled; after a failure,
/// a backoff and a new watcher, which lists everything again.
async fn watch_kind(
    shared: Arc<Shared>,
    api: Api<DynamicObject>,
    gvk: GroupVersionKind,
    manager: String,
    cancel: CancellationToken,
) {
    let config = watcher::Config::default().labels(OWNER_NAME_LABEL);
    let mut backoff = DefaultBackoff::default();
    loop {
        let mut events = watcher::watcher(api.clone(), config.clone()).boxed();
        // kube's watcher would resume after an error without listing again, and so without a
        // sign that the kind is current again: it is replaced instead.
        let failure = loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return,
                next = events.next() => next,
            };
            match next {
                Some(Ok(event)) => {
                    if shared.record(&gvk, event, &manager) {
                        backoff.reset();
                    }
                }
                Some(Err(err)) => break err.to_string(),
                None => break "the watch ended".to_owned(),
            }
        };
        shared.fail(&gvk, &failure);
        let delay = backoff.next().unwrap_or(Duration::from_secs(30));
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MANAGER: &str = "eddy-apply";

    /// A Deployment as the API server returns it: eddy-apply owns the label, replicas and the
    /// `web` container's image; the controller manager owns an annotation and the status.
    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "resourceVersion": "41",
                "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "managedFields": [
                    {
                        "manager": MANAGER, "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                        "fieldsV1": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                                "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}},
                            }}}},
                        },
                    },
                    {
                        "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}},
                    },
                    {
                        "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
                        "subresource": "status", "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:status": {"f:replicas": {}}},
                    },
                ],
            },
            "spec": {
                "replicas": 3,
                "template": {"spec": {"containers": [
                    {"name": "sidecar", "image": "envoy"},
                    {"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent"},
                ]}},
            },
            "status": {"replicas": 3},
        })
    }

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    fn print(value: Value) -> Fingerprint {
        fingerprint(&object(value), MANAGER)
    }

    fn edited(change: impl FnOnce(&mut Value)) -> Fingerprint {
        let mut value = deployment();
        change(&mut value);
        print(value)
    }

    #[test]
    fn the_same_object_has_the_same_fingerprint() {
        assert_eq!(print(deployment()), print(deployment()));
        let reordered = r#"{
            "status": {"replicas": 3},
            "spec": {"template": {"spec": {"containers": [
                {"image": "envoy", "name": "sidecar"},
                {"imagePullPolicy": "IfNotPresent", "image": "nginx:1.27", "name": "web"}
            ]}}, "replicas": 3},
            "metadata": {
                "managedFields": [
                    {"fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"web\"}": {"f:image": {}, "f:name": {}, ".": {}}}}}, "f:replicas": {}},
                        "f:metadata": {"f:labels": {"f:app": {}}}},
                     "fieldsType": "FieldsV1", "apiVersion": "apps/v1", "operation": "Apply", "manager": "eddy-apply"}
                ],
                "labels": {"app": "web"}, "resourceVersion": "41", "namespace": "shop", "name": "web"
            },
            "kind": "Deployment", "apiVersion": "apps/v1"
        }"#;
        let reordered: DynamicObject = serde_json::from_str(reordered).unwrap();
        assert_eq!(fingerprint(&reordered, MANAGER), print(deployment()));
    }

    #[test]
    fn a_changed_owned_value_changes_the_fingerprint() {
        let original = print(deployment());
        assert_ne!(edited(|d| d["spec"]["replicas"] = json!(5)), original);
        assert_ne!(
            edited(|d| d["spec"]["template"]["spec"]["containers"][1]["image"] = json!("nginx:edited")),
            original
        );
        assert_ne!(edited(|d| d["metadata"]["labels"]["app"] = json!("other")), original);
        assert_ne!(
            edited(|d| {
                d["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .unwrap()
                    .remove(1);
            }),
            original,
            "an owned list item removed"
        );
    }

    #[test]
    fn other_managers_fields_leave_the_fingerprint_alone() {
        let original = print(deployment());
        assert_eq!(edited(|d| d["status"]["replicas"] = json!(1)), original, "status");
        assert_eq!(
            edited(|d| d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("2")),
            original,
            "the controller manager's annotation"
        );
        assert_eq!(edited(|d| d["metadata"]["resourceVersion"] = json!("42")), original);
        assert_eq!(
            edited(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("envoy:2")),
            original,
            "a list item eddy-apply does not own"
        );
        assert_eq!(
            edited(|d| d["spec"]["template"]["spec"]["containers"][1]["imagePullPolicy"] = json!("Always")),
            original,
            "an unowned field of an owned list item"
        );
        assert_eq!(
            edited(|d| d["metadata"]["labels"]["team"] = json!("shop")),
            original,
            "a field added by someone else"
        );
    }

    #[test]
    fn a_field_taken_by_kubectl_edit_changes_the_fingerprint() {
        let moved = |replicas: i64| {
            edited(|d| {
                d["spec"]["replicas"] = json!(replicas);
                let fields = &mut d["metadata"]["managedFields"];
                fields[0]["fieldsV1"]["f:spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("f:replicas");
                fields.as_array_mut().unwrap().push(json!({
                    "manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
                }));
            })
        };
        let original = print(deployment());
        assert_ne!(moved(5), original);
        assert_ne!(
            moved(3),
            original,
            "edited and set back: the value is no longer eddy-apply's"
        );
    }

    #[test]
    fn only_apply_entries_of_the_main_resource_count() {
        let mut value = deployment();
        value["metadata"]["managedFields"][0]["operation"] = json!("Update");
        let live = object(value);
        let entries = live.metadata.managed_fields.as_deref().unwrap();
        let projection = fields::owned_fields(&serde_json::to_value(&live).unwrap(), entries, MANAGER);
        assert_eq!(projection, Value::Null);
        assert_eq!(
            fields::owned_fields(&deployment(), entries, "kube-controller-manager"),
            Value::Null
        );
    }

    fn gvk() -> GroupVersionKind {
        GroupVersionKind::gvk("apps", "v1", "Deployment")
    }

    fn web() -> ObjectRef {
        ObjectRef::new("apps/v1", "Deployment", "shop", "web")
    }

    fn named(name: &str, resource_version: &str) -> DynamicObject {
        let mut value = deployment();
        value["metadata"]["name"] = json!(name);
        value["metadata"]["resourceVersion"] = json!(resource_version);
        object(value)
    }

    fn resource_version(shared: &Shared, name: &str) -> Option<String> {
        match shared.lookup(&ObjectRef::new("apps/v1", "Deployment", "shop", name)) {
            Lookup::Present(entry) => Some(entry.resource_version),
            Lookup::Absent => None,
            Lookup::Unknown => panic!("{name}: the kind is not synced"),
        }
    }

    #[test]
    fn a_kind_is_unknown_until_its_first_list_completes() {
        let shared = Shared::new();
        assert_eq!(shared.lookup(&web()), Lookup::Unknown, "not watched");
        assert!(shared.add_kind(&gvk(), true));
        assert!(!shared.add_kind(&gvk(), true), "watched once");
        shared.record(&gvk(), Event::Init, MANAGER);
        shared.record(&gvk(), Event::InitApply(named("web", "1")), MANAGER);
        assert_eq!(shared.lookup(&web()), Lookup::Unknown, "listing");
        assert!(shared.record(&gvk(), Event::InitDone, MANAGER));
        let Lookup::Present(entry) = shared.lookup(&web()) else {
            panic!("web is listed");
        };
        assert_eq!(entry.fingerprint, print(deployment()));
        assert_eq!(entry.resource_version, "1");
        assert_eq!(entry.health.state, status::State::InProgress, "{:?}", entry.health);
        assert_eq!(
            shared.lookup(&ObjectRef::new("apps/v1beta1", "Deployment", "shop", "web")),
            Lookup::Unknown,
            "another version is another watch"
        );
    }

    #[test]
    fn a_relist_replaces_the_entries_when_it_completes() {
        let shared = Shared::new();
        shared.add_kind(&gvk(), true);
        for event in [
            Event::Init,
            Event::InitApply(named("web", "1")),
            Event::InitApply(named("api", "2")),
            Event::InitDone,
            Event::Apply(named("worker", "3")),
            Event::Apply(named("web", "4")),
        ] {
            shared.record(&gvk(), event, MANAGER);
        }
        assert_eq!(resource_version(&shared, "web").as_deref(), Some("4"));
        assert_eq!(resource_version(&shared, "worker").as_deref(), Some("3"));
        shared.record(&gvk(), Event::Delete(named("worker", "5")), MANAGER);
        assert_eq!(resource_version(&shared, "worker"), None);

        shared.record(&gvk(), Event::Init, MANAGER);
        shared.record(&gvk(), Event::InitApply(named("web", "6")), MANAGER);
        assert_eq!(
            resource_version(&shared, "api").as_deref(),
            Some("2"),
            "the previous list answers until the new one is complete"
        );
        shared.record(&gvk(), Event::InitDone, MANAGER);
        assert_eq!(resource_version(&shared, "web").as_deref(), Some("6"));
        assert_eq!(
            resource_version(&shared, "api"),
            None,
            "deleted while the watch was down"
        );
    }

    #[test]
    fn a_failed_watch_makes_its_kind_unknown_until_it_lists_again() {
        let shared = Shared::new();
        shared.add_kind(&gvk(), true);
        shared.record(&gvk(), Event::Init, MANAGER);
        shared.record(&gvk(), Event::InitDone, MANAGER);
        assert_eq!(shared.lookup(&web()), Lookup::Absent);
        shared.fail(&gvk(), &"forbidden");
        assert_eq!(shared.lookup(&web()), Lookup::Unknown);
        assert_eq!(shared.phase(&gvk()), Some(Phase::Failed));
        shared.record(&gvk(), Event::Init, MANAGER);
        shared.record(&gvk(), Event::InitDone, MANAGER);
        assert_eq!(shared.lookup(&web()), Lookup::Absent);
    }

    fn labelled(name: &str, resource_version: &str, replicas: i64) -> DynamicObject {
        let mut value = deployment();
        value["metadata"]["name"] = json!(name);
        value["metadata"]["resourceVersion"] = json!(resource_version);
        value["metadata"]["labels"][OWNER_NAME_LABEL] = json!("apps");
        value["metadata"]["labels"][OWNER_NAMESPACE_LABEL] = json!("flux-system");
        value["spec"]["replicas"] = json!(replicas);
        object(value)
    }

    #[test]
    fn subscribers_hear_of_changed_owned_fields_and_deletions_only() {
        let shared = Shared::new();
        let (sender, mut notices) = tokio::sync::mpsc::channel(16);
        *shared.subscriber.lock().unwrap() = Some(sender);
        shared.add_kind(&gvk(), true);
        for event in [Event::Init, Event::InitApply(labelled("web", "1", 3)), Event::InitDone] {
            shared.record(&gvk(), event, MANAGER);
        }
        assert!(notices.try_recv().is_err(), "a list is not a change");

        let mut status_only = labelled("web", "2", 3);
        status_only.data["status"] = json!({"replicas": 1});
        shared.record(&gvk(), Event::Apply(status_only), MANAGER);
        assert!(notices.try_recv().is_err(), "another manager's field");

        shared.record(&gvk(), Event::Apply(labelled("web", "3", 5)), MANAGER);
        let changed = notices.try_recv().expect("an owned field changed");
        assert_eq!(changed.object, web());
        assert_eq!(changed.owner, Owner::new("apps", "flux-system"));
        assert_eq!(
            changed.fingerprint,
            Some(fingerprint(&labelled("web", "3", 5), MANAGER))
        );

        // Removing the owner labels takes the object out of the labelled watch: it is reported
        // as deleted, with its new labels, and its owner hears of it.
        shared.record(&gvk(), Event::Delete(named("web", "4")), MANAGER);
        let deleted = notices.try_recv().expect("a deletion");
        assert_eq!((deleted.object, deleted.fingerprint), (web(), None));
        assert_eq!(deleted.owner, Owner::new("apps", "flux-system"));

        shared.record(&gvk(), Event::Apply(named("unlabelled", "5")), MANAGER);
        assert!(
            notices.try_recv().is_err(),
            "an object without owner labels names no one"
        );
    }

    #[test]
    fn cluster_scoped_lookups_ignore_the_namespace() {
        let shared = Shared::new();
        let namespaces = GroupVersionKind::gvk("", "v1", "Namespace");
        shared.add_kind(&namespaces, false);
        let shop = object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
        for event in [Event::Init, Event::InitApply(shop), Event::InitDone] {
            shared.record(&namespaces, event, MANAGER);
        }
        let written_with_namespace = ObjectRef::new("v1", "Namespace", "default", "shop");
        assert!(matches!(shared.lookup(&written_with_namespace), Lookup::Present(_)));
    }
}
