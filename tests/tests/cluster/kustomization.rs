//! Kustomization end to end: a real Git server holds the manifests, source-controller and
//! apply-controller run as processes against the local control plane, and the tests look at what
//! a user would: live objects, the Kustomization's status, and its events.

use std::time::Duration;

use eddy_api::apply::Kustomization;
use eddy_api::conditions::{self, READY};
use eddy_api::source::GitRepository;
use eddy_tests::apiserver::SecondApiserver;
use eddy_tests::git::{GitHttpServer, GitRepo};
use eddy_tests::{ControllerProcess, cluster_namespace, create, delete_namespace, eventually, kubeconfig_path};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// A namespace with a Git repository, source-controller and apply-controller watching it.
pub(crate) struct Setup {
    pub(crate) client: Client,
    pub(crate) ns: String,
    pub(crate) repo: GitRepo,
    pub(crate) server: Option<GitHttpServer>,
    pub(crate) source: Option<ControllerProcess>,
    pub(crate) apply: ControllerProcess,
    /// apply-controller's arguments, to start it again.
    apply_args: Vec<String>,
    apply_kubeconfig: std::path::PathBuf,
}

impl Setup {
    /// Starts everything; `files` are the first commit; `apply_args` go to apply-controller.
    pub(crate) async fn start(prefix: &str, files: &[(&str, &str)], apply_args: &[&str]) -> Self {
        Self::start_with_kubeconfig(prefix, files, apply_args, &kubeconfig_path()).await
    }

    /// [`start`](Self::start), apply-controller reaching the cluster through `kubeconfig`.
    pub(crate) async fn start_with_kubeconfig(
        prefix: &str,
        files: &[(&str, &str)],
        apply_args: &[&str],
        kubeconfig: &std::path::Path,
    ) -> Self {
        Self::start_scoped(prefix, files, apply_args, kubeconfig, true).await
    }

    /// [`start`](Self::start) with leader election off, for tests that delete the namespace
    /// (which would take the Leases, and the controllers with them).
    pub(crate) async fn start_without_leases(prefix: &str, files: &[(&str, &str)], apply_args: &[&str]) -> Self {
        Self::start_scoped(prefix, files, apply_args, &kubeconfig_path(), false).await
    }

    async fn start_scoped(
        prefix: &str,
        files: &[(&str, &str)],
        apply_args: &[&str],
        kubeconfig: &std::path::Path,
        leases: bool,
    ) -> Self {
        let (client, ns) = cluster_namespace(prefix).await;
        let server = GitHttpServer::start(None).await.unwrap();
        let repo = server.create_repo("app").unwrap();
        repo.commit(files, "first").unwrap();
        let leader = if leases {
            format!("--leader-election-namespace={ns}")
        } else {
            "--leader-elect=false".to_owned()
        };
        let scope = [leader, format!("--watch-namespace={ns}")];
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        let source = ControllerProcess::start("source-controller", &scope).unwrap();
        let own_namespace = format!("--controller-namespace={ns}-controller");
        let mut args = scope.clone();
        args.push("--requeue-dependency=1s");
        args.push(&own_namespace);
        args.extend_from_slice(apply_args);
        let apply = ControllerProcess::start_with_kubeconfig("apply-controller", &args, kubeconfig).unwrap();
        let apply_args = args.iter().map(|a| (*a).to_owned()).collect();
        let url = server.url("app");
        let setup = Self {
            client,
            ns,
            repo,
            server: Some(server),
            source: Some(source),
            apply,
            apply_args,
            apply_kubeconfig: kubeconfig.to_owned(),
        };
        create(
            &setup.client,
            &setup.ns,
            json!({
                "apiVersion": "source.eddy.dev/v1alpha1",
                "kind": "GitRepository",
                "metadata": {"name": "app"},
                "spec": {"url": url, "interval": "2s", "ref": {"branch": "main"}},
            }),
        )
        .await
        .unwrap();
        setup
    }

    /// Stops apply-controller and starts it again with the same arguments: a new process, with
    /// nothing remembered.
    pub(crate) async fn restart_apply(&mut self) {
        let args: Vec<&str> = self.apply_args.iter().map(String::as_str).collect();
        self.apply.signal("KILL").unwrap();
        self.apply.wait_for_exit(Duration::from_secs(10)).await.unwrap();
        self.apply =
            ControllerProcess::start_with_kubeconfig("apply-controller", &args, &self.apply_kubeconfig).unwrap();
    }

