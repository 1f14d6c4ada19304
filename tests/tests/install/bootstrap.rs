//! `eddy bootstrap git` from an empty repository on the local Git servers (smart HTTP with basic
//! auth, and OpenSSH), into the local control plane, with the controllers it installs running as
//! containers of their images on a stand-in node that follows the cluster's Deployments. Then
//! Eddy manages itself and the apps from Git: an app commit, a change of Eddy's own manifests
//! (a controller's flag), a second bootstrap that changes nothing, and an uninstall that leaves a
//! clean cluster.

use std::path::Path;
use std::time::Duration;

use eddy_api::apply::Kustomization;
use eddy_api::source::GitRepository;
use eddy_tests::git::{GitHttpServer, GitRepo, SshServer, git};
use eddy_tests::standin_node::{FollowingNode, StandInNode};
use eddy_tests::{cluster, eventually, kubeconfig_path, workspace_binary};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::INSTALL;

const NAMESPACE: &str = "eddy-system";
const PATH: &str = "clusters/dev";

/// Runs `eddy` with the local control plane's kubeconfig; its exit status and output.
async fn eddy(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = tokio::process::Command::new(workspace_binary("eddy"))
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("running eddy");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// An Eddy left in the cluster by an earlier, failed run goes first.
async fn uninstall_leftovers(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(NAMESPACE).await.unwrap().is_some() {
        let (ok, output) = eddy(&["uninstall", "--silent"], &[]).await;
        assert!(ok, "removing an earlier Eddy: {output}");
    }
}

/// Runs the bootstrap; on failure, panics with its output and the controllers' logs.
async fn bootstrap(node: &FollowingNode, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec![
        "bootstrap",
        "git",
        "--branch",
        "main",
        "--path",
        PATH,
        "--silent",
        "--timeout",
        "3m",
    ];
    all.extend_from_slice(args);
    let (ok, output) = eddy(&all, env).await;
    assert!(ok, "eddy bootstrap git failed:\n{output}\n{}", node.logs().await);
    output
}

/// Runs a bootstrap that must fail before installing anything; its output.
async fn refused_bootstrap(client: &Client, args: &[&str]) -> String {
    let mut all = vec!["bootstrap", "git", "--path", PATH, "--silent"];
    all.extend_from_slice(args);
    let (ok, output) = eddy(&all, &[]).await;
    assert!(!ok, "the bootstrap was expected to fail:\n{output}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces.get_opt(NAMESPACE).await.unwrap().is_none(),
        "a refused bootstrap installed something:\n{output}"
    );
    output
}

/// The files bootstrap committed, and how many commits the branch has.
fn committed(repo: &GitRepo) -> (Vec<String>, usize) {
    repo.pull().unwrap();
    let files = git(repo.work(), &["ls-files"]).unwrap();
    let count = git(repo.work(), &["rev-list", "--count", "HEAD"]).unwrap();
    (files.lines().map(str::to_owned).collect(), count.parse().unwrap())
}

fn head(bare: &Path) -> String {
    git(bare, &["rev-parse", "refs/heads/main"]).unwrap()
}

/// Waits until the Kustomization `eddy-system` has applied `commit` and is Ready.
async fn synced(client: &Client, node: &FollowingNode, commit: &str) {
    let kustomizations: Api<Kustomization> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let status = kustomizations.get(NAMESPACE).await.ok().and_then(|k| k.status);
        let applied = status
            .as_ref()
            .and_then(|s| s.last_applied_revision.clone())
            .unwrap_or_default();
        let ready = status
            .as_ref()
            .and_then(|s| eddy_api::conditions::get(&s.conditions, eddy_api::conditions::READY).cloned());
        if applied.contains(commit) && ready.as_ref().is_some_and(|c| c.status == "True") {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "Kustomization {NAMESPACE} did not apply {commit} in 120s (applied {applied:?}, Ready {ready:?})\n{}",
                node.logs().await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What a clean cluster means after `eddy uninstall`: no namespace, no cluster-wide RBAC of
/// Eddy's, no Eddy finalizer left on any object; CRDs as asked.
async fn assert_uninstalled(client: &Client, crds_kept: bool) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(NAMESPACE).await.unwrap().is_none());
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let left: Vec<String> = roles
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .filter(|n| n.starts_with("eddy-"))
        .collect();
    assert!(left.is_empty(), "ClusterRoles left: {left:?}");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let eddy_crds: Vec<CustomResourceDefinition> = crds
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| c.spec.group.ends_with(".eddy.dev"))
        .collect();
    if !crds_kept {
        // Deleting a CRD takes a moment (its objects go first).
        eventually(Duration::from_secs(60), "Eddy's CRDs to be gone", || async {
            let left = crds.list(&ListParams::default()).await.ok()?.items;
            (!left.iter().any(|c| c.spec.group.ends_with(".eddy.dev"))).then_some(())
        })
        .await;
        return;
    }
    assert_eq!(eddy_crds.len(), 8, "the CRDs are kept without --crds");
    let mut held = holding_a_finalizer::<GitRepository>(client).await;
    held.extend(holding_a_finalizer::<Kustomization>(client).await);
    assert!(held.is_empty(), "objects keep an Eddy finalizer: {held:?}");
}

