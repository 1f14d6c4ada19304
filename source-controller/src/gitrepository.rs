//! The GitRepository reconciler: resolve the ref on the remote (one ls-refs call), and only when
//! the revision or the ignore rules changed, fetch it shallowly, pack it into a reproducible
//! artifact, store it, and garbage-collect old ones. A failure marks Ready=False with a reason and
//! a message that names the cause, reports once, and leaves the last good artifact served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eddy_shared::api::source::{GitRepository, GitRepositoryStatus};
use eddy_shared::artifact::{ArtifactOwner, Dropped, pack};
use eddy_shared::conditions::{self, READY, Status};
use eddy_shared::events::Report;
use eddy_shared::meta::RECONCILE_REQUESTED_AT;
use eddy_shared::runtime::{Context, ControllerError, write_status};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event};
use kube::{Api, ResourceExt};

use crate::Sources;
use crate::credentials::{self, LoadedCredentials};
use crate::git::{self, GitError, RemoteHead};

/// Removes the object's artifacts when it is deleted.
pub const FINALIZER: &str = "source.eddy.dev/finalizer";
/// Present while a stored artifact exists for the object.
pub const ARTIFACT_IN_STORAGE: &str = "ArtifactInStorage";
/// Present while the last fetch failed.
pub const FETCH_FAILED: &str = "FetchFailed";

/// Why a reconcile failed; the status already says so when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The remote could not be read.
    #[error(transparent)]
    Fetch(#[from] GitError),
    /// The Secret could not be used.
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    /// The fetch took longer than `spec.timeout`.
    #[error("fetching {url} timed out after {timeout}")]
    Timeout {
        /// The URL, without credentials.
        url: String,
        /// `spec.timeout`.
        timeout: String,
    },
    /// Packing or storing the artifact failed.
    #[error("storing the artifact: {0}")]
    Storage(String),
    /// A Kubernetes API call failed.
    #[error("{0}")]
    Kube(String),
}

/// A reconcile failure with the interval to retry at.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failure {
    error: ReconcileError,
    retry: Duration,
}

impl ReconcileError {
    /// The condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Fetch(err) => err.reason(),
            ReconcileError::Credentials(_) => "AuthenticationFailed",
            ReconcileError::Timeout { .. } => "GitOperationFailed",
            ReconcileError::Storage(_) => "StorageOperationFailed",
            ReconcileError::Kube(_) => "ReconciliationFailed",
        }
    }
}

impl ControllerError for Failure {
    fn reason(&self) -> &'static str {
        self.error.reason()
    }

    fn retry_after(&self) -> Duration {
        self.retry
    }
}

/// Reconciles one GitRepository.
pub async fn reconcile(obj: Arc<GitRepository>, ctx: Arc<Context>, sources: Arc<Sources>) -> Result<Action, Failure> {
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<GitRepository> = Api::namespaced(ctx.client.clone(), &namespace);
    let retry = interval(&obj);
    finalizer::finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Event::Apply(obj) => apply(obj, &ctx, &sources).await,
            Event::Cleanup(obj) => {
                let owner = owner(&obj);
                sources.store.remove_all(&owner).map_err(|e| Failure {
                    error: ReconcileError::Storage(e.to_string()),
                    retry,
                })?;
                tracing::info!("removed the artifacts of a deleted GitRepository");
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|err| match err {
        finalizer::Error::ApplyFailed(failure) | finalizer::Error::CleanupFailed(failure) => failure,
        other => Failure {
            error: ReconcileError::Kube(other.to_string()),
            retry,
        },
    })
}

fn interval(obj: &GitRepository) -> Duration {
    obj.spec.interval.to_std().unwrap_or(Duration::from_secs(60))
}

fn owner(obj: &GitRepository) -> ArtifactOwner {
    ArtifactOwner::new("GitRepository", &obj.namespace().unwrap_or_default(), &obj.name_any())
}

