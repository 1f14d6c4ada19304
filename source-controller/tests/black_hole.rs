//! source-controller against a black-holed Git remote (a loopback port that accepts and never
//! answers): every reconcile ends at its timeout, and once they have ended no thread or file
//! descriptor is left behind, over HTTP (the client's request timeout) and ssh (connect timeout
//! and keepalives), with the blocking jobs behind their bound. The two tests count the process's
//! threads and descriptors, so they run one at a time, in a test binary of their own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_api::source::{GitRepository, GitRepositoryStatus};
use eddy_source::artifact::ArtifactStore;
use source_controller::Sources;
use source_controller::credentials::LoadedCredentials;
use source_controller::gitrepository::resolve_and_store;
use source_controller::reconcile::SourceError;
use source_controller::shared_fetch::SharedFetches;

/// The tests measure the whole process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn git_repository(name: &str, url: &str) -> GitRepository {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "source.eddy.dev/v1alpha1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"url": url, "interval": "1m", "timeout": "1s", "ref": {"branch": "main"}},
    }))
    .unwrap()
}

/// A server on loopback that accepts connections and never answers. It holds what it accepts;
/// `held` counts those sockets, which are the server's descriptors, not the controller's.
struct BlackHole {
    addr: std::net::SocketAddr,
    held: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl BlackHole {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let sink = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                sink.lock().unwrap().push(stream);
            }
        });
        Self { addr, held }
    }

    fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// 50 reconciles of objects on a black-holed remote, all at once, each with a 1 s timeout.
/// Returns the threads and descriptors (less the server's) before, and once they settled.
fn reconciles_against_a_black_hole(url: impl Fn(&str, usize) -> String) -> ((usize, usize), (usize, usize)) {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Idle blocking-pool threads leave after 200 ms rather than tokio's default 10 s, so that
    // what is left counts only threads still at work.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(200))
        .enable_all()
        .build()
        .unwrap();
    let hole = BlackHole::start();
    let storage = tempfile::tempdir().unwrap();
    let sources = Sources {
        store: ArtifactStore::new(storage.path(), "http://source.test"),
        retention: 2,
        shared_fetches: SharedFetches::default(),
    };
    let before = (threads(), descriptors());
    runtime.block_on(async {
        let reconciles = (0..50).map(|i| {
            let obj = git_repository(&format!("hole-{i}"), &url(&hole.addr.to_string(), i));
            let sources = &sources;
            async move {
                let mut status = GitRepositoryStatus::default();
                let started = Instant::now();
                let outcome = resolve_and_store(&obj, sources, Arc::new(LoadedCredentials::none()), &mut status).await;
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "a reconcile outlived its 1 s timeout: {:?}",
                    started.elapsed()
                );
                let err = outcome.err().expect("a black hole gives no revision");
                assert!(
                    matches!(err, SourceError::Timeout { .. } | SourceError::Git(_)),
                    "{err}"
                );
            }
        });
        futures::future::join_all(reconciles).await;
    });
    // The abandoned jobs end within their own bounds; look until they have, or 15 s passed.
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let now = (threads(), descriptors() - hole.held());
        if (now.0 <= before.0 + 2 && now.1 <= before.1 + 2) || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(runtime);
    (before, after)
}

/// Fails unless the reconciles on the remote named by `url` left at most two threads and two
/// descriptors more than there were before.
fn assert_nothing_left_behind(url: impl Fn(&str, usize) -> String) {
    let ((threads, fds), (threads_after, fds_after)) = reconciles_against_a_black_hole(url);
    assert!(
        threads_after <= threads + 2 && fds_after <= fds + 2,
        "threads {threads} -> {threads_after}, descriptors {fds} -> {fds_after}"
    );
}

#[test]
fn a_black_holed_http_remote_leaves_no_thread_or_descriptor_behind() {
    assert_nothing_left_behind(|addr, i| format!("http://{addr}/repo-{i}.git"));
}

#[test]
fn a_black_holed_ssh_remote_leaves_no_thread_or_descriptor_behind() {
    assert_nothing_left_behind(|addr, i| format!("ssh://git@{addr}/repo-{i}.git"));
}