/// `kind namespace/name` of every object of `K` that still carries an Eddy finalizer.
async fn holding_a_finalizer<K>(client: &Client) -> Vec<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|o| o.finalizers().iter().any(|f| f.contains("eddy.dev")))
        .map(|o| {
            format!(
                "{} {}/{}",
                K::kind(&()),
                o.namespace().unwrap_or_default(),
                o.name_any()
            )
        })
        .collect()
}

const APP: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bootstrapped-app\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n  namespace: bootstrapped-app\ndata:\n  text: hello from Git\n";

/// A patch of Eddy's own manifests, kept in the kustomization bootstrap writes once.
const FLAG_PATCH: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - components.yaml\n  - sync.yaml\npatches:\n  - target:\n      kind: Deployment\n      name: apply-controller\n    patch: |\n      - op: add\n        path: /spec/template/spec/containers/0/args/-\n        value: --concurrent=2\n";

#[tokio::test]
#[ignore = "needs the local control plane and the images (scripts/test provides both)"]
async fn bootstrap_over_http_makes_eddy_manage_itself_and_the_apps_from_git() {
    let _turn = INSTALL.lock().await;
    let client = cluster().await;
    uninstall_leftovers(&client).await;
    let server = GitHttpServer::start(Some(("fleet", "fleet-token-5f3a"))).await.unwrap();
    let repo = server.create_repo("fleet").unwrap();
    let url = server.url("fleet");
    let node = StandInNode::follow(client.clone(), NAMESPACE).unwrap();
    let credentials = [
        ("EDDY_GIT_USERNAME", "fleet"),
        ("EDDY_GIT_PASSWORD", "fleet-token-5f3a"),
    ];

    // From an empty repository to a self-managing Eddy.
    let output = bootstrap(&node, &["--url", &url, "--interval", "5s"], &credentials).await;
    assert!(!output.contains("fleet-token-5f3a"), "the token was printed:\n{output}");
    let (files, commits) = committed(&repo);
    for file in ["components.yaml", "kustomization.yaml", "sync.yaml"] {
        assert!(
            files.contains(&format!("{PATH}/{NAMESPACE}/{file}")),
            "{file} was not committed: {files:?}"
        );
    }
    assert_eq!(commits, 2, "one commit for the components, one for the sync manifests");
    let tree = git(repo.work(), &["grep", "-c", "fleet-token-5f3a"]);
    assert!(tree.is_err(), "the token reached the repository: {tree:?}");
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get(NAMESPACE)
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["username"].0, b"fleet");
    assert_eq!(data["password"].0, b"fleet-token-5f3a");
    let first = head(&repo.bare);
    synced(&client, &node, &first).await;
    let sources: Api<GitRepository> = Api::namespaced(client.clone(), NAMESPACE);
    let source = sources.get(NAMESPACE).await.unwrap();
    assert_eq!(source.spec.secret_ref.unwrap().name, NAMESPACE);
    assert!(
        source
            .status
            .unwrap()
            .artifact
            .unwrap()
            .url
            .starts_with("http://source-controller.eddy-system.svc"),
        "the artifact is served through source-controller's Service"
    );
    assert_eq!(node.starts("apply-controller").await, 1);

    // An app, committed beside Eddy, is applied by Eddy.
    let app_commit = repo
        .commit(&[(&format!("{PATH}/apps/hello.yaml"), APP)], "hello")
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "bootstrapped-app");
    eventually(Duration::from_secs(60), "the app's ConfigMap from Git", || async {
        configmaps.get_opt("greeting").await.ok()?
    })
    .await;
    synced(&client, &node, &app_commit).await;

    // A change of Eddy's own manifests: apply-controller applies its own Deployment, and the
    // controller comes back with the new flag; nothing of Eddy's is pruned on the way.
    let flag_commit = repo
        .commit(
            &[(&format!("{PATH}/{NAMESPACE}/kustomization.yaml"), FLAG_PATCH)],
            "apply-controller: two workers",
        )
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !node
        .args("apply-controller")
        .await
        .is_some_and(|args| args.iter().any(|a| a == "--concurrent=2"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "apply-controller was not restarted with --concurrent=2\n{}",
            node.logs().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    synced(&client, &node, &flag_commit).await;
    assert_eq!(node.starts("apply-controller").await, 2, "one rollout, no restart loop");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let gitrepositories = crds.get("gitrepositories.source.eddy.dev").await.unwrap();
    assert!(gitrepositories.metadata.deletion_timestamp.is_none());
    let namespace = Api::<Namespace>::all(client.clone()).get(NAMESPACE).await.unwrap();
    assert!(namespace.metadata.deletion_timestamp.is_none());
    assert!(configmaps.get_opt("greeting").await.unwrap().is_some());

    // A second bootstrap changes nothing: no commit, the cluster's patch kept.
    let before = head(&repo.bare);
    let output = bootstrap(&node, &["--url", &url, "--interval", "5s"], &credentials).await;
    assert!(output.contains("components in Git are up to date"), "{output}");
    assert!(output.contains("sync manifests in Git are up to date"), "{output}");
    assert_eq!(head(&repo.bare), before, "a second bootstrap committed:\n{output}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        node.starts("apply-controller").await,
        2,
        "a second bootstrap restarted apply-controller"
    );
    assert!(
        node.args("apply-controller")
            .await
            .is_some_and(|args| args.iter().any(|a| a == "--concurrent=2"))
    );

    // Eddy's namespace and CRDs are protected from pruning: a commit that removes the Namespace
    // and a CRD from components.yaml leaves both in the cluster (and out of the inventory).
    repo.pull().unwrap();
    let components_path = format!("{PATH}/{NAMESPACE}/components.yaml");
    let components = std::fs::read_to_string(repo.work().join(&components_path)).unwrap();
    let kept: Vec<&str> = components
        .split("\n---\n")
        .filter(|doc| !doc.lines().any(|l| l == "kind: Namespace"))
        .filter(|doc| !doc.lines().any(|l| l == "  name: canaries.progressive.eddy.dev"))
        .collect();
    assert_eq!(
        kept.len() + 2,
        components.split("\n---\n").count(),
        "the Namespace and one CRD removed"
    );
    let prune_commit = repo
        .commit(
            &[(&components_path, &kept.join("\n---\n"))],
            "remove the namespace and a CRD from Git",
        )
        .unwrap();
    synced(&client, &node, &prune_commit).await;
    let kustomization = Api::<Kustomization>::namespaced(client.clone(), NAMESPACE)
        .get(NAMESPACE)
        .await
        .unwrap();
    let inventory = serde_json::to_string(&kustomization.status.unwrap().inventory).unwrap();
    assert!(!inventory.contains("canaries.progressive.eddy.dev"), "{inventory}");
    let canaries = crds.get("canaries.progressive.eddy.dev").await.unwrap();
    assert!(
        canaries.metadata.deletion_timestamp.is_none(),
        "a protected CRD was pruned"
    );
    let namespace = Api::<Namespace>::all(client.clone()).get(NAMESPACE).await.unwrap();
    assert!(
        namespace.metadata.deletion_timestamp.is_none(),
        "Eddy's namespace was pruned"
    );
    assert_eq!(node.running().await.len(), 4, "the controllers kept running");

    // Uninstall: the controllers go first (the Kustomization that applies them is suspended, or
    // apply-controller would put them back), then every trace but the CRDs and the app.
    let (ok, output) = eddy(&["uninstall", "--silent"], &[]).await;
    assert!(ok, "eddy uninstall: {output}\n{}", node.logs().await);
    assert!(output.contains("suspended"), "{output}");
    assert_uninstalled(&client, true).await;
    assert!(node.running().await.is_empty(), "containers still running");
    assert!(
        configmaps.get_opt("greeting").await.unwrap().is_some(),
        "uninstall deleted an app"
    );
    let _ = Api::<Namespace>::all(client.clone())
        .delete("bootstrapped-app", &Default::default())
        .await;
    node.stop().await;
}

#[tokio::test]
#[ignore = "needs the local control plane and the images (scripts/test provides both)"]
async fn bootstrap_over_ssh_with_a_key_and_pinned_host_keys() {
    let _turn = INSTALL.lock().await;
    let client = cluster().await;
    uninstall_leftovers(&client).await;
    let server = SshServer::start().await.unwrap();
    let repo = server.create_repo("fleet").unwrap();
    let url = server.url("fleet");
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("identity");
    std::fs::write(&key, &server.user_key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let known_hosts = keys.path().join("known_hosts");
    std::fs::write(&known_hosts, &server.known_hosts).unwrap();

    // Without a key, bootstrap makes an ed25519 deploy key and prints its public half; this
    // one is not authorised on the server, so the clone is refused and nothing is installed.
    let output = refused_bootstrap(
        &client,
        &["--url", &url, "--known-hosts", known_hosts.to_str().unwrap()],
    )
    .await;
    assert!(output.contains("add it with write access"), "{output}");
    assert!(
        output.lines().any(|l| l.starts_with("ssh-ed25519 ")),
        "no public key printed:\n{output}"
    );
    assert!(!output.contains("PRIVATE KEY"), "the private key was printed");

    // A host key that is not the pinned one stops the bootstrap before anything is written.
    let wrong = keys.path().join("wrong_known_hosts");
    std::fs::write(&wrong, &server.wrong_known_hosts).unwrap();
    refused_bootstrap(
        &client,
        &[
            "--url",
            &url,
            "--private-key-file",
            key.to_str().unwrap(),
            "--known-hosts",
            wrong.to_str().unwrap(),
        ],
    )
    .await;

    let node = StandInNode::follow(client.clone(), NAMESPACE).unwrap();
    bootstrap(
        &node,
        &[
            "--url",
            &url,
            "--private-key-file",
            key.to_str().unwrap(),
            "--known-hosts",
            known_hosts.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let (files, commits) = committed(&repo);
    assert!(files.contains(&format!("{PATH}/{NAMESPACE}/sync.yaml")), "{files:?}");
    assert_eq!(commits, 2);
    // source-controller fetched over ssh, from its container, with the Secret's key.
    synced(&client, &node, &head(&repo.bare)).await;
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get(NAMESPACE)
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["identity"].0, server.user_key.as_bytes());
    assert_eq!(data["known_hosts"].0, server.known_hosts.as_bytes());
    let sources: Api<GitRepository> = Api::namespaced(client.clone(), NAMESPACE);
    assert_eq!(sources.get(NAMESPACE).await.unwrap().spec.url, url);

    // Uninstall with --crds: nothing of Eddy is left.
    let (ok, output) = eddy(&["uninstall", "--silent", "--crds"], &[]).await;
    assert!(ok, "eddy uninstall --crds: {output}\n{}", node.logs().await);
    assert_uninstalled(&client, false).await;
    node.stop().await;
}
