//! GitRepository end to end: the object lives in the local control plane, source-controller runs
//! as a process, the remote is a real Git server, and artifacts are downloaded from the
//! controller's own artifact server and verified as a consumer would.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_api::conditions::{self, READY};
use eddy_api::meta::Artifact;
use eddy_api::source::GitRepository;
use eddy_source::artifact::{self, Limits};
use eddy_tests::git::{GitHttpServer, GitRepo, SshServer};
use eddy_tests::{ControllerProcess, cluster_namespace, delete_namespace, eventually, free_port, set_suspend};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

/// A source-controller process with its own storage and artifact server.
pub(crate) struct SourceController {
    pub(crate) process: ControllerProcess,
    storage: tempfile::TempDir,
    pub(crate) base_url: String,
}

pub(crate) fn start_source_controller(ns: &str) -> SourceController {
    let storage = tempfile::tempdir().unwrap();
    let addr = free_port();
    let base_url = format!("http://{addr}");
    let process = ControllerProcess::start(
        "source-controller",
        &[
            &format!("--leader-election-namespace={ns}"),
            &format!("--watch-namespace={ns}"),
            &format!("--storage-path={}", storage.path().display()),
            &format!("--storage-addr={addr}"),
            &format!("--storage-adv-addr={base_url}"),
        ],
    )
    .unwrap();
    SourceController {
        process,
        storage,
        base_url,
    }
}

async fn create_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let string_data: BTreeMap<String, String> = data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "stringData": string_data,
    }))
    .unwrap();
    secrets
        .patch(name, &PatchParams::apply("eddy-tests").force(), &Patch::Apply(&secret))
        .await
        .unwrap();
}

