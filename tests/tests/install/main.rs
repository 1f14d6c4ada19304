//! Eddy installed the way a platform team installs it: the images `cargo xtask images` builds, and
//! the install manifests of `manifests/` applied to the local control plane, with every controller
//! running as a container of its image on the stand-in node (see `eddy_tests::standin_node`).
//!
//! Its own test binary, run after the others (cargo runs test binaries one at a time): the
//! installed controllers watch every namespace, so they must not meet the other tests' objects.
//! The tests here install into `eddy-system` and take turns through [`INSTALL`].

mod bootstrap;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use eddy_tests::git::GitHttpServer;
use eddy_tests::registry::Registry;
use eddy_tests::standin_node::{self, StandInNode};
use eddy_tests::webhook::WebhookServer;
use eddy_tests::{cluster, create, delete_namespace, eventually, namespace, repo_root, workspace_binary};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Tests that install into `eddy-system` hold this while they run.
static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CONTROLLERS: [&str; 4] = [
    "source-controller",
    "apply-controller",
    "notify-controller",
    "progressive-controller",
];

/// `manifests/` rendered by `eddy build`, as documents.
fn render_with_eddy(dir: &Path) -> Vec<Value> {
    let output = Command::new(workspace_binary("eddy"))
        .arg("build")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "eddy build: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    documents(&String::from_utf8(output.stdout).unwrap())
}

fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .expect("rendered YAML parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn kubectl() -> Command {
    let root = repo_root();
    let mut command = Command::new(root.join(".cache/cluster/bin/kubectl"));
    command.arg(format!("--kubeconfig={}", eddy_tests::kubeconfig_path().display()));
    command
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn the_install_manifests_render_alike_with_eddy_and_kubectl() {
    let dir = repo_root().join("manifests");
    let ours = render_with_eddy(&dir);
    let output = kubectl().arg("kustomize").arg(&dir).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let theirs = documents(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(
            a, b,
            "eddy build and kubectl kustomize differ on {} {}",
            a["kind"], a["metadata"]["name"]
        );
    }
    // Everything lands in eddy-system, and the images come from the one images: list.
    for object in &ours {
        if object["kind"] != "Namespace" && object["metadata"]["namespace"].is_string() {
            assert_eq!(
                object["metadata"]["namespace"], "eddy-system",
                "{}",
                object["metadata"]["name"]
            );
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    for name in CONTROLLERS {
        let deployment = ours
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("ghcr.io/eddy-dev/{name}:v{version}")
        );
    }
}

#[tokio::test]
#[ignore = "needs the images (scripts/test builds them)"]
async fn images_are_reproducible_run_as_containers_and_push_to_a_registry() {
    let binaries = repo_root().join(".cache/images/target/x86_64-unknown-linux-gnu/image-check");
    let xtask = workspace_binary("xtask");
    let build = |out: &Path, push: Option<&str>| -> String {
        let mut command = Command::new(&xtask);
        command
            .args(["images", "--binaries"])
            .arg(&binaries)
            .arg("--out")
            .arg(out)
            .args(["--tag", "test"]);
        if let Some(registry) = push {
            command.args(["--push", registry, "--insecure"]);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "xtask images: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let digests = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with("pushed"))
            .map(|l| l.split(' ').nth(1).unwrap().to_owned())
            .collect()
    };
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let once = build(first.path(), None);
    let registry = Registry::start().await.unwrap();
    let twice = build(second.path(), Some(&registry.host));
    assert_eq!(digests(&once).len(), 4, "{once}");
    assert_eq!(digests(&once), digests(&twice), "built twice from the same binaries");

    // The registry holds exactly what was built.
    let http = reqwest::Client::new();
    for (name, digest) in CONTROLLERS.iter().zip(digests(&once)) {
        let response = http
            .get(format!("http://{}/v2/{name}/manifests/test", registry.host))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name} was pushed");
        let served = response.headers()["docker-content-digest"].to_str().unwrap().to_owned();
        assert_eq!(served, digest, "{name}: the registry serves the built manifest");
    }

    // Each image runs as a container: the static binary alone, as the non-root user.
    for name in CONTROLLERS {
        let layout = first.path().join(name);
        let (ok, output) = standin_node::run_once(&layout, &["--help"]).unwrap();
        assert!(ok, "{name} --help in its container: {output}");
        assert!(output.contains("Usage:") && output.contains(name), "{name}: {output}");
        let config = standin_node::unpack(&layout, &tempfile::tempdir().unwrap().path().join("rootfs")).unwrap();
        assert_eq!(config.user, "65532:65532");
        assert!(
            config.labels["org.opencontainers.image.revision"].len() >= 40,
            "{:?}",
            config.labels
        );
        assert!(config.labels["org.opencontainers.image.source"].starts_with("https://"));
    }
    // source-controller's image carries a working ssh client for ssh Git URLs.
    let layout = first.path().join("source-controller");
    let bundle = tempfile::tempdir().unwrap();
    standin_node::unpack(&layout, &bundle.path().join("rootfs")).unwrap();
    assert!(bundle.path().join("rootfs/usr/bin/ssh").exists());
}

/// Whether ServiceAccount `account` of eddy-system may `verb` `resource` in `group`.
async fn allowed(client: &Client, account: &str, verb: &str, group: &str, resource: &str) -> bool {
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {
            "user": format!("system:serviceaccount:eddy-system:{account}"),
            "groups": ["system:serviceaccounts", "system:serviceaccounts:eddy-system", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": "default"},
        }
    }))
    .unwrap();
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await.unwrap();
    answer.status.is_some_and(|s| s.allowed)
}

