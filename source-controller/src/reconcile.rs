//! What GitRepository and OCIRepository reconciles share: the finalizer that removes an object's
//! artifacts, the error type with its condition reasons, and the step that turns the outcome of a
//! fetch into conditions, one event, and one status write.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use eddy_api::conditions::{self, READY, Status};
use eddy_api::meta::{Artifact, RECONCILE_REQUESTED_AT};
use eddy_runtime::events::Report;
use eddy_runtime::{Context, ControllerError, Watched, write_status};
use eddy_source::artifact::{ArtifactOwner, Dropped};
use eddy_source::oci::OciError;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Sources;
use crate::credentials::CredentialsError;
use crate::git::GitError;

/// Removes the object's artifacts when it is deleted.
pub const FINALIZER: &str = "source.eddy.dev/finalizer";
/// Present while a stored artifact exists for the object.
pub const ARTIFACT_IN_STORAGE: &str = "ArtifactInStorage";
/// Present while the last fetch failed.
pub const FETCH_FAILED: &str = "FetchFailed";

/// Why fetching or storing a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The Git remote could not be read.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The OCI registry could not be read.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The Secret could not be used.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The fetch took longer than `spec.timeout`.
    #[error("fetching {url} timed out after {timeout}")]
    Timeout {
        /// The URL, without credentials.
        url: String,
        /// `spec.timeout`.
        timeout: String,
    },
    /// Unpacking, packing or storing the artifact failed.
    #[error("building the artifact: {0}")]
    Storage(String),
    /// A Kubernetes API call failed.
    #[error("{0}")]
    Kube(String),
    /// The failure of a fetch another reconcile ran on this one's behalf (see
    /// [`crate::shared_fetch`]); it reads and reports as the original.
    #[error(transparent)]
    Shared(Arc<SourceError>),
}

impl SourceError {
    /// The condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Git(err) => err.reason(),
            SourceError::Oci(err) => err.reason(),
            SourceError::Credentials(_) => "AuthenticationFailed",
            SourceError::Timeout { .. } => "FetchTimeout",
            SourceError::Storage(_) => "StorageOperationFailed",
            SourceError::Kube(_) => "ReconciliationFailed",
            SourceError::Shared(err) => err.reason(),
        }
    }
}

/// A reconcile failure with the interval to retry at; the status already says what failed.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failure {
    error: SourceError,
    retry: Duration,
}

impl ControllerError for Failure {
    fn reason(&self) -> &'static str {
        self.error.reason()
    }

    fn retry_after(&self) -> Duration {
        self.retry
    }
}

/// A new artifact a reconcile stored.
pub struct NewArtifact {
    /// What it holds, for the event: `commit 0123abcd`, `digest sha256:..`.
    pub summary: String,
    /// Links and special files left out.
    pub dropped: Vec<Dropped>,
}

/// The parts of a source's status this module maintains.
pub struct SourceStatus<'a> {
    /// `status.conditions`.
    pub conditions: &'a mut Vec<Condition>,
    /// `status.artifact`.
    pub artifact: Option<&'a Artifact>,
    /// `status.observedGeneration`.
    pub observed_generation: &'a mut Option<i64>,
    /// `status.lastHandledReconcileAt`.
    pub last_handled_reconcile_at: &'a mut Option<String>,
}

/// What the shared reconcile needs to know of a source kind.
pub trait SourceKind: Watched + Serialize {
    /// The kind's status.
    type Status: Clone + Default + PartialEq + Serialize + Send;
    /// The status as stored.
    fn current_status(&self) -> Option<&Self::Status>;
    /// `spec.interval`.
    fn interval(&self) -> Duration;
    /// `spec.suspend`.
    fn suspended(&self) -> bool;
    /// The parts of `status` that [`record_outcome`] maintains.
    fn source_status(status: &mut Self::Status) -> SourceStatus<'_>;
}

/// The reconcile of every source kind: finalizer, suspend, `fetch` (which updates the status it
/// is given and says whether it stored a new artifact), then conditions, events and one status
/// write.
pub async fn reconcile_source<K, F, Fut>(
    obj: Arc<K>,
    ctx: &Context,
    sources: &Sources,
    fetch: F,
) -> Result<Action, Failure>
where
    K: SourceKind,
    F: FnOnce(Arc<K>, K::Status) -> Fut,
    Fut: Future<Output = (K::Status, Result<Option<NewArtifact>, SourceError>)>,
{
    let retry = obj.interval();
    with_finalizer(obj, ctx, sources, retry, |obj| async move {
        if obj.suspended() {
            // Nothing is fetched, but the generation that asked for the suspend is acknowledged,
            // so that clients can tell the controller has seen it.
            let mut status = obj.current_status().cloned().unwrap_or_default();
            *K::source_status(&mut status).observed_generation = obj.meta().generation;
            finish(obj.as_ref(), ctx, obj.current_status(), &status, Ok(None), retry).await?;
            return Ok(Action::await_change());
        }
        let (mut status, outcome) = fetch(obj.clone(), obj.current_status().cloned().unwrap_or_default()).await;
        record_outcome(obj.as_ref(), ctx, K::source_status(&mut status), &outcome).await;
        finish(obj.as_ref(), ctx, obj.current_status(), &status, outcome, retry).await
    })
    .await
}

/// Where a source object's artifacts live.
pub fn owner<K: Resource<DynamicType = ()>>(obj: &K) -> ArtifactOwner {
    ArtifactOwner::new(&K::kind(&()), &obj.namespace().unwrap_or_default(), &obj.name_any())
}

