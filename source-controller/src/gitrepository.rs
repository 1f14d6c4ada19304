//! The GitRepository reconciler: resolve the ref on the remote (one ls-refs call), and only when
//! the revision or the ignore rules changed, fetch it shallowly, pack it into a reproducible
//! artifact, store it, and garbage-collect old ones. Objects on the same remote share resolves and
//! fetched contents through [`crate::shared_fetch`]. A failure marks Ready=False with a reason and
//! a message that names the cause, reports once, and leaves the last good artifact served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eddy_api::source::{GitRepository, GitRepositoryStatus};
use eddy_runtime::Context;
use eddy_source::artifact::{ArtifactStore, pack};
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::Sources;
use crate::credentials::{self, LoadedCredentials};
use crate::git::{self, RemoteHead};
use crate::reconcile::{self, Failure, NewArtifact, SourceError, SourceKind, SourceStatus, run_blocking, within};
use crate::shared_fetch::{ContentKey, ResolveKey, StoredCommit};

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
/// Resolves and artifacts are shared with other objects on the same remote through
/// [`Sources::shared_fetches`]; each object ends up with what it would get fetching alone.
/// `spec.timeout` bounds the resolve, and then the fetch and packing (or the wait for another
/// object's, and the copy).
async fn fetch_and_store(
    obj: &GitRepository,
    ctx: &Context,
    sources: &Sources,
    status: &mut GitRepositoryStatus,
) -> Result<Option<NewArtifact>, SourceError> {
    let loaded = match &obj.spec.secret_ref {
        Some(secret) => credentials::load(&ctx.client, &obj.namespace().unwrap_or_default(), &secret.name).await?,
        None => LoadedCredentials::none(),
    };
    resolve_and_store(obj, sources, Arc::new(loaded), status).await
}

