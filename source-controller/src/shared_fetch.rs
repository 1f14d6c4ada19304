//! Git work shared between GitRepository objects on the same remote. Concurrent resolves of the
//! same ref with the same credentials make one ls-refs call; an artifact this process stored
//! recently for the same content (URL, commit, ignore rules) is copied into the next object's own
//! place instead of being fetched, checked out and packed again, and concurrent builds of the same
//! content make one fetch. All of it lives in this process's memory; the artifacts stay in the
//! store, whose garbage collection may remove one at any time, and then the fetch runs as usual.

use std::collections::VecDeque;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use eddy_api::meta::Artifact;
use eddy_api::source::GitRepositoryRef;
use eddy_source::artifact::{ArtifactOwner, ArtifactStore, DigestWriter, Packed};

use crate::credentials::Fingerprint;
use crate::git::{GitError, RemoteHead};
use crate::reconcile::{SourceError, run_blocking};
use crate::single_flight::{Flight, SingleFlight};

/// How many contents the artifacts are remembered for, most recent first.
const REMEMBERED_CONTENTS: usize = 64;

/// What GitRepository reconciles share: the resolves and builds under way, and the artifacts stored
/// recently, by content.
#[derive(Default)]
pub struct SharedFetches {
    resolves: SingleFlight<ResolveKey, Result<RemoteHead, Arc<SourceError>>>,
    builds: SingleFlight<ContentKey, Result<StoredCommit, Arc<SourceError>>>,
    recent: Mutex<VecDeque<(ContentKey, StoredCommit)>>,
}

/// What the answer of an ls-refs call depends on, and who may see it: the URL, the whole
/// reference, and the credentials' fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolveKey {
    url: String,
    reference: GitRepositoryRef,
    credentials: Fingerprint,
}

impl ResolveKey {
    /// The key of resolving `reference` on `url` with the credentials `credentials` identifies.
    pub fn new(url: &str, reference: &GitRepositoryRef, credentials: &Fingerprint) -> Self {
        Self {
            url: url.to_owned(),
            reference: reference.clone(),
            credentials: credentials.clone(),
        }
    }
}

impl Hash for ResolveKey {
    /// The URL and credentials only: `GitRepositoryRef` has no `Hash`, and equality still compares
    /// the whole reference, including any field added to it later.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.url.hash(state);
        self.credentials.hash(state);
    }
}

/// What decides an artifact's bytes: the URL, the commit, and the ignore rules. The ref and the
/// credentials do not: the tree of a commit is the same however it was reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContentKey {
    url: String,
    commit: String,
    ignore: Option<String>,
}

impl ContentKey {
    /// The content `reference` resolved to, when it may come from another object's artifact:
    /// never for a commit reference, whose resolve asks the remote nothing, so that nothing shows
    /// this object could read the commit.
    pub fn shareable(url: &str, reference: &GitRepositoryRef, commit: &str, ignore: Option<&str>) -> Option<Self> {
        reference.commit.is_none().then(|| Self {
            url: url.to_owned(),
            commit: commit.to_owned(),
            ignore: ignore.map(str::to_owned),
        })
    }

    fn with_commit(&self, commit: &str) -> Self {
        Self {
            commit: commit.to_owned(),
            ..self.clone()
        }
    }
}

/// An artifact stored for one object, with what a copy needs to report the same.
#[derive(Clone, Debug)]
pub struct StoredCommit {
    /// The artifact, in its object's place.
    pub artifact: Artifact,
    /// The commit packed, 40 hex digits.
    pub commit: String,
    /// What packing wrote and left out.
    pub packed: Packed,
}

impl SharedFetches {
    /// Runs `resolve` on the blocking pool, or, when a resolve of the same key is under way, waits
    /// for its answer, which may be an error. Nothing is kept after: the next resolve asks the
    /// remote again. The caller bounds the wait with its own timeout.
    pub async fn resolve(
        &self,
        key: ResolveKey,
        resolve: impl FnOnce() -> Result<RemoteHead, GitError> + Send + 'static,
    ) -> Result<RemoteHead, SourceError> {
        let work = || async move { run_blocking(move || Ok(resolve()?)).await.map_err(Arc::new) };
        self.resolves
            .run(key, work)
            .await
            .into_value()
            .map_err(SourceError::Shared)
    }

