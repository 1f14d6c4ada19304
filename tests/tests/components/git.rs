//! source-controller's Git layer against `git http-backend` with basic auth, OpenSSH's sshd, and
//! file:// repositories.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::AtomicBool;

use eddy_api::source::GitRepositoryRef;
use eddy_tests::git::{GitHttpServer, GitRepo, HttpAuth, SshServer};
use source_controller::git::{Credentials, GitError, SshFiles, checkout, resolve};

fn branch(name: &str) -> GitRepositoryRef {
    GitRepositoryRef {
        branch: Some(name.into()),
        ..Default::default()
    }
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials {
        basic: Some((user.into(), password.into())),
        ..Default::default()
    }
}

fn ssh_credentials(dir: &std::path::Path, key: &str, known_hosts: &str) -> Credentials {
    let identity = dir.join("identity");
    std::fs::write(&identity, key).unwrap();
    std::fs::set_permissions(&identity, std::fs::Permissions::from_mode(0o600)).unwrap();
    let hosts = dir.join("known_hosts");
    std::fs::write(&hosts, known_hosts).unwrap();
    Credentials {
        ssh: Some(SshFiles {
            identity,
            known_hosts: hosts,
            log: dir.join("ssh.log"),
        }),
        ..Default::default()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn checked_out(
    url: &str,
    reference: GitRepositoryRef,
    credentials: Credentials,
) -> (tempfile::TempDir, String, String) {
    let head = resolve(url, &reference, &credentials, 30).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let commit = checkout(url, &head, &credentials, 30, &work, &AtomicBool::new(false)).unwrap();
    (dir, head.revision, commit)
}

#[tokio::test]
async fn http_with_basic_auth_resolves_and_checks_out_the_branch_head() {
    let server = GitHttpServer::start(Some(("git", "hunter2"))).await.unwrap();
    let repo = server.create_repo("app").unwrap();
    repo.commit(&[("deploy/app.yaml", "kind: Deployment\n")], "first")
        .unwrap();
    let second = repo
        .commit(&[("deploy/service.yaml", "kind: Service\n")], "second")
        .unwrap();
    let url = server.url("app");

    let (dir, revision, commit) = blocking(move || checked_out(&url, branch("main"), basic("git", "hunter2"))).await;
    assert_eq!(revision, format!("main@sha1:{second}"));
    assert_eq!(commit, second);
    let work = dir.path().join("work");
    assert_eq!(
        std::fs::read_to_string(work.join("deploy/service.yaml")).unwrap(),
        "kind: Service\n"
    );
    let shallow = eddy_tests::git::git(&work, &["rev-list", "--count", "HEAD"]).unwrap();
    assert_eq!(shallow, "1", "the fetch is shallow");
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_that_does_not_show_it() {
    let server = GitHttpServer::start(Some(("git", "hunter2"))).await.unwrap();
    server
        .create_repo("app")
        .unwrap()
        .commit(&[("a.yaml", "a: 1\n")], "first")
        .unwrap();
    let url = server.url("app");
    let err = blocking(move || resolve(&url, &branch("main"), &basic("git", "wrong-password-42"), 30))
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::Authentication { .. }), "{err}");
    let message = err.to_string();
    assert!(!message.contains("wrong-password-42"), "{message}");
    assert!(message.contains("127.0.0.1"), "the message names the remote: {message}");
}

#[tokio::test]
async fn unknown_branch_is_reported_by_name() {
    let server = GitHttpServer::start(None).await.unwrap();
    server
        .create_repo("app")
        .unwrap()
        .commit(&[("a.yaml", "a: 1\n")], "first")
        .unwrap();
    let url = server.url("app");
    let err = blocking(move || resolve(&url, &branch("release-9"), &Credentials::default(), 30))
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::RefNotFound { .. }));
    assert!(err.to_string().contains("branch \"release-9\" not found"), "{err}");
}

#[tokio::test]
async fn semver_picks_the_highest_tag_and_moves_when_a_higher_one_is_pushed() {
    let server = GitHttpServer::start(None).await.unwrap();
    let repo = server.create_repo("app").unwrap();
    let mut commits = Vec::new();
    for version in ["v1.0.0", "v1.1.0", "v2.0.0"] {
        commits.push(repo.commit(&[("version.txt", version)], version).unwrap());
        repo.tag(version).unwrap();
    }
    let range = GitRepositoryRef {
        semver: Some(">=1.0.0 <2.0.0".into()),
        ..Default::default()
    };
    let url = server.url("app");
    let (u, r) = (url.clone(), range.clone());
    let (dir, revision, _) = blocking(move || checked_out(&u, r, Credentials::default())).await;
    assert_eq!(revision, format!("v1.1.0@sha1:{}", commits[1]));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("work/version.txt")).unwrap(),
        "v1.1.0"
    );

    let newer = repo.commit(&[("version.txt", "v1.2.0")], "v1.2.0").unwrap();
    repo.tag("v1.2.0").unwrap();
    let head = blocking(move || resolve(&url, &range, &Credentials::default(), 30))
        .await
        .unwrap();
    assert_eq!(head.revision, format!("v1.2.0@sha1:{newer}"));
}