async fn apply(obj: Arc<GitRepository>, ctx: &Context, sources: &Sources) -> Result<Action, Failure> {
    let retry = interval(&obj);
    let generation = obj.metadata.generation;
    let mut status = obj.status.clone().unwrap_or_default();
    let requested = obj.annotations().get(RECONCILE_REQUESTED_AT).cloned();
    if requested.is_some() {
        status.last_handled_reconcile_at = requested;
    }
    if obj.spec.suspend {
        return Ok(Action::await_change());
    }

    let outcome = fetch_and_store(&obj, ctx, sources, &mut status).await;
    let now = Timestamp::now();
    status.observed_generation = generation;
    match &outcome {
        Ok(stored) => {
            let revision = &status.artifact.as_ref().expect("stored or kept").revision;
            let message = format!("stored artifact for revision '{revision}'");
            conditions::mark_ready(
                &mut status.conditions,
                conditions::reason::SUCCEEDED,
                &message,
                generation,
                now,
            );
            conditions::set(
                &mut status.conditions,
                ARTIFACT_IN_STORAGE,
                Status::True,
                "Succeeded",
                &message,
                generation,
                now,
            );
            conditions::remove(&mut status.conditions, FETCH_FAILED);
            if let Some(stored) = stored {
                let mut text = format!(
                    "stored artifact for commit {}",
                    &stored.commit[..12.min(stored.commit.len())]
                );
                for dropped in &stored.dropped {
                    text.push_str(&format!("; left out {}: {}", dropped.path, dropped.reason));
                }
                ctx.events
                    .record(
                        obj.as_ref(),
                        Report::info("NewArtifact", text).with("revision", revision.clone()),
                    )
                    .await;
            }
        }
        Err(error) => {
            let reason = error.reason();
            let message = error.to_string();
            let repeated =
                conditions::get(&status.conditions, READY).is_some_and(|r| r.status == "False" && r.message == message);
            conditions::mark_failed(&mut status.conditions, reason, &message, generation, now);
            conditions::set(
                &mut status.conditions,
                FETCH_FAILED,
                Status::True,
                reason,
                &message,
                generation,
                now,
            );
            if !repeated {
                let mut report = Report::error(reason, &message);
                if let Some(artifact) = &status.artifact {
                    report = report.with("revision", artifact.revision.clone());
                }
                ctx.events.record(obj.as_ref(), report).await;
            }
        }
    }

    let value = serde_json::to_value(&status).map_err(|e| Failure {
        error: ReconcileError::Kube(e.to_string()),
        retry,
    })?;
    if obj.status.as_ref() != Some(&status) {
        write_status(ctx, obj.as_ref(), value).await.map_err(|e| Failure {
            error: ReconcileError::Kube(format!("writing status: {e}")),
            retry,
        })?;
    }
    match outcome {
        Ok(_) => Ok(Action::requeue(retry)),
        Err(error) => Err(Failure { error, retry }),
    }
}

/// What a reconcile that stored a new artifact reports.
struct Stored {
    commit: String,
    dropped: Vec<Dropped>,
}

/// Resolves, and when needed fetches and stores. `Ok(None)` means the stored artifact is current.
async fn fetch_and_store(
    obj: &GitRepository,
    ctx: &Context,
    sources: &Sources,
    status: &mut GitRepositoryStatus,
) -> Result<Option<Stored>, ReconcileError> {
    let namespace = obj.namespace().unwrap_or_default();
    let loaded = match &obj.spec.secret_ref {
        Some(secret) => credentials::load(&ctx.client, &namespace, &secret.name).await?,
        None => LoadedCredentials::none(),
    };
    let loaded = Arc::new(loaded);
    let url = obj.spec.url.clone();
    let reference = obj.spec.reference.clone().unwrap_or_default();
    let timeout = obj.spec.timeout.to_std().unwrap_or(Duration::from_secs(60));
    let timeout_secs = timeout.as_secs().max(1);
    let timed_out = || ReconcileError::Timeout {
        url: git::redact_url(&url),
        timeout: obj.spec.timeout.to_string(),
    };

    let head: RemoteHead = {
        let (url, loaded) = (url.clone(), loaded.clone());
        let resolve =
            tokio::task::spawn_blocking(move || git::resolve(&url, &reference, &loaded.credentials, timeout_secs));
        tokio::time::timeout(timeout, resolve)
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| ReconcileError::Storage(e.to_string()))??
    };

    let unchanged = status
        .artifact
        .as_ref()
        .is_some_and(|a| a.revision == head.revision && sources.store.contains(a))
        && status.observed_ignore == obj.spec.ignore;
    if unchanged {
        tracing::debug!(revision = %head.revision, "remote unchanged; nothing fetched");
        return Ok(None);
    }

    let interrupt = Arc::new(AtomicBool::new(false));
    let work = tempfile::tempdir().map_err(|e| ReconcileError::Storage(e.to_string()))?;
    let checkout = {
        let (url, loaded, head, interrupt) = (url.clone(), loaded.clone(), head.clone(), interrupt.clone());
        let dir = work.path().join("tree");
        tokio::task::spawn_blocking(move || {
            git::checkout(&url, &head, &loaded.credentials, timeout_secs, &dir, &interrupt)
        })
    };
    let commit = match tokio::time::timeout(timeout, checkout).await {
        Ok(joined) => joined.map_err(|e| ReconcileError::Storage(e.to_string()))??,
        Err(_) => {
            interrupt.store(true, Ordering::Relaxed);
            return Err(timed_out());
        }
    };
    // The ref may have moved between ls-refs and the fetch; the artifact names what it holds.
    let revision = head.revision.replace(&head.commit, &commit);

    let owner = owner(obj);
    let store = sources.store.clone();
    let ignore = obj.spec.ignore.clone();
    let tree = work.path().join("tree");
    let (artifact, packed) = tokio::task::spawn_blocking(move || {
        store.put(&owner, &revision, |writer| pack(&tree, ignore.as_deref(), writer))
    })
    .await
    .map_err(|e| ReconcileError::Storage(e.to_string()))?
    .map_err(|e| ReconcileError::Storage(e.to_string()))?;
    tracing::info!(revision = %artifact.revision, digest = %artifact.digest, files = packed.files, "stored artifact");

    let removed = sources
        .store
        .collect_garbage(&self::owner(obj), sources.retention, &artifact.path)
        .map_err(|e| ReconcileError::Storage(format!("garbage collection: {e}")))?;
    if !removed.is_empty() {
        tracing::debug!(removed = ?removed, "garbage-collected old artifacts");
    }
    status.artifact = Some(artifact);
    status.observed_ignore = obj.spec.ignore.clone();
    Ok(Some(Stored {
        commit,
        dropped: packed.dropped,
    }))
}