/// [`fetch_and_store`] once the credentials are loaded.
pub async fn resolve_and_store(
    obj: &GitRepository,
    sources: &Sources,
    loaded: Arc<LoadedCredentials>,
    status: &mut GitRepositoryStatus,
) -> Result<Option<NewArtifact>, SourceError> {
    let url = obj.spec.url.clone();
    let reference = obj.spec.reference.clone().unwrap_or_default();
    let timeout = spec_timeout(obj);
    let timed_out = || SourceError::Timeout {
        url: git::redact_url(&obj.spec.url),
        timeout: obj.spec.timeout.to_string(),
    };

    let head = {
        let key = ResolveKey::new(&url, &reference, &loaded.fingerprint);
        let (url, reference, loaded) = (url.clone(), reference.clone(), loaded.clone());
        let resolve = move || git::resolve(&url, &reference, &loaded.credentials, timeout_secs(timeout));
        within(timeout, timed_out, || {}, sources.shared_fetches.resolve(key, resolve)).await?
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

    let owner = reconcile::owner(obj);
    let interrupt = Arc::new(AtomicBool::new(false));
    let fetch = || fetch_and_pack(obj, &head, &loaded, &sources.store, &interrupt);
    let content = ContentKey::shareable(&url, &reference, &head.commit, obj.spec.ignore.as_deref());
    let stored = within(timeout, timed_out, || interrupt.store(true, Ordering::Relaxed), async {
        let Some(content) = content else {
            return fetch().await;
        };
        let shared = &sources.shared_fetches;
        shared
            .store(&sources.store, &owner, content, &head.revision, fetch)
            .await
    })
    .await?;
    let StoredCommit {
        artifact,
        commit,
        packed,
    } = stored;
    tracing::info!(revision = %artifact.revision, digest = %artifact.digest, files = packed.files, "stored artifact");
    sources
        .store
        .collect_garbage(&owner, sources.retention, &artifact.path)
        .map_err(|e| SourceError::Storage(format!("garbage collection: {e}")))?;
    status.artifact = Some(artifact);
    status.observed_ignore = obj.spec.ignore.clone();
    Ok(Some(NewArtifact {
        summary: format!("commit {}", &commit[..12.min(commit.len())]),
        dropped: packed.dropped,
    }))
}

/// Fetches `head` shallowly into a temporary work tree and packs it into an artifact for `obj`:
/// the work a shared artifact saves. `interrupt` stops the fetch.
async fn fetch_and_pack(
    obj: &GitRepository,
    head: &RemoteHead,
    loaded: &Arc<LoadedCredentials>,
    store: &ArtifactStore,
    interrupt: &Arc<AtomicBool>,
) -> Result<StoredCommit, SourceError> {
    let work = tempfile::tempdir().map_err(|e| SourceError::Storage(e.to_string()))?;
    let tree = work.path().join("tree");
    let commit = {
        let (url, head, loaded, tree, interrupt) = (
            obj.spec.url.clone(),
            head.clone(),
            loaded.clone(),
            tree.clone(),
            interrupt.clone(),
        );
        let timeout_secs = timeout_secs(spec_timeout(obj));
        run_blocking(move || {
            Ok(git::checkout(
                &url,
                &head,
                &loaded.credentials,
                timeout_secs,
                &tree,
                &interrupt,
            )?)
        })
        .await?
    };
    // The ref may have moved between ls-refs and the fetch; the artifact names what it holds.
    let revision = head.revision.replace(&head.commit, &commit);

    let (store, owner, ignore) = (store.clone(), reconcile::owner(obj), obj.spec.ignore.clone());
    let (artifact, packed) = run_blocking(move || {
        store
            .put(&owner, &revision, |w| pack(&tree, ignore.as_deref(), w))
            .map_err(|e| SourceError::Storage(e.to_string()))
    })
    .await?;
    Ok(StoredCommit {
        artifact,
        commit,
        packed,
    })
}

/// `spec.timeout`.
fn spec_timeout(obj: &GitRepository) -> Duration {
    obj.spec.timeout.to_std().unwrap_or(Duration::from_secs(60))
}

/// The timeout Git's own connection settings take, in whole seconds.
fn timeout_secs(timeout: Duration) -> u64 {
    timeout.as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use eddy_source::artifact::ArtifactStore;

    use super::*;
    use crate::shared_fetch::SharedFetches;
    use crate::test_remote::Remote;

    fn git_repository(name: &str, url: &str, ignore: Option<&str>) -> GitRepository {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "source.eddy.dev/v1alpha1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": "apps"},
            "spec": {"url": url, "interval": "1m", "ref": {"branch": "main"}, "ignore": ignore},
        }))
        .unwrap()
    }

    /// Reconciles `obj` from `status` as far as storing goes: the status and event it ends with.
    async fn store(obj: &GitRepository, sources: &Sources, status: &mut GitRepositoryStatus) -> Option<NewArtifact> {
        resolve_and_store(obj, sources, Arc::new(LoadedCredentials::none()), status)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn objects_on_one_remote_end_as_if_each_fetched_alone() {
        let remote = Remote::new();
        let commit = remote.commit(&[("app.yaml", "replicas: 1\n"), ("notes.md", "draft\n")]);
        let storage = tempfile::tempdir().unwrap();
        let sources = Sources {
            store: ArtifactStore::new(storage.path(), "http://source.test"),
            retention: 2,
            shared_fetches: SharedFetches::default(),
        };
        let (first, second) = (
            git_repository("first", &remote.url(), None),
            git_repository("second", &remote.url(), None),
        );
        let ignoring = git_repository("ignoring", &remote.url(), Some("*.md"));

        let (mut first_status, mut second_status, mut ignoring_status) = Default::default();
        let first_new = store(&first, &sources, &mut first_status).await.unwrap();
        let second_new = store(&second, &sources, &mut second_status).await.unwrap();
        let ignoring_new = store(&ignoring, &sources, &mut ignoring_status).await.unwrap();

        let (first_artifact, second_artifact) = (first_status.artifact.unwrap(), second_status.artifact.unwrap());
        assert_eq!(first_artifact.revision, format!("main@sha1:{commit}"));
        assert_eq!(second_artifact.revision, first_artifact.revision);
        assert_eq!(second_artifact.digest, first_artifact.digest);
        assert_eq!(second_artifact.size, first_artifact.size);
        assert!(second_artifact.path.starts_with("gitrepository/apps/second/"));
        assert!(sources.store.contains(&first_artifact) && sources.store.contains(&second_artifact));
        assert_eq!(second_new.summary, format!("commit {}", &commit[..12]));
        assert_eq!(second_new.summary, first_new.summary);
        assert_eq!(second_new.dropped, first_new.dropped);

        let ignoring_artifact = ignoring_status.artifact.unwrap();
        assert_eq!(ignoring_artifact.revision, first_artifact.revision);
        assert_ne!(ignoring_artifact.digest, first_artifact.digest);
        assert_eq!(ignoring_status.observed_ignore.as_deref(), Some("*.md"));
        assert_eq!(ignoring_new.summary, first_new.summary);
    }
}
