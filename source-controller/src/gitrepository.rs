//! The GitRepository reconciler: resolve the ref on the remote (one ls-refs call), and only when
//! the revision or the ignore rules changed, fetch it shallowly, pack it into a reproducible
//! artifact, store it, and garbage-collect old ones. A failure marks Ready=False with a reason and
//! a message that names the cause, reports once, and leaves the last good artifact served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eddy_shared::api::source::{GitRepository, GitRepositoryStatus};
use eddy_shared::artifact::pack;
use eddy_shared::runtime::Context;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::Sources;
use crate::credentials::{self, LoadedCredentials};
use crate::git;
use crate::reconcile::{self, Failure, NewArtifact, SourceError, SourceKind, SourceStatus, blocking_within};

impl SourceKind for GitRepository {
    type Status = GitRepositoryStatus;

    fn current_status(&self) -> Option<&GitRepositoryStatus> {
        self.status.as_ref()
    }

    fn interval(&self) -> Duration {
        self.spec.interval.to_std().unwrap_or(Duration::from_secs(60))
    }

    fn suspended(&self) -> bool {
        self.spec.suspend
    }

    fn source_status(status: &mut GitRepositoryStatus) -> SourceStatus<'_> {
        SourceStatus {
            conditions: &mut status.conditions,
            artifact: status.artifact.as_ref(),
            observed_generation: &mut status.observed_generation,
            last_handled_reconcile_at: &mut status.last_handled_reconcile_at,
        }
    }
}

/// Reconciles one GitRepository.
pub async fn reconcile(obj: Arc<GitRepository>, ctx: Arc<Context>, sources: Arc<Sources>) -> Result<Action, Failure> {
    let (ctx, sources) = (ctx.as_ref(), sources.as_ref());
    reconcile::reconcile_source(obj, ctx, sources, |obj, mut status| async move {
        let outcome = fetch_and_store(&obj, ctx, sources, &mut status).await;
        (status, outcome)
    })
    .await
}

/// Resolves, and when needed fetches and stores. `Ok(None)` means the stored artifact is current.
async fn fetch_and_store(
    obj: &GitRepository,
    ctx: &Context,
    sources: &Sources,
    status: &mut GitRepositoryStatus,
) -> Result<Option<NewArtifact>, SourceError> {
    let loaded = Arc::new(match &obj.spec.secret_ref {
        Some(secret) => credentials::load(&ctx.client, &obj.namespace().unwrap_or_default(), &secret.name).await?,
        None => LoadedCredentials::none(),
    });
    let url = obj.spec.url.clone();
    let timeout = obj.spec.timeout.to_std().unwrap_or(Duration::from_secs(60));
    let timeout_secs = timeout.as_secs().max(1);
    let timed_out = || SourceError::Timeout {
        url: git::redact_url(&obj.spec.url),
        timeout: obj.spec.timeout.to_string(),
    };

    let head = {
        let (url, loaded) = (url.clone(), loaded.clone());
        let reference = obj.spec.reference.clone().unwrap_or_default();
        blocking_within(
            timeout,
            timed_out,
            || {},
            move || Ok(git::resolve(&url, &reference, &loaded.credentials, timeout_secs)?),
        )
        .await?
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

    let work = tempfile::tempdir().map_err(|e| SourceError::Storage(e.to_string()))?;
    let tree = work.path().join("tree");
    let interrupt = Arc::new(AtomicBool::new(false));
    let commit = {
        let (head, tree, interrupt_flag) = (head.clone(), tree.clone(), interrupt.clone());
        blocking_within(
            timeout,
            timed_out,
            || interrupt.store(true, Ordering::Relaxed),
            move || {
                Ok(git::checkout(
                    &url,
                    &head,
                    &loaded.credentials,
                    timeout_secs,
                    &tree,
                    &interrupt_flag,
                )?)
            },
        )
        .await?
    };
    // The ref may have moved between ls-refs and the fetch; the artifact names what it holds.
    let revision = head.revision.replace(&head.commit, &commit);

    let owner = reconcile::owner(obj);
    let store = sources.store.clone();
    let ignore = obj.spec.ignore.clone();
    let (artifact, packed) =
        tokio::task::spawn_blocking(move || store.put(&owner, &revision, |w| pack(&tree, ignore.as_deref(), w)))
            .await
            .map_err(|e| SourceError::Storage(e.to_string()))?
            .map_err(|e| SourceError::Storage(e.to_string()))?;
    tracing::info!(revision = %artifact.revision, digest = %artifact.digest, files = packed.files, "stored artifact");
    sources
        .store
        .collect_garbage(&reconcile::owner(obj), sources.retention, &artifact.path)
        .map_err(|e| SourceError::Storage(format!("garbage collection: {e}")))?;
    status.artifact = Some(artifact);
    status.observed_ignore = obj.spec.ignore.clone();
    Ok(Some(NewArtifact {
        summary: format!("commit {}", &commit[..12.min(commit.len())]),
        dropped: packed.dropped,
    }))
}