    pub(crate) fn kustomizations(&self) -> Api<Kustomization> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates Kustomization `name` reading the repository, with `spec` merged over defaults.
    pub(crate) async fn create_kustomization(&self, name: &str, spec: Value) {
        let mut full = json!({
            "sourceRef": {"kind": "GitRepository", "name": "app"},
            "interval": "1m",
            // A step that fails on a loaded machine (a health check that timed out) is retried
            // soon, as a user would set it for a fast feedback loop.
            "retryInterval": "5s",
            "timeout": "30s",
            "prune": true,
        });
        merge(&mut full, spec);
        create(
            &self.client,
            &self.ns,
            json!({
                "apiVersion": "apply.eddy.dev/v1alpha1",
                "kind": "Kustomization",
                "metadata": {"name": name},
                "spec": full,
            }),
        )
        .await
        .unwrap();
    }

    /// Waits until `name` is Ready with `revision` (any when `None`) applied.
    pub(crate) async fn ready(&self, name: &str, revision: Option<&str>) -> Kustomization {
        let api = self.kustomizations();
        let what = format!("Kustomization {name} to be Ready at {revision:?}");
        self.within(Duration::from_secs(90), &what, || async {
            let ks = api.get(name).await.ok()?;
            let status = ks.status.as_ref()?;
            let ready = conditions::is_ready(&status.conditions, ks.metadata.generation);
            let at = revision.is_none_or(|r| status.last_applied_revision.as_deref() == Some(r));
            (ready && at).then_some(ks)
        })
        .await
    }

    /// Waits until Ready of `name` is False with `reason`, and returns its message.
    pub(crate) async fn failed(&self, name: &str, reason: &str) -> String {
        let api = self.kustomizations();
        let what = format!("Kustomization {name} to be Ready=False with reason {reason}");
        self.within(Duration::from_secs(90), &what, || async {
            let ks = api.get(name).await.ok()?;
            let ready = conditions::get(&ks.status?.conditions, READY)?.clone();
            (ready.status == "False" && ready.reason == reason).then_some(ready.message)
        })
        .await
    }

    /// [`eventually`], with both controllers' logs in the panic message.
    pub(crate) async fn within<T, F, Fut>(&self, limit: Duration, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        match tokio::time::timeout(limit, eventually(limit, what, check)).await {
            Ok(found) => found,
            Err(_) => panic!(
                "timed out waiting for {what}\n--- apply-controller:\n{}\n--- source-controller:\n{}",
                self.apply.logs(),
                self.source.as_ref().map(ControllerProcess::logs).unwrap_or_default()
            ),
        }
    }

    /// Commits `files` and returns the revision the Kustomization will report.
    pub(crate) fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        format!("main@sha1:{}", self.repo.commit(files, message).unwrap())
    }

    /// Asks for a reconcile now.
    pub(crate) async fn request_reconcile(&self, name: &str) {
        let stamp = format!("{:?}", std::time::SystemTime::now());
        let patch = json!({"metadata": {"annotations": {"reconcile.eddy.dev/requestedAt": stamp}}});
        self.kustomizations()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// The messages of the events on Kustomization `name`.
    pub(crate) async fn events(&self, name: &str) -> Vec<(String, String)> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let list = events
            .list(&ListParams::default().fields(&format!("regarding.name={name},regarding.kind=Kustomization")))
            .await
            .unwrap();
        list.items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Waits for an event on Kustomization `name` that `matches` (reason, note).
    pub(crate) async fn event(&self, name: &str, matches: impl Fn(&str, &str) -> bool) {
        let what = format!("an event on Kustomization {name}");
        self.within(Duration::from_secs(30), &what, || async {
            let events = self.events(name).await;
            events.iter().any(|(reason, note)| matches(reason, note)).then_some(())
        })
        .await;
    }

    /// Deletes the Kustomizations and the GitRepository while the controllers still run (so
    /// that their finalizers are handled), then the namespace; the controllers stop on drop.
    pub(crate) async fn finish(self) {
        let params = kube::api::DeleteParams::default();
        let kustomizations = self.kustomizations();
        let _ = kustomizations.delete_collection(&params, &ListParams::default()).await;
        let sources: Api<GitRepository> = Api::namespaced(self.client.clone(), &self.ns);
        let _ = sources.delete_collection(&params, &ListParams::default()).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let left = kustomizations
                    .list(&ListParams::default())
                    .await
                    .map(|l| l.items.len())
                    .unwrap_or(0)
                    + sources
                        .list(&ListParams::default())
                        .await
                        .map(|l| l.items.len())
                        .unwrap_or(0);
                if left == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        delete_namespace(&self.client, &self.ns).await;
    }
}