/// Server-side applies `objects` with kubectl, as `kubectl apply -k` does.
fn apply(objects: &[Value]) {
    let text = objects
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    let mut child = kubectl()
        .args(["apply", "--server-side", "--field-manager=eddy-install-test", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Removes what the install created, CRDs excepted (the other tests share them).
async fn remove_install(client: &Client, objects: &[Value]) {
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if matches!(kind, "ClusterRole" | "ClusterRoleBinding") {
            let _ = kubectl().args(["delete", "--ignore-not-found", kind, name]).output();
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete("eddy-system", &DeleteParams::background()).await;
    eventually(Duration::from_secs(60), "eddy-system to be gone", || async {
        namespaces.get_opt("eddy-system").await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane and the images (scripts/test provides both)"]
async fn eddy_runs_from_its_images_with_the_manifests_flags_and_least_privilege() {
    let _turn = INSTALL.lock().await;
    let client = cluster().await;
    let objects = render_with_eddy(&repo_root().join("manifests"));
    apply(&objects);

    // The pod templates pass the namespace's restricted Pod Security level: the (KWOK) pods are
    // admitted and become available.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "eddy-system");
    for name in CONTROLLERS {
        eventually(
            Duration::from_secs(90),
            &format!("Deployment {name} available"),
            || async {
                let status = deployments.get(name).await.ok()?.status?;
                (status.available_replicas == Some(1)).then_some(())
            },
        )
        .await;
    }

    // Least privilege, as the API server decides it.
    for (account, verb, group, resource, expected) in [
        ("source-controller", "get", "", "secrets", true),
        ("source-controller", "list", "", "secrets", false),
        ("source-controller", "watch", "", "secrets", false),
        ("source-controller", "create", "", "configmaps", false),
        ("source-controller", "impersonate", "", "serviceaccounts", false),
        ("notify-controller", "patch", "source.eddy.dev", "gitrepositories", true),
        ("notify-controller", "update", "apps", "deployments", false),
        ("notify-controller", "list", "", "secrets", false),
        ("notify-controller", "impersonate", "", "serviceaccounts", false),
        ("progressive-controller", "get", "", "secrets", true),
        ("progressive-controller", "list", "", "secrets", false),
        ("progressive-controller", "patch", "apps", "deployments", true),
        ("progressive-controller", "impersonate", "", "serviceaccounts", false),
        ("apply-controller", "impersonate", "", "serviceaccounts", true),
        ("apply-controller", "watch", "apps", "deployments", true),
    ] {
        assert_eq!(
            allowed(&client, account, verb, group, resource).await,
            expected,
            "{account} may {verb} {group}/{resource}: expected {expected}"
        );
    }

    let mut node = StandInNode::start(&client, &objects).await.unwrap();
    node.wait_ready(Duration::from_secs(90)).await.unwrap();

    // A user's app, from Git, through every controller.
    let ns = namespace(&client, "installed").await;
    let git = GitHttpServer::start(None).await.unwrap();
    let repo = git.create_repo("app").unwrap();
    let commit = repo
        .commit(
            &[(
                "deploy/config.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  greeting: hello\n",
            )],
            "app",
        )
        .unwrap();
    let hook = WebhookServer::start().await.unwrap();
    let objects_in_ns = [
        json!({"apiVersion": "notify.eddy.dev/v1alpha1", "kind": "Provider", "metadata": {"name": "hook"},
               "spec": {"type": "generic", "address": hook.url("/events")}}),
        json!({"apiVersion": "notify.eddy.dev/v1alpha1", "kind": "Alert", "metadata": {"name": "all"},
               "spec": {"providerRef": {"name": "hook"}, "eventSources": [{"kind": "Kustomization", "name": "*"}]}}),
        json!({"apiVersion": "source.eddy.dev/v1alpha1", "kind": "GitRepository", "metadata": {"name": "app"},
               "spec": {"url": git.url("app"), "interval": "1h", "ref": {"branch": "main"}}}),
        json!({"apiVersion": "apply.eddy.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": "app"},
               "spec": {"sourceRef": {"kind": "GitRepository", "name": "app"}, "path": "./deploy",
                        "interval": "1h", "prune": true, "targetNamespace": ns}}),
        json!({"apiVersion": "notify.eddy.dev/v1alpha1", "kind": "Receiver", "metadata": {"name": "push"},
               "spec": {"type": "generic", "secretRef": {"name": "hook-token"},
                        "resources": [{"kind": "GitRepository", "name": "app"}]}}),
        json!({"apiVersion": "progressive.eddy.dev/v1alpha1", "kind": "MetricTemplate", "metadata": {"name": "errors"},
               "spec": {"provider": {"type": "prometheus", "address": "http://prometheus.monitoring:9090"}, "query": "vector(0)"}}),
    ];
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "hook-token"}, "stringData": {"token": "s3cret"}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    for object in objects_in_ns {
        create(&client, &ns, object).await.unwrap();
    }

    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let applied = loop {
        if let Some(found) = configmaps.get_opt("app-config").await.unwrap() {
            break found;
        }
        if std::time::Instant::now() > deadline {
            let status = kubectl()
                .args(["-n", &ns, "get", "gitrepositories,kustomizations", "-o", "yaml"])
                .output()
                .unwrap();
            panic!(
                "the app's ConfigMap was not applied in 120s\n{}\n{}",
                String::from_utf8_lossy(&status.stdout),
                node.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(applied.data.unwrap()["greeting"], "hello");

    // The artifact came through source-controller's Service address.
    let repos: Api<eddy_api::source::GitRepository> = Api::namespaced(client.clone(), &ns);
    let artifact = eventually(Duration::from_secs(30), "the artifact", || async {
        repos.get("app").await.ok()?.status?.artifact
    })
    .await;
    assert!(
        artifact
            .url
            .starts_with("http://source-controller.eddy-system.svc.cluster.local./"),
        "{}",
        artifact.url
    );
    assert!(artifact.revision.contains(&commit), "{}", artifact.revision);

    // Events went to notify-controller through its Service, and from there to the Provider.
    let events = hook.wait_for(1, Duration::from_secs(60)).await;
    let event = events[0].json();
    assert_eq!(event["involvedObject"]["kind"], "Kustomization");
    assert_eq!(event["reportingController"], "apply-controller");

    // The webhook receiver's Service takes a push and asks for a reconcile.
    let receivers: Api<eddy_api::notify::Receiver> = Api::namespaced(client.clone(), &ns);
    let path = eventually(Duration::from_secs(60), "the Receiver's path", || async {
        receivers.get("push").await.ok()?.status?.webhook_path
    })
    .await;
    let receiver = node.services["webhook-receiver.eddy-system"];
    let response = reqwest::Client::new()
        .post(format!("http://{receiver}{path}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    eventually(Duration::from_secs(30), "the reconcile request", || async {
        let repo = repos.get("app").await.ok()?;
        repo.metadata
            .annotations?
            .contains_key(eddy_api::meta::RECONCILE_REQUESTED_AT)
            .then_some(())
    })
    .await;

    // progressive-controller holds its kinds.
    let templates: Api<eddy_api::progressive::MetricTemplate> = Api::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(60), "the MetricTemplate's status", || async {
        templates
            .get("errors")
            .await
            .ok()?
            .status?
            .conditions
            .first()
            .map(|_| ())
    })
    .await;

    // The controllers took the in-cluster path, as their own ServiceAccounts.
    for name in CONTROLLERS {
        let log = node.log(name);
        assert!(!log.contains("Forbidden"), "{name} was refused something:\n{log}");
    }

    delete_namespace(&client, &ns).await;
    drop(node);
    remove_install(&client, &objects).await;
}