#[tokio::test]
async fn a_commit_reference_checks_out_that_commit() {
    let server = GitHttpServer::start(None).await.unwrap();
    let repo = server.create_repo("app").unwrap();
    let first = repo.commit(&[("a.yaml", "a: 1\n")], "first").unwrap();
    repo.commit(&[("a.yaml", "a: 2\n")], "second").unwrap();
    let reference = GitRepositoryRef {
        commit: Some(first.clone()),
        ..Default::default()
    };
    let url = server.url("app");
    let (dir, revision, commit) = blocking(move || checked_out(&url, reference, Credentials::default())).await;
    assert_eq!(revision, format!("sha1:{first}"));
    assert_eq!(commit, first);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("work/a.yaml")).unwrap(),
        "a: 1\n"
    );
}

#[tokio::test]
async fn file_urls_work_for_local_repositories() {
    let root = tempfile::tempdir().unwrap();
    let repo = GitRepo::create(root.path(), "local").unwrap();
    let head = repo.commit(&[("a.yaml", "a: 1\n")], "first").unwrap();
    let url = format!("file://{}", repo.bare.display());
    let (_dir, revision, _) = blocking(move || checked_out(&url, branch("main"), Credentials::default())).await;
    assert_eq!(revision, format!("main@sha1:{head}"));
}

#[tokio::test]
async fn ssh_with_the_right_host_key_fetches_and_a_wrong_host_key_is_refused() {
    let server = SshServer::start().await.unwrap();
    let repo = server.create_repo("app").unwrap();
    let head = repo.commit(&[("a.yaml", "a: 1\n")], "first").unwrap();
    let keys = tempfile::tempdir().unwrap();

    let good = ssh_credentials(keys.path(), &server.user_key, &server.known_hosts);
    let url = server.url("app");
    let (_dir, revision, _) = blocking(move || checked_out(&url, branch("main"), good)).await;
    assert_eq!(revision, format!("main@sha1:{head}"));

    let bad_dir = tempfile::tempdir().unwrap();
    let bad = ssh_credentials(bad_dir.path(), &server.user_key, &server.wrong_known_hosts);
    let url = server.url("app");
    let err = blocking(move || resolve(&url, &branch("main"), &bad, 30))
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::Authentication { .. }), "{err}");
    assert!(err.to_string().contains("Host key verification failed"), "{err}");
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
}

#[tokio::test]
async fn a_bearer_token_authenticates_and_a_wrong_one_is_refused() {
    let server = GitHttpServer::start_with(HttpAuth::Bearer("t0ken-abc".into()))
        .await
        .unwrap();
    let head = server
        .create_repo("app")
        .unwrap()
        .commit(&[("a.yaml", "a: 1\n")], "first")
        .unwrap();
    let bearer = |token: &str| Credentials {
        bearer: Some(token.into()),
        ..Default::default()
    };
    let (url, good) = (server.url("app"), bearer("t0ken-abc"));
    let (_dir, revision, _) = blocking(move || checked_out(&url, branch("main"), good)).await;
    assert_eq!(revision, format!("main@sha1:{head}"));
    let (url, bad) = (server.url("app"), bearer("wrong-t0ken"));
    let err = blocking(move || resolve(&url, &branch("main"), &bad, 30))
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::Authentication { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-t0ken"), "{err}");
}

#[tokio::test]
async fn a_full_reference_name_is_fetched_with_its_full_name_as_revision() {
    let server = GitHttpServer::start(None).await.unwrap();
    let repo = server.create_repo("app").unwrap();
    repo.commit(&[("a.yaml", "a: 1\n")], "main").unwrap();
    let pr = repo.commit(&[("a.yaml", "a: 2\n")], "pull request").unwrap();
    repo.push_ref("refs/pull/1/head").unwrap();
    let reference = GitRepositoryRef {
        name: Some("refs/pull/1/head".into()),
        ..Default::default()
    };
    let url = server.url("app");
    let (dir, revision, _) = blocking(move || checked_out(&url, reference, Credentials::default())).await;
    assert_eq!(revision, format!("refs/pull/1/head@sha1:{pr}"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("work/a.yaml")).unwrap(),
        "a: 2\n"
    );
}