    /// Stores the artifact of `content` for `owner` at `revision`: a copy of one stored recently
    /// for the same content, when its file is still there and reads back to its digest, or else
    /// what `build` fetches and stores. While a build of the same content is under way, this waits
    /// for it and copies its artifact; when that build fails, this one runs `build` itself.
    ///
    /// A copy is sound because this object has resolved its ref itself, with its own credentials
    /// and one ls-refs call, to the commit in `content`: the remote let it read, and the copy holds
    /// exactly what fetching that commit would give. The copy goes through [`ArtifactStore::put`]
    /// into the object's own place, so its digest is computed as for any artifact. The caller
    /// bounds the whole with its own timeout.
    pub async fn store<F, Fut>(
        &self,
        store: &ArtifactStore,
        owner: &ArtifactOwner,
        content: ContentKey,
        revision: &str,
        build: F,
    ) -> Result<StoredCommit, SourceError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<StoredCommit, SourceError>>,
    {
        let (build, content_ref) = (&build, &content);
        let find_or_build = || async move {
            if let Some(copy) = self.copy_recent(store, owner, content_ref, revision).await {
                return Ok(copy);
            }
            let built = build().await.map_err(Arc::new)?;
            self.remember(content_ref, &built);
            Ok(built)
        };
        match self.builds.run(content.clone(), find_or_build).await {
            Flight::Led(stored) => return stored.map_err(SourceError::Shared),
            Flight::Joined(Ok(other)) if other.commit == content.commit => {
                match copy_artifact(store, owner, revision, &other).await {
                    Ok(copy) => {
                        self.remember(&content, &copy);
                        return Ok(copy);
                    }
                    Err(err) => tracing::debug!(error = %err, "copying a shared artifact failed; fetching"),
                }
            }
            // That build's ref moved on before its fetch: it holds another commit.
            Flight::Joined(Ok(_)) => {}
            // Fetching itself, this object reports its own failure, not one met with other
            // credentials.
            Flight::Joined(Err(err)) => tracing::debug!(error = %err, "a shared fetch failed; fetching"),
        }
        let built = build().await?;
        self.remember(&content, &built);
        Ok(built)
    }

    /// A copy for `owner` of the artifact remembered for `content`, if any and still readable.
    async fn copy_recent(
        &self,
        store: &ArtifactStore,
        owner: &ArtifactOwner,
        content: &ContentKey,
        revision: &str,
    ) -> Option<StoredCommit> {
        let prior = self.lock_recent().iter().find(|(key, _)| key == content)?.1.clone();
        match copy_artifact(store, owner, revision, &prior).await {
            Ok(copy) => {
                self.remember(content, &copy);
                Some(copy)
            }
            Err(err) => {
                tracing::debug!(error = %err, "a remembered artifact is gone or unreadable; fetching");
                self.lock_recent().retain(|(key, _)| key != content);
                None
            }
        }
    }

    /// Remembers `stored` as the newest artifact of its content (`content` with the commit it
    /// holds), forgetting the oldest content beyond [`REMEMBERED_CONTENTS`].
    fn remember(&self, content: &ContentKey, stored: &StoredCommit) {
        let key = content.with_commit(&stored.commit);
        let mut recent = self.lock_recent();
        recent.retain(|(k, _)| *k != key);
        recent.push_front((key, stored.clone()));
        recent.truncate(REMEMBERED_CONTENTS);
    }