fn git_repository(name: &str, spec: serde_json::Value) -> GitRepository {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "source.eddy.dev/v1alpha1",
        "kind": "GitRepository",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// Waits until Ready is True for `revision` and returns the artifact.
async fn ready_artifact(
    repos: &Api<GitRepository>,
    name: &str,
    revision: &str,
    controller: &ControllerProcess,
) -> Artifact {
    let what = format!("GitRepository {name} to be Ready with revision {revision}");
    let found = tokio::time::timeout(
        Duration::from_secs(60),
        eventually(Duration::from_secs(60), &what, || async {
            let repo = repos.get(name).await.ok()?;
            let status = repo.status?;
            let ready = conditions::get(&status.conditions, READY)?;
            let artifact = status.artifact?;
            (ready.status == "True" && artifact.revision == revision).then_some(artifact)
        }),
    )
    .await;
    found.unwrap_or_else(|_| panic!("{what}; controller logs:\n{}", controller.logs()))
}

async fn ready_condition(
    repos: &Api<GitRepository>,
    name: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions::get(&repos.get(name).await.ok()?.status?.conditions, READY).cloned()
}

/// Downloads and verifies `artifact` as a consumer does, and returns the unpacked tree.
pub(crate) async fn download(artifact: &Artifact) -> tempfile::TempDir {
    let file = artifact::fetch(&reqwest::Client::new(), artifact, 64 << 20)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    artifact::unpack(file, dir.path(), Limits::default()).unwrap();
    dir
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn new_commits_become_new_artifacts_with_ignore_rules_and_links_honoured() {
    let (client, ns) = cluster_namespace("gitrepo").await;
    let server = GitHttpServer::start(Some(("git", "hunter2"))).await.unwrap();
    let repo = server.create_repo("app").unwrap();
    repo.commit(
        &[
            ("deploy/app.yaml", "kind: Deployment\n"),
            ("deploy/secret.yaml", "kind: Secret\n"),
            ("deploy/.sourceignore", "secret.yaml\n"),
            ("docs/guide.md", "# guide\n"),
        ],
        "first",
    )
    .unwrap();
    std::os::unix::fs::symlink("app.yaml", repo.work().join("deploy/alias.yaml")).unwrap();
    std::os::unix::fs::symlink("../../../etc/passwd", repo.work().join("deploy/escape")).unwrap();
    let first = repo.commit(&[], "links").unwrap();

    create_secret(
        &client,
        &ns,
        "git-auth",
        &[("username", "git"), ("password", "hunter2")],
    )
    .await;
    let controller = start_source_controller(&ns);
    let repos: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    let spec = serde_json::json!({
        "url": server.url("app"), "interval": "1s", "ref": {"branch": "main"},
        "secretRef": {"name": "git-auth"}, "ignore": "/docs/\n",
    });
    repos
        .create(&PostParams::default(), &git_repository("app", spec))
        .await
        .unwrap();

    let artifact = ready_artifact(&repos, "app", &format!("main@sha1:{first}"), &controller.process).await;
    assert!(artifact.url.starts_with(&controller.base_url), "{}", artifact.url);
    assert!(artifact.digest.starts_with("sha256:"));
    let tree = download(&artifact).await;
    assert_eq!(
        std::fs::read_to_string(tree.path().join("deploy/app.yaml")).unwrap(),
        "kind: Deployment\n"
    );
    assert!(
        !tree.path().join("deploy/secret.yaml").exists(),
        ".sourceignore is honoured"
    );
    assert!(!tree.path().join("docs").exists(), "spec.ignore is honoured");
    assert!(!tree.path().join(".git").exists(), ".git never enters the artifact");
    assert!(
        tree.path().join("deploy/alias.yaml").is_symlink(),
        "a link inside the repository is kept"
    );
    assert!(
        !tree.path().join("deploy/escape").exists(),
        "a link pointing outside is dropped"
    );

    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let new_artifact = eventually(Duration::from_secs(10), "a NewArtifact event", || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("NewArtifact"))
    })
    .await;
    let note = new_artifact.note.unwrap();
    assert!(
        note.contains("left out deploy/escape"),
        "the dropped link is reported: {note}"
    );

    let second = repo
        .commit(&[("deploy/service.yaml", "kind: Service\n")], "second")
        .unwrap();
    let newer = ready_artifact(&repos, "app", &format!("main@sha1:{second}"), &controller.process).await;
    assert_ne!(newer.digest, artifact.digest);
    let tree = download(&newer).await;
    assert!(tree.path().join("deploy/service.yaml").exists());

    // The artifact server refuses everything but the files it stores.
    let http = reqwest::Client::new();
    let base = &controller.base_url;
    let dir_url = newer.url.rsplit_once('/').unwrap().0.to_owned();
    for url in [
        format!("{base}/gitrepository/{ns}/app/../../../../etc/passwd"),
        format!("{base}/gitrepository/{ns}/%2e%2e/%2e%2e"),
        format!("{base}/gitrepository/{ns}/app/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        format!("{base}//etc/passwd"),
        format!("{dir_url}/"),
        dir_url.clone(),
        format!("{base}/gitrepository/"),
    ] {
        let status = http.get(&url).send().await.unwrap().status();
        assert_eq!(status, 404, "{url}");
    }

    // Deleting the object removes its artifacts (finalizer).
    repos.delete("app", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), "the GitRepository to be gone", || async {
        repos.get_opt("app").await.ok().and_then(|o| o.is_none().then_some(()))
    })
    .await;
    assert_eq!(http.get(&newer.url).send().await.unwrap().status(), 404);
    assert!(
        !controller
            .storage
            .path()
            .join(format!("gitrepository/{ns}/app"))
            .exists()
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn an_unchanged_remote_is_not_fetched_again() {
    let (client, ns) = cluster_namespace("unchanged").await;
    let server = GitHttpServer::start(None).await.unwrap();
    let head = server
        .create_repo("app")
        .unwrap()
        .commit(&[("a.yaml", "a: 1\n")], "first")
        .unwrap();
    let controller = start_source_controller(&ns);
    let repos: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    let spec = serde_json::json!({"url": server.url("app"), "interval": "1s", "ref": {"branch": "main"}});
    repos
        .create(&PostParams::default(), &git_repository("app", spec))
        .await
        .unwrap();
    ready_artifact(&repos, "app", &format!("main@sha1:{head}"), &controller.process).await;

    let (ls_refs, fetches) = (server.ls_refs(), server.fetches());
    assert_eq!(fetches, 1, "one fetch for the first artifact");
    // Three more intervals with nothing new on the remote.
    eventually(Duration::from_secs(30), "three more ls-refs checks", || async {
        (server.ls_refs() >= ls_refs + 3).then_some(())
    })
    .await;
    assert_eq!(
        server.fetches(),
        fetches,
        "an unchanged remote is only listed, never fetched"
    );
    delete_namespace(&client, &ns).await;
}

/// A GitRepository `app` in `ns` that became Ready with `secret` as its credentials, and its
/// artifact.
async fn ready_with_secret(
    client: &Client,
    ns: &str,
    url: String,
    head: &str,
    secret: &[(&str, &str)],
) -> (SourceController, Api<GitRepository>, Artifact) {
    create_secret(client, ns, "git-auth", secret).await;
    let controller = start_source_controller(ns);
    let repos: Api<GitRepository> = Api::namespaced(client.clone(), ns);
    let spec =
        serde_json::json!({"url": url, "interval": "1s", "secretRef": {"name": "git-auth"}, "ref": {"branch": "main"}});
    repos
        .create(&PostParams::default(), &git_repository("app", spec))
        .await
        .unwrap();
    let artifact = ready_artifact(&repos, "app", &format!("main@sha1:{head}"), &controller.process).await;
    (controller, repos, artifact)
}

/// Replaces the credentials with `secret` and returns the Ready condition once it turned False.
async fn break_credentials(
    client: &Client,
    ns: &str,
    repos: &Api<GitRepository>,
    secret: &[(&str, &str)],
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    create_secret(client, ns, "git-auth", secret).await;
    eventually(
        Duration::from_secs(30),
        "Ready=False after the credentials changed",
        || async { ready_condition(repos, "app").await.filter(|r| r.status == "False") },
    )
    .await
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_suspended_repository_keeps_its_artifact_until_resumed() {
    let (client, ns) = cluster_namespace("suspend").await;
    let server = GitHttpServer::start(None).await.unwrap();
    let repo = server.create_repo("app").unwrap();
    let first = repo.commit(&[("a.yaml", "a: 1\n")], "first").unwrap();
    let controller = start_source_controller(&ns);
    let repos: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    let spec = serde_json::json!({"url": server.url("app"), "interval": "1s", "ref": {"branch": "main"}});
    repos
        .create(&PostParams::default(), &git_repository("app", spec))
        .await
        .unwrap();
    ready_artifact(&repos, "app", &format!("main@sha1:{first}"), &controller.process).await;

    set_suspend(&repos, "app", true, |r| r.status.as_ref()?.observed_generation).await;
    let listed = server.ls_refs();
    let second = repo.commit(&[("a.yaml", "a: 2\n")], "second").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = repos.get("app").await.unwrap().status.unwrap();
    assert_eq!(
        status.artifact.unwrap().revision,
        format!("main@sha1:{first}"),
        "a suspended source does not move"
    );
    assert_eq!(server.ls_refs(), listed, "and does not even ask the remote");

    set_suspend(&repos, "app", false, |r| r.status.as_ref()?.observed_generation).await;
    ready_artifact(&repos, "app", &format!("main@sha1:{second}"), &controller.process).await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_wrong_password_fails_clearly_and_keeps_serving_the_last_artifact() {
    let (client, ns) = cluster_namespace("badpass").await;
    let server = GitHttpServer::start(Some(("git", "hunter2"))).await.unwrap();
    let head = server
        .create_repo("app")
        .unwrap()
        .commit(&[("a.yaml", "a: 1\n")], "first")
        .unwrap();
    let good = [("username", "git"), ("password", "hunter2")];
    let (controller, repos, artifact) = ready_with_secret(&client, &ns, server.url("app"), &head, &good).await;

    let bad = [("username", "git"), ("password", "not-the-password-7")];
    let ready = break_credentials(&client, &ns, &repos, &bad).await;
    assert_eq!(ready.reason, "AuthenticationFailed");
    assert!(ready.message.contains("authentication to"), "{}", ready.message);
    assert!(!ready.message.contains("not-the-password-7"), "{}", ready.message);
    let status = repos.get("app").await.unwrap().status.unwrap();
    assert_eq!(
        status.artifact.as_ref(),
        Some(&artifact),
        "the last good artifact stays in status"
    );
    let tree = download(&artifact).await;
    assert!(tree.path().join("a.yaml").exists(), "and stays downloadable, verified");
    assert!(
        !controller.process.logs().contains("not-the-password-7"),
        "the password never reaches the logs"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_wrong_host_key_fails_clearly_and_keeps_serving_the_last_artifact() {
    let (client, ns) = cluster_namespace("hostkey").await;
    let server = SshServer::start().await.unwrap();
    let repo: GitRepo = server.create_repo("app").unwrap();
    let head = repo.commit(&[("a.yaml", "a: 1\n")], "first").unwrap();
    let good = [
        ("identity", server.user_key.as_str()),
        ("known_hosts", server.known_hosts.as_str()),
    ];
    let (_controller, repos, artifact) = ready_with_secret(&client, &ns, server.url("app"), &head, &good).await;

    let bad = [
        ("identity", server.user_key.as_str()),
        ("known_hosts", server.wrong_known_hosts.as_str()),
    ];
    let ready = break_credentials(&client, &ns, &repos, &bad).await;
    assert_eq!(ready.reason, "AuthenticationFailed");
    assert!(
        ready.message.contains("Host key verification failed"),
        "{}",
        ready.message
    );
    assert!(!ready.message.contains("PRIVATE KEY"), "{}", ready.message);
    let tree = download(&artifact).await;
    assert!(
        tree.path().join("a.yaml").exists(),
        "the last artifact is still served and verifies"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_remote_that_never_answers_times_out_after_spec_timeout() {
    let (client, ns) = cluster_namespace("timeout").await;
    // Accepts connections (the kernel does) and never answers a request.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/app.git", silent.local_addr().unwrap());
    let controller = start_source_controller(&ns);
    let repos: Api<GitRepository> = Api::namespaced(client.clone(), &ns);
    let spec = serde_json::json!({"url": url, "interval": "1m", "timeout": "2s", "ref": {"branch": "main"}});
    repos
        .create(&PostParams::default(), &git_repository("app", spec))
        .await
        .unwrap();
    let ready = eventually(Duration::from_secs(30), "Ready=False after the timeout", || async {
        ready_condition(&repos, "app").await.filter(|r| r.status == "False")
    })
    .await;
    assert_eq!(
        ready.reason,
        "FetchTimeout",
        "{}; logs:\n{}",
        ready.message,
        controller.process.logs()
    );
    assert!(ready.message.contains("timed out after 2s"), "{}", ready.message);
    drop(silent);
    delete_namespace(&client, &ns).await;
}