/// The ids of the Kustomization's inventory, `<namespace>_<name>_<group>_<kind>`.
pub(crate) fn inventory_ids(ks: &Kustomization) -> Vec<String> {
    let inventory = ks.status.as_ref().and_then(|s| s.inventory.as_ref());
    inventory
        .map(|i| i.entries.iter().map(|e| e.id.clone()).collect())
        .unwrap_or_default()
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

pub(crate) fn config_map(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{data}\"\n")
}

pub(crate) fn deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: app
          image: {image}
"
    )
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn commits_create_update_and_prune_objects() {
    let setup = Setup::start(
        "ks-lifecycle",
        &[
            ("deploy/a.yaml", &config_map("a", "one")),
            ("deploy/b.yaml", &config_map("b", "one")),
        ],
        &[],
    )
    .await;
    setup
        .create_kustomization("app", json!({"path": "./deploy", "targetNamespace": setup.ns}))
        .await;
    let ks = setup.ready("app", None).await;
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &setup.ns);
    let a = maps.get("a").await.unwrap();
    assert_eq!(a.data.unwrap()["value"], "one");
    let labels = a.metadata.labels.unwrap();
    assert_eq!(labels["apply.eddy.dev/name"], "app");
    assert_eq!(labels["apply.eddy.dev/namespace"], setup.ns);
    let inventory = inventory_ids(&ks);
    assert_eq!(
        inventory,
        [
            format!("{}_a__ConfigMap", setup.ns),
            format!("{}_b__ConfigMap", setup.ns)
        ]
    );

    // Change a, delete b, add c.
    std::fs::remove_file(setup.repo.work().join("deploy/b.yaml")).unwrap();
    let revision = setup.commit(
        &[
            ("deploy/a.yaml", &config_map("a", "two")),
            ("deploy/c.yaml", &config_map("c", "one")),
        ],
        "second",
    );
    let ks = setup.ready("app", Some(&revision)).await;
    assert_eq!(maps.get("a").await.unwrap().data.unwrap()["value"], "two");
    assert!(
        maps.get_opt("b").await.unwrap().is_none(),
        "b left the source and was pruned"
    );
    assert!(maps.get_opt("c").await.unwrap().is_some());
    let inventory = inventory_ids(&ks);
    assert_eq!(
        inventory,
        [
            format!("{}_a__ConfigMap", setup.ns),
            format!("{}_c__ConfigMap", setup.ns)
        ]
    );
    let deleted = format!("ConfigMap/{}/b deleted", setup.ns);
    let configured = format!("ConfigMap/{}/a configured", setup.ns);
    setup
        .event("app", |reason, note| {
            reason == "ReconciliationSucceeded" && note.contains(&deleted) && note.contains(&configured)
        })
        .await;
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn kubectl_edits_are_corrected_and_reported_with_the_manager() {
    let setup = Setup::start(
        "ks-drift",
        &[("app/web.yaml", &deployment("web", 2, "nginx:1.27"))],
        &[],
    )
    .await;
    setup
        .create_kustomization("app", json!({"path": "./app", "targetNamespace": setup.ns}))
        .await;
    setup.ready("app", None).await;
    let deployments: Api<Deployment> = Api::namespaced(setup.client.clone(), &setup.ns);
    kubectl_edit_replicas(&deployments, "web", 5).await;
    setup.request_reconcile("app").await;
    // The replicas are put back by the apply; the status that reports it is written when the
    // reconcile ends, a moment later.
    let drift = setup
        .within(
            Duration::from_secs(60),
            "the replicas to be put back and reported",
            || async {
                let replicas = deployments.get("web").await.ok()?.spec?.replicas?;
                let drift = setup.kustomizations().get("app").await.ok()?.status?.drift;
                (replicas == 2 && !drift.is_empty()).then_some(drift)
            },
        )
        .await;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].object, format!("Deployment/{}/web", setup.ns));
    assert_eq!(drift[0].fields, ["/spec/replicas"]);
    assert_eq!(drift[0].managers, ["kubectl-edit"]);
    assert!(drift[0].corrected);
    setup
        .event("app", |reason, note| {
            reason == "DriftDetected"
                && note.contains("/spec/replicas")
                && note.contains("kubectl-edit")
                && note.contains("corrected")
        })
        .await;
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn report_only_mode_leaves_the_drift_and_reports_it() {
    let setup = Setup::start(
        "ks-report",
        &[("app/web.yaml", &deployment("web", 2, "nginx:1.27"))],
        &[],
    )
    .await;
    setup
        .create_kustomization(
            "app",
            json!({"path": "./app", "targetNamespace": setup.ns, "driftDetection": {"mode": "Report"}}),
        )
        .await;
    setup.ready("app", None).await;
    let deployments: Api<Deployment> = Api::namespaced(setup.client.clone(), &setup.ns);
    kubectl_edit_replicas(&deployments, "web", 5).await;
    setup.request_reconcile("app").await;
    let api = setup.kustomizations();
    let drift = setup
        .within(Duration::from_secs(60), "the drift to be reported", || async {
            let drift = api.get("app").await.ok()?.status?.drift;
            (!drift.is_empty()).then_some(drift)
        })
        .await;
    assert_eq!(drift[0].fields, ["/spec/replicas"]);
    assert_eq!(drift[0].managers, ["kubectl-edit"]);
    assert!(!drift[0].corrected);
    assert_eq!(deployments.get("web").await.unwrap().spec.unwrap().replicas, Some(5));
    setup.finish().await;
}