    fn lock_recent(&self) -> std::sync::MutexGuard<'_, VecDeque<(ContentKey, StoredCommit)>> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stores a copy of `prior` for `owner` at `revision`, failing when the file is gone or does
/// not read back to `prior`'s digest.
async fn copy_artifact(
    store: &ArtifactStore,
    owner: &ArtifactOwner,
    revision: &str,
    prior: &StoredCommit,
) -> Result<StoredCommit, SourceError> {
    let source = store.root().join(&prior.artifact.path);
    let digest = prior.artifact.digest.clone();
    let (store, owner, revision) = (store.clone(), owner.clone(), revision.to_owned());
    let (artifact, ()) = run_blocking(move || {
        store
            .put(&owner, &revision, |w| {
                copy_verified(std::fs::File::open(&source)?, &digest, w)
            })
            .map_err(|e| SourceError::Storage(e.to_string()))
    })
    .await?;
    tracing::debug!(revision = %artifact.revision, digest = %artifact.digest, "copied the artifact of the same content");
    Ok(StoredCommit {
        artifact,
        commit: prior.commit.clone(),
        packed: prior.packed.clone(),
    })
}

/// Copies `source` into `out`, failing unless it has digest `digest`: a file replaced or cut
/// short since it was stored must not become another object's artifact.
fn copy_verified(mut source: impl Read, digest: &str, out: &mut impl Write) -> io::Result<()> {
    let mut checked = DigestWriter::new(out);
    io::copy(&mut source, &mut checked)?;
    let (read, _, _) = checked.finish();
    if read == digest {
        Ok(())
    } else {
        Err(io::Error::other(format!("read back as {read}, stored as {digest}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use eddy_source::artifact::pack;

    use super::*;
    use crate::git::{self, Credentials};
    use crate::test_remote::Remote;

    fn main_branch() -> GitRepositoryRef {
        GitRepositoryRef {
            branch: Some("main".into()),
            ..Default::default()
        }
    }

    fn owner(name: &str) -> ArtifactOwner {
        ArtifactOwner::new("GitRepository", "apps", name)
    }

    /// The reconciler's fetch for `owner`, counted: shallow checkout, pack, put.
    async fn fetch_and_pack(
        checkouts: &AtomicUsize,
        store: &ArtifactStore,
        owner: &ArtifactOwner,
        url: &str,
        head: &RemoteHead,
        ignore: Option<&str>,
    ) -> Result<StoredCommit, SourceError> {
        checkouts.fetch_add(1, Ordering::SeqCst);
        let (store, owner, url, head) = (store.clone(), owner.clone(), url.to_owned(), head.clone());
        let ignore = ignore.map(str::to_owned);
        run_blocking(move || {
            let work = tempfile::tempdir().unwrap();
            let tree = work.path().join("tree");
            let commit = git::checkout(&url, &head, &Credentials::default(), 60, &tree, &AtomicBool::new(false))?;
            let (artifact, packed) = store
                .put(&owner, &head.revision, |w| pack(&tree, ignore.as_deref(), w))
                .map_err(|e| SourceError::Storage(e.to_string()))?;
            Ok(StoredCommit {
                artifact,
                commit,
                packed,
            })
        })
        .await
    }

    /// A remote with one commit of `files`, an empty store, and nothing shared yet.
    struct Fixture {
        remote: Remote,
        storage: tempfile::TempDir,
        store: ArtifactStore,
        shared: SharedFetches,
        checkouts: AtomicUsize,
    }

    impl Fixture {
        fn new(files: &[(&str, &str)]) -> Self {
            let remote = Remote::new();
            remote.commit(files);
            let storage = tempfile::tempdir().unwrap();
            let store = ArtifactStore::new(storage.path(), "http://source.test");
            Self {
                remote,
                storage,
                store,
                shared: SharedFetches::default(),
                checkouts: AtomicUsize::new(0),
            }
        }

        /// What one GitRepository reconcile of the object `name` does with what is shared.
        async fn reconcile(&self, name: &str, ignore: Option<&str>) -> StoredCommit {
            let (shared, checkouts, store) = (&self.shared, &self.checkouts, &self.store);
            let url = &self.remote.url();
            let (key_url, reference) = (url.to_owned(), main_branch());
            let key = ResolveKey::new(
                url,
                &reference,
                &crate::credentials::LoadedCredentials::none().fingerprint,
            );
            let head = shared
                .resolve(key, move || {
                    git::resolve(&key_url, &reference, &Credentials::default(), 60)
                })
                .await
                .unwrap();
            let content = ContentKey::shareable(url, &main_branch(), &head.commit, ignore).unwrap();
            let owner = owner(name);
            shared
                .store(store, &owner, content, &head.revision, || {
                    fetch_and_pack(checkouts, store, &owner, url, &head, ignore)
                })
                .await
                .unwrap()
        }

        /// How many checkouts the reconciles made.
        fn checkouts(&self) -> usize {
            self.checkouts.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn concurrent_resolves_of_one_ref_make_one_remote_call() {
        let remote = Remote::new();
        let commit = remote.commit(&[("app.yaml", "replicas: 1\n")]);
        let shared = Arc::new(SharedFetches::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let fingerprint = crate::credentials::LoadedCredentials::none().fingerprint;
        let resolves = (0..10).map(|_| {
            let (shared, calls, url) = (shared.clone(), calls.clone(), remote.url());
            let key = ResolveKey::new(&url, &main_branch(), &fingerprint);
            tokio::spawn(async move {
                shared
                    .resolve(key, move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Long enough for every caller to join.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        git::resolve(&url, &main_branch(), &Credentials::default(), 60)
                    })
                    .await
            })
        });
        let heads = futures::future::try_join_all(resolves).await.unwrap();

        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for head in heads {
            assert_eq!(head.unwrap().revision, format!("main@sha1:{commit}"));
        }
    }

    #[tokio::test]
    async fn a_failed_resolve_is_reported_to_every_waiter_and_not_kept() {
        let shared = SharedFetches::default();
        let fingerprint = crate::credentials::LoadedCredentials::none().fingerprint;
        let key = ResolveKey::new("file:///nowhere.git", &main_branch(), &fingerprint);
        let calls = Arc::new(AtomicUsize::new(0));
        let failing = || {
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(100));
                git::resolve("file:///nowhere.git", &main_branch(), &Credentials::default(), 60)
            }
        };
        let (first, second) = tokio::join!(
            shared.resolve(key.clone(), failing()),
            shared.resolve(key.clone(), failing())
        );
        let (first, second) = (first.unwrap_err(), second.unwrap_err());
        assert_eq!(first.to_string(), second.to_string());
        assert_eq!(first.reason(), "GitOperationFailed");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        shared.resolve(key, failing()).await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the next resolve asks again");
    }

    #[test]
    fn different_credentials_or_refs_do_not_share_a_resolve() {
        let none = crate::credentials::LoadedCredentials::none().fingerprint;
        let url = "https://git.example.test/repo.git";
        let key = ResolveKey::new(url, &main_branch(), &none);
        assert!(key == ResolveKey::new(url, &main_branch(), &none));
        let tag = GitRepositoryRef {
            tag: Some("main".into()),
            ..Default::default()
        };
        assert!(key != ResolveKey::new(url, &tag, &none));
        assert!(key != ResolveKey::new("https://git.example.test/other.git", &main_branch(), &none));
        // Fingerprints of different secret material differ: see credentials.rs.
    }

    #[tokio::test]
    async fn a_second_object_with_the_same_content_gets_a_copy_without_a_checkout() {
        let f = Fixture::new(&[("app.yaml", "replicas: 1\n")]);

        let first = f.reconcile("first", None).await;
        let second = f.reconcile("second", None).await;

        assert_eq!(f.checkouts(), 1);
        assert_eq!(second.artifact.digest, first.artifact.digest);
        assert_eq!(second.artifact.revision, first.artifact.revision);
        assert_eq!(second.commit, first.commit);
        assert_eq!(second.packed, first.packed);
        assert!(second.artifact.path.starts_with("gitrepository/apps/second/"));
        assert!(f.store.contains(&first.artifact) && f.store.contains(&second.artifact));
    }

    #[tokio::test]
    async fn other_ignore_rules_or_a_new_commit_are_fetched() {
        let f = Fixture::new(&[("app.yaml", "replicas: 1\n"), ("notes.md", "draft\n")]);

        let plain = f.reconcile("plain", None).await;
        let ignoring = f.reconcile("ignoring", Some("*.md\n")).await;
        assert_eq!(f.checkouts(), 2);
        assert_ne!(ignoring.artifact.digest, plain.artifact.digest);

        f.remote.commit(&[("app.yaml", "replicas: 2\n")]);
        let newer = f.reconcile("plain", None).await;
        assert_eq!(f.checkouts(), 3);
        assert_ne!(newer.commit, plain.commit);
        assert_ne!(newer.artifact.digest, plain.artifact.digest);
    }

    #[tokio::test]
    async fn concurrent_objects_with_a_new_commit_fetch_it_once() {
        let f = Fixture::new(&[("app.yaml", "replicas: 1\n")]);

        let names: Vec<String> = (0..10).map(|i| format!("app-{i}")).collect();
        let all = futures::future::join_all(names.iter().map(|name| f.reconcile(name, None))).await;

        assert_eq!(f.checkouts(), 1);
        for (name, stored) in names.iter().zip(&all) {
            assert_eq!(stored.artifact.digest, all[0].artifact.digest);
            assert!(stored.artifact.path.starts_with(&format!("gitrepository/apps/{name}/")));
            assert!(f.store.contains(&stored.artifact));
        }
    }

    #[tokio::test]
    async fn a_waiter_fetches_itself_when_the_shared_fetch_fails() {
        let storage = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(storage.path(), "http://source.test");
        let shared = SharedFetches::default();
        let content = ContentKey::shareable("file:///r.git", &main_branch(), &format!("{:040}", 1), None).unwrap();
        let stored = |name: &str| {
            let (artifact, ()) = store
                .put(&owner(name), "main@sha1:1", |w| w.write_all(b"tree"))
                .unwrap();
            StoredCommit {
                artifact,
                commit: format!("{:040}", 1),
                packed: Packed::default(),
            }
        };
        let failing = || async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Err(SourceError::Storage("disk full".into()))
        };
        let (first_owner, second_owner) = (owner("first"), owner("second"));
        let (first, second) = tokio::join!(
            shared.store(&store, &first_owner, content.clone(), "main@sha1:1", failing),
            shared.store(&store, &second_owner, content.clone(), "main@sha1:1", || async {
                Ok(stored("second"))
            }),
        );
        assert_eq!(first.unwrap_err().to_string(), "building the artifact: disk full");
        assert!(second.unwrap().artifact.path.starts_with("gitrepository/apps/second/"));
    }

    #[tokio::test]
    async fn a_collected_artifact_is_fetched_again() {
        let f = Fixture::new(&[("app.yaml", "replicas: 1\n")]);

        let first = f.reconcile("first", None).await;
        f.store.remove_all(&owner("first")).unwrap();
        let second = f.reconcile("second", None).await;

        assert_eq!(f.checkouts(), 2);
        assert_eq!(second.artifact.digest, first.artifact.digest);
        assert!(f.store.contains(&second.artifact));
    }

    #[tokio::test]
    async fn a_changed_artifact_file_is_not_copied() {
        let f = Fixture::new(&[("app.yaml", "replicas: 1\n")]);

        let first = f.reconcile("first", None).await;
        std::fs::write(f.storage.path().join(&first.artifact.path), b"not the packed tree").unwrap();
        let second = f.reconcile("second", None).await;

        assert_eq!(f.checkouts(), 2);
        assert_eq!(second.artifact.digest, first.artifact.digest);
    }

    #[test]
    fn commit_references_never_share_content() {
        let pinned = GitRepositoryRef {
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            ..Default::default()
        };
        let commit = pinned.commit.clone().unwrap();
        assert_eq!(ContentKey::shareable("file:///r.git", &pinned, &commit, None), None);
        assert!(ContentKey::shareable("file:///r.git", &main_branch(), &commit, None).is_some());
    }

    #[test]
    fn only_the_newest_contents_are_remembered() {
        let storage = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(storage.path(), "http://source.test");
        let (artifact, ()) = store
            .put(&owner("app"), "main@sha1:0", |w| w.write_all(b"tree"))
            .unwrap();
        let stored = |i: usize| StoredCommit {
            artifact: artifact.clone(),
            commit: format!("{i:040}"),
            packed: Packed::default(),
        };
        let shared = SharedFetches::default();
        let key = ContentKey::shareable("file:///r.git", &main_branch(), "", None).unwrap();
        for i in 0..=REMEMBERED_CONTENTS {
            shared.remember(&key, &stored(i));
        }
        shared.remember(&key, &stored(1));

        let recent = shared.lock_recent();
        assert_eq!(recent.len(), REMEMBERED_CONTENTS);
        assert_eq!(recent[0].0, key.with_commit(&format!("{:040}", 1)), "the newest first");
        assert_eq!(
            recent.iter().filter(|(k, _)| k.commit == format!("{:040}", 1)).count(),
            1
        );
        assert!(
            recent.iter().all(|(k, _)| k.commit != format!("{:040}", 0)),
            "the oldest forgotten"
        );
    }
}