/// Runs `apply` under the finalizer that removes the object's artifacts on deletion.
async fn with_finalizer<K, F, Fut>(
    obj: Arc<K>,
    ctx: &Context,
    sources: &Sources,
    retry: Duration,
    apply: F,
) -> Result<Action, Failure>
where
    K: Watched + Serialize,
    F: FnOnce(Arc<K>) -> Fut,
    Fut: Future<Output = Result<Action, Failure>>,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    finalizer::finalizer(&api, FINALIZER, obj, |event| async move {
        match event {
            Event::Apply(obj) => apply(obj).await,
            Event::Cleanup(obj) => {
                sources.store.remove_all(&owner(obj.as_ref())).map_err(|e| Failure {
                    error: SourceError::Storage(e.to_string()),
                    retry,
                })?;
                tracing::info!("removed the artifacts of a deleted source");
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|err| match err {
        finalizer::Error::ApplyFailed(failure) | finalizer::Error::CleanupFailed(failure) => failure,
        other => Failure {
            error: SourceError::Kube(other.to_string()),
            retry,
        },
    })
}

/// Records the outcome of a fetch in `status` (conditions, observedGeneration, the handled
/// reconcile request) and reports it once: an event for a new artifact, and for a failure only
/// when its message differs from the one already shown.
async fn record_outcome<K>(
    obj: &K,
    ctx: &Context,
    status: SourceStatus<'_>,
    outcome: &Result<Option<NewArtifact>, SourceError>,
) where
    K: Resource<DynamicType = ()>,
{
    let generation = obj.meta().generation;
    let now = Timestamp::now();
    *status.observed_generation = generation;
    if let Some(requested) = obj.annotations().get(RECONCILE_REQUESTED_AT) {
        *status.last_handled_reconcile_at = Some(requested.clone());
    }
    let conditions = status.conditions;
    match outcome {
        Ok(new) => {
            let revision = status.artifact.map(|a| a.revision.clone()).unwrap_or_default();
            let message = format!("stored artifact for revision '{revision}'");
            conditions::mark_ready(conditions, conditions::reason::SUCCEEDED, &message, generation, now);
            conditions::set(
                conditions,
                ARTIFACT_IN_STORAGE,
                Status::True,
                "Succeeded",
                &message,
                generation,
                now,
            );
            conditions::remove(conditions, FETCH_FAILED);
            if let Some(new) = new {
                let mut text = format!("stored artifact for {}", new.summary);
                for dropped in &new.dropped {
                    text.push_str(&format!("; left out {}: {}", dropped.path, dropped.reason));
                }
                ctx.events
                    .record(obj, Report::info("NewArtifact", text).with("revision", revision))
                    .await;
            }
        }
        Err(error) => {
            let (reason, message) = (error.reason(), error.to_string());
            let repeated =
                conditions::get(conditions, READY).is_some_and(|r| r.status == "False" && r.message == message);
            conditions::mark_failed(conditions, reason, &message, generation, now);
            conditions::set(
                conditions,
                FETCH_FAILED,
                Status::True,
                reason,
                &message,
                generation,
                now,
            );
            if !repeated {
                let mut report = Report::error(reason, &message);
                if let Some(artifact) = status.artifact {
                    report = report.with("revision", artifact.revision.clone());
                }
                ctx.events.record(obj, report).await;
            }
        }
    }
}

/// Writes `status` when it differs from the object's, then turns the outcome into the reconcile
/// result: requeue at the interval, or a failure retried at the interval.
async fn finish<K, S>(
    obj: &K,
    ctx: &Context,
    current: Option<&S>,
    status: &S,
    outcome: Result<Option<NewArtifact>, SourceError>,
    retry: Duration,
) -> Result<Action, Failure>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current != Some(status) {
        let value = serde_json::to_value(status).map_err(|e| Failure {
            error: SourceError::Kube(e.to_string()),
            retry,
        })?;
        write_status(ctx, obj, value).await.map_err(|e| Failure {
            error: SourceError::Kube(format!("writing status: {e}")),
            retry,
        })?;
    }
    match outcome {
        Ok(_) => Ok(Action::requeue(retry)),
        Err(error) => Err(Failure { error, retry }),
    }
}

/// Awaits `work` within `timeout`; on timeout `work` is dropped, `on_timeout` is called (to
/// interrupt what it started on the blocking pool) and the timeout error returned.
pub async fn within<T>(
    timeout: Duration,
    timed_out: impl FnOnce() -> SourceError,
    on_timeout: impl FnOnce(),
    work: impl Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(outcome) => outcome,
        Err(_) => {
            on_timeout();
            Err(timed_out())
        }
    }
}

/// Blocking jobs (Git, packing, copying, unpacking) that run at once; more wait for a place. A
/// job whose caller timed out keeps its place until it really ends, so a remote that never
/// answers ties up at most this many threads, whatever the number of reconciles.
pub const BLOCKING_JOBS: usize = 16;
static BLOCKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BLOCKING_JOBS);

/// Runs `work` on the blocking pool, behind the [`BLOCKING_JOBS`] bound.
pub async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    let place = BLOCKING
        .acquire()
        .await
        .expect("the blocking-jobs semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let _place = place;
        work()
    })
    .await
    .map_err(|e| SourceError::Storage(e.to_string()))?
}