/// Changes `spec.replicas` the way `kubectl edit` does: an update under manager `kubectl-edit`.
pub(crate) async fn kubectl_edit_replicas(deployments: &Api<Deployment>, name: &str, replicas: i32) {
    let patch = json!({"spec": {"replicas": replicas}});
    let params = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    deployments.patch(name, &params, &Patch::Merge(&patch)).await.unwrap();
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn health_waits_for_kwok_and_names_a_workload_that_never_becomes_healthy() {
    let never = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  replicas: 1
  selector:
    matchLabels:
      app: stuck
  template:
    metadata:
      labels:
        app: stuck
    spec:
      nodeSelector:
        no-such-node: \"true\"
      containers:
        - name: app
          image: nginx:1.27
";
    let setup = Setup::start(
        "ks-health",
        &[
            ("good/web.yaml", &deployment("web", 2, "nginx:1.27")),
            ("good/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n    - port: 80\n"),
            ("bad/stuck.yaml", never),
        ],
        &[],
    )
    .await;
    setup
        .create_kustomization(
            "good",
            json!({"path": "./good", "targetNamespace": setup.ns, "wait": true}),
        )
        .await;
    setup
        .create_kustomization(
            "bad",
            json!({"path": "./bad", "targetNamespace": setup.ns, "wait": true, "timeout": "10s"}),
        )
        .await;
    setup.ready("good", None).await;
    let deployments: Api<Deployment> = Api::namespaced(setup.client.clone(), &setup.ns);
    let web = deployments.get("web").await.unwrap();
    assert_eq!(
        web.status.and_then(|s| s.available_replicas),
        Some(2),
        "Ready only once KWOK made the pods available"
    );
    let services: Api<Service> = Api::namespaced(setup.client.clone(), &setup.ns);
    assert!(services.get_opt("web").await.unwrap().is_some());

    // A health wait longer than a moment shows in the status while it lasts.
    let api = setup.kustomizations();
    let progress = setup
        .within(Duration::from_secs(30), "bad to show its apply in progress", || async {
            let ks = api.get("bad").await.ok()?;
            let status = ks.status?;
            let reconciling = conditions::get(&status.conditions, "Reconciling")?.clone();
            (reconciling.status == "True" && status.last_attempted_revision.is_some()).then_some(reconciling.message)
        })
        .await;
    assert!(progress.starts_with("applying revision main@sha1:"), "{progress}");
    let message = setup.failed("bad", "HealthCheckFailed").await;
    assert!(message.contains(&format!("Deployment/{}/stuck", setup.ns)), "{message}");
    assert!(
        !message.contains("Service/"),
        "only unhealthy objects are named: {message}"
    );
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn depends_on_orders_kustomizations() {
    let setup = Setup::start(
        "ks-deps",
        &[
            ("first/a.yaml", &config_map("first", "x")),
            ("second/b.yaml", &config_map("second", "x")),
        ],
        &[],
    )
    .await;
    setup
        .create_kustomization(
            "second",
            json!({"path": "./second", "targetNamespace": setup.ns, "dependsOn": [{"name": "first"}]}),
        )
        .await;
    let message = setup.failed("second", "DependencyNotReady").await;
    assert!(
        message.contains(&format!("Kustomization/{}/first", setup.ns)),
        "{message}"
    );
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &setup.ns);
    assert!(
        maps.get_opt("second").await.unwrap().is_none(),
        "nothing applied before the dependency"
    );
    setup
        .create_kustomization("first", json!({"path": "./first", "targetNamespace": setup.ns}))
        .await;
    setup.ready("first", None).await;
    setup.ready("second", None).await;
    let first = maps.get("first").await.unwrap().metadata.creation_timestamp.unwrap();
    let second = maps.get("second").await.unwrap().metadata.creation_timestamp.unwrap();
    assert!(first.0 <= second.0);
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_render_error_and_an_unreachable_source_keep_live_objects_and_inventory() {
    let mut setup = Setup::start("ks-keep", &[("deploy/a.yaml", &config_map("a", "one"))], &[]).await;
    setup
        .create_kustomization("app", json!({"path": "./deploy", "targetNamespace": setup.ns}))
        .await;
    let before = setup.ready("app", None).await.status.unwrap().inventory;

    // A broken kustomization: nothing pruned, inventory kept, the error names the file.
    std::fs::remove_file(setup.repo.work().join("deploy/a.yaml")).unwrap();
    setup.commit(
        &[("deploy/kustomization.yaml", "resources:\n  - missing.yaml\n")],
        "broken",
    );
    let message = setup.failed("app", "BuildFailed").await;
    assert!(message.contains("missing.yaml"), "{message}");
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &setup.ns);
    assert!(
        maps.get_opt("a").await.unwrap().is_some(),
        "a failed render prunes nothing"
    );
    let ks = setup.kustomizations().get("app").await.unwrap();
    assert_eq!(ks.status.unwrap().inventory, before);

    // The Git server goes away: the source fails to fetch but keeps its artifact, and the
    // Kustomization keeps what it applied.
    let revision = setup.commit(
        &[
            ("deploy/kustomization.yaml", "resources:\n  - b.yaml\n"),
            ("deploy/b.yaml", &config_map("b", "one")),
        ],
        "fixed",
    );
    let ks = setup.ready("app", Some(&revision)).await;
    let before = ks.status.unwrap().inventory;
    setup.server.take();
    let sources: Api<GitRepository> = Api::namespaced(setup.client.clone(), &setup.ns);
    setup
        .within(
            Duration::from_secs(60),
            "the GitRepository to fail fetching",
            || async {
                let status = sources.get("app").await.ok()?.status?;
                let ready = conditions::get(&status.conditions, READY)?;
                (ready.status == "False").then_some(())
            },
        )
        .await;
    setup.request_reconcile("app").await;
    let ks = setup.ready("app", Some(&revision)).await;
    assert_eq!(ks.status.unwrap().inventory, before);
    assert!(maps.get_opt("b").await.unwrap().is_some());

    // The artifact server goes away too, and a spec change needs a new render: the fetch
    // fails, nothing is pruned, the inventory stays.
    setup.source.take();
    let patch = json!({"spec": {"commonMetadata": {"labels": {"team": "shop"}}}});
    setup
        .kustomizations()
        .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let message = setup.failed("app", "ArtifactFailed").await;
    assert!(message.contains("artifact"), "{message}");
    assert!(maps.get_opt("b").await.unwrap().is_some());
    let ks = setup.kustomizations().get("app").await.unwrap();
    assert_eq!(ks.status.unwrap().inventory, before);
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn the_apiserver_stopped_in_the_middle_of_an_apply_converges_after_it_returns() {
    // The controller talks to an apiserver of its own, which is killed and started again; the
    // other tests keep the control plane's first apiserver.
    let mut apiserver = SecondApiserver::start(&kubeconfig_path()).await.unwrap();
    let files: Vec<(String, String)> = (0..150)
        .map(|i| (format!("deploy/cm-{i:03}.yaml"), config_map(&format!("cm-{i:03}"), "x")))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let setup = Setup::start_with_kubeconfig(
        "ks-outage",
        &files,
        // One replica without leader election: with it, losing the apiserver would also lose the
        // Lease, and the process would exit for its Deployment to restart it.
        &["--apply-concurrency=1", "--leader-elect=false"],
        apiserver.kubeconfig(),
    )
    .await;
    setup
        .create_kustomization(
            "app",
            json!({"path": "./deploy", "targetNamespace": setup.ns, "retryInterval": "2s"}),
        )
        .await;
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &setup.ns);
    let ours = ListParams::default().labels("apply.eddy.dev/name=app");
    let applied = setup
        .within(Duration::from_secs(60), "the apply to start", || async {
            let n = maps.list(&ours).await.ok()?.items.len();
            (n > 0).then_some(n)
        })
        .await;
    apiserver.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = maps.list(&ours).await.unwrap().items.len();
    assert!(
        during < 150,
        "the outage began in the middle of the apply ({applied} then {during} of 150 applied)"
    );
    apiserver.start_again().await.unwrap();
    let ks = setup.ready("app", None).await;
    assert_eq!(maps.list(&ours).await.unwrap().items.len(), 150);
    assert_eq!(ks.status.unwrap().inventory.unwrap().entries.len(), 150);
    setup.finish().await;
}
