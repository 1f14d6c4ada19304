//! The sources Kustomizations read: watched once per kind, looked up from the watch's store (no
//! API request per reconcile), and mapped back to the Kustomizations that use them so that a new
//! artifact is applied at once instead of at the next interval.

use std::fmt::Debug;

use eddy_api::apply::{Kustomization, SourceKind};
use eddy_api::conditions::{self, READY};
use eddy_api::meta::Artifact;
use eddy_api::source::{GitRepository, OCIRepository};
use eddy_runtime::{Context, Watched, scoped_api};
use futures::Stream;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

/// The source stores.
pub struct Sources {
    /// GitRepositories.
    pub git: Store<GitRepository>,
    /// OCIRepositories.
    pub oci: Store<OCIRepository>,
}

/// Why a Kustomization cannot read its source (yet).
#[derive(Debug, PartialEq)]
pub enum SourceState {
    /// Ready, with this artifact.
    Ready(Artifact),
    /// Not there, not ready, or without an artifact; the message says which.
    Waiting(String),
    /// There, but its controller has not reported on it yet (no Ready condition): its first
    /// fetch is probably under way.
    Pending(String),
}

impl Sources {
    /// The artifact of `kind/namespace/name`, or why there is none.
    pub fn artifact(&self, kind: SourceKind, namespace: &str, name: &str) -> SourceState {
        let (found, label) = match kind {
            SourceKind::GitRepository => (
                self.git
                    .get(&ObjectRef::new(name).within(namespace))
                    .map(|s| s.status.clone().map(|s| (s.conditions, s.artifact))),
                "GitRepository",
            ),
            SourceKind::OCIRepository => (
                self.oci
                    .get(&ObjectRef::new(name).within(namespace))
                    .map(|s| s.status.clone().map(|s| (s.conditions, s.artifact))),
                "OCIRepository",
            ),
        };
        let subject = format!("{label}/{namespace}/{name}");
        let Some(status) = found else {
            return SourceState::Waiting(format!("source {subject} not found"));
        };
        let (conditions, artifact) = status.unwrap_or_default();
        match artifact {
            // An artifact that is there is used even while the source fails to fetch a newer
            // one: the last good revision stays applied.
            Some(artifact) => SourceState::Ready(artifact),
            _ => match conditions::get(&conditions, READY) {
                None => SourceState::Pending(format!("source {subject} is not ready: it has no artifact yet")),
                Some(ready) => {
                    let why = Some(ready.message.clone())
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| "it has no artifact yet".into());
                    SourceState::Waiting(format!("source {subject} is not ready: {why}"))
                }
            },
        }
    }
}

/// A store of kind `K` (within the runtime's namespace scope) and the stream of its changes.
pub fn watch<K>(ctx: &Context) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Watched,
{
    let api = scoped_api::<K>(ctx);
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    (store, stream)
}

/// Maps a changed source to the Kustomizations that read it.
pub fn dependents<K>(
    kustomizations: Store<Kustomization>,
    kind: &'static str,
) -> impl Fn(K) -> Vec<ObjectRef<Kustomization>> + Send + Sync + 'static
where
    K: Resource<DynamicType = ()>,
{
    move |source: K| {
        let namespace = source.namespace().unwrap_or_default();
        let name = source.name_any();
        kustomizations
            .state()
            .iter()
            .filter(|ks| {
                let r = &ks.spec.source_ref;
                source_kind_name(r.kind) == kind
                    && r.name == name
                    && r.namespace.as_deref().unwrap_or(&ks.namespace().unwrap_or_default()) == namespace
            })
            .map(|ks| ObjectRef::from_obj(ks.as_ref()))
            .collect()
    }
}

/// The Kustomizations that depend on `ks`.
pub fn dependents_of(kustomizations: &Store<Kustomization>, ks: &Kustomization) -> Vec<ObjectRef<Kustomization>> {
    let namespace = ks.namespace().unwrap_or_default();
    let name = ks.name_any();
    kustomizations
        .state()
        .iter()
        .filter(|other| {
            let own = other.namespace().unwrap_or_default();
            other
                .spec
                .depends_on
                .iter()
                .any(|d| d.name == name && d.namespace.as_deref().unwrap_or(&own) == namespace)
        })
        .map(|other| ObjectRef::from_obj(other.as_ref()))
        .collect()
}

/// The kind's name as written in `sourceRef.kind`.
pub fn source_kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::GitRepository => "GitRepository",
        SourceKind::OCIRepository => "OCIRepository",
    }
}
