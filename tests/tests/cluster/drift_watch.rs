//! Drift found when it happens: with an interval of an hour and no reconcile request, a change to
//! an applied object by someone else is reported and corrected within seconds, through the live
//! cache's watch; a writer that keeps changing the object back is reported as contesting it, not
//! fought in a loop. Also: a reconcile that starts from a watch copy older than the last status
//! write still prunes by the last inventory, and a Kustomization whose own spec is wrong stalls
//! instead of retrying.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use eddy_api::apply::Kustomization;
use eddy_api::conditions;
use eddy_api::source::GitRepository;
use eddy_tests::kubeconfig_path;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::kustomization::{Setup, config_map, deployment, inventory_ids};

fn replicas(deployment: &Deployment) -> Option<i32> {
    deployment.spec.as_ref()?.replicas
}

/// The control plane's own kubectl, run as a user would.
fn kubectl(args: &[&str]) {
    let kubeconfig = kubeconfig_path();
    let binary = kubeconfig.parent().unwrap().join("bin/kubectl");
    let output = Command::new(binary)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .output()
        .expect("running kubectl");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Deployment `web` (1 replica) applied by Kustomization `app`, whose interval is an hour, and
/// seen by the live cache's watch.
async fn web_applied(prefix: &str) -> Setup {
    let setup = Setup::start(prefix, &[("deploy/web.yaml", &deployment("web", 1, "nginx:1.27"))], &[]).await;
    let ns = setup.ns.clone();
    setup
        .create_kustomization(
            "app",
            json!({"path": "./deploy", "targetNamespace": ns, "interval": "1h"}),
        )
        .await;
    setup.ready("app", None).await;
    // Let the live cache's watch of Deployments deliver the applied object first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    setup
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_kubectl_scale_is_reported_and_corrected_within_seconds() {
    let setup = web_applied("drift-now").await;
    let ns = setup.ns.clone();
    let deployments: Api<Deployment> = Api::namespaced(setup.client.clone(), &ns);

    kubectl(&["-n", &ns, "scale", "deployment/web", "--replicas=3"]);
    setup
        .within(
            Duration::from_secs(5),
            "the scale to be corrected and reported",
            || async {
                let web = deployments.get("web").await.ok()?;
                let ks = setup.kustomizations().get("app").await.ok()?;
                let drift = ks.status?.drift;
                let reported = drift.iter().any(|d| {
                    d.object == format!("Deployment/{ns}/web")
                        && d.fields.contains(&"/spec/replicas".to_owned())
                        && d.managers.iter().any(|m| m.starts_with("kubectl"))
                });
                (replicas(&web) == Some(1) && reported).then_some(())
            },
        )
        .await;
    setup
        .event("app", |reason, note| {
            reason == "DriftDetected"
                && note.contains(&format!("Deployment/{ns}/web: /spec/replicas"))
                && note.contains("kubectl")
        })
        .await;
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_writer_fighting_eddy_is_reported_not_looped_on() {
    let setup = web_applied("drift-fight").await;
    let ns = setup.ns.clone();

    // Another controller that wants three replicas and sets them whenever it sees otherwise.
    let deployments: Api<Deployment> = Api::namespaced(setup.client.clone(), &ns);
    let writes = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let fighter = {
        let (deployments, writes, stop) = (deployments.clone(), writes.clone(), stop.clone());
        tokio::spawn(async move {
            let params = PatchParams {
                field_manager: Some("replica-fighter".into()),
                ..PatchParams::default()
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                if let Ok(web) = deployments.get("web").await
                    && replicas(&web) != Some(3)
                {
                    let patch = json!({"spec": {"replicas": 3}});
                    if deployments.patch("web", &params, &Patch::Merge(&patch)).await.is_ok() {
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let contested = setup
        .within(Duration::from_secs(60), "the fight to be reported", || async {
            let ks = setup.kustomizations().get("app").await.ok()?;
            let condition = conditions::get(&ks.status?.conditions, "DriftContested")?.clone();
            (condition.status == "True").then_some(condition.message)
        })
        .await;
    assert!(contested.contains(&format!("Deployment/{ns}/web")), "{contested}");
    setup
        .event("app", |reason, note| {
            reason == "DriftContested"
                && note.contains(&format!("Deployment/{ns}/web"))
                && note.contains("replica-fighter")
        })
        .await;
    // Corrections on change have stopped: the fighter's value now stays.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = writes.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let later = writes.load(Ordering::Relaxed);
    assert!(
        later - settled <= 1,
        "Eddy kept correcting: {} more writes by the fighter",
        later - settled
    );
    assert!(
        settled <= CORRECTIONS_BEFORE_A_FIGHT + 3,
        "{settled} writes before the fight was reported"
    );
    stop.store(true, Ordering::Relaxed);
    fighter.await.unwrap();
    setup.finish().await;
}

/// apply-controller's bound, as the test sees it (`apply_controller::drift_watch::FIGHT_CORRECTIONS`).
pub(crate) const CORRECTIONS_BEFORE_A_FIGHT: usize = 5;

/// apply-controller's reconcile run in this process, so that a test decides which copy of the
/// Kustomization each reconcile starts from, as the controller's watch store would hand it.
struct InProcess {
    ctx: Arc<eddy_runtime::Context>,
    shared: Arc<apply_controller::Shared>,
    sources: kube::runtime::reflector::store::Writer<GitRepository>,
}

impl InProcess {
    async fn start(setup: &Setup) -> Self {
        use clap::Parser as _;
        let flags = apply_controller::Flags::parse_from(["apply-controller", "--controller-namespace=eddy-none"]);
        let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig_path()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = setup.client.clone();
        let (events, _) = eddy_runtime::events::EventRecorder::new(
            client.clone(),
            apply_controller::NAME,
            None,
            None,
            Default::default(),
        );
        let ctx = Arc::new(eddy_runtime::Context {
            client: client.clone(),
            controller: apply_controller::NAME,
            args: flags.runtime,
            metrics: eddy_runtime::Metrics::new(apply_controller::NAME),
            events,
            shutdown: tokio_util::sync::CancellationToken::new(),
            readiness: Default::default(),
        });
        let (git, sources) = kube::runtime::reflector::store();
        let (oci, _) = kube::runtime::reflector::store();
        let (kustomizations, _) = kube::runtime::reflector::store();
        let identities = apply_controller::impersonation::Identities::with_config(client.clone(), config);
        let sources_seen = apply_controller::sources::Sources { git, oci };
        let (shared, _) =
            apply_controller::Shared::new(flags.apply, client, identities, sources_seen, kustomizations).unwrap();
        Self { ctx, shared, sources }
    }

    /// Shows the source as it is in the cluster now, once it has `revision`.
    async fn source_at(&mut self, setup: &Setup, revision: &str) {
        let sources: Api<GitRepository> = Api::namespaced(setup.client.clone(), &setup.ns);
        let source = setup
            .within(
                Duration::from_secs(30),
                &format!("the source to have {revision}"),
                || async {
                    let source = sources.get("app").await.ok()?;
                    let at = source.status.as_ref()?.artifact.as_ref()?.revision == revision;
                    at.then_some(source)
                },
            )
            .await;
        self.sources
            .apply_watcher_event(&kube::runtime::watcher::Event::Apply(source));
    }

    /// Reconciles `ks` as given, however old the copy.
    async fn reconcile(&self, ks: &Kustomization) {
        let outcome =
            apply_controller::reconcile::reconcile(Arc::new(ks.clone()), self.ctx.clone(), self.shared.clone()).await;
        assert!(outcome.is_ok(), "{outcome:?}");
    }
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_reconcile_that_starts_from_a_stale_copy_still_prunes_by_the_last_inventory() {
    let files = [
        ("deploy/x.yaml", config_map("x", "one")),
        ("deploy/y.yaml", config_map("y", "one")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let mut setup = Setup::start("stale-copy", &files, &[]).await;
    // The reconciles run here, each from the copy the test hands it; the process is not needed.
    setup.apply.signal("KILL").unwrap();
    setup.apply.wait_for_exit(Duration::from_secs(10)).await.unwrap();
    let ns = setup.ns.clone();
    let mut controller = InProcess::start(&setup).await;
    let first = setup.commit(&[], "the revision to apply first");
    controller.source_at(&setup, &first).await;
    setup
        .create_kustomization(
            "app",
            json!({"path": "./deploy", "targetNamespace": ns, "interval": "1h"}),
        )
        .await;
    let kustomizations = setup.kustomizations();
    // The first reconcile adds the finalizer; the second applies x and y and writes the status.
    controller.reconcile(&kustomizations.get("app").await.unwrap()).await;
    let stale = kustomizations.get("app").await.unwrap();
    controller.reconcile(&stale).await;
    let written = kustomizations.get("app").await.unwrap();
    assert_eq!(
        inventory_ids(&written),
        [format!("{ns}_x__ConfigMap"), format!("{ns}_y__ConfigMap")]
    );

    // x leaves Git. The next reconcile starts from the copy before the status write, as one
    // queued right behind it does when the watch has not delivered that write yet.
    std::fs::remove_file(setup.repo.work().join("deploy/x.yaml")).unwrap();
    let second = setup.commit(&[("deploy/y.yaml", &config_map("y", "two"))], "x leaves");
    controller.source_at(&setup, &second).await;
    assert!(stale.status.is_none(), "the copy predates the status write");
    controller.reconcile(&stale).await;

    let ks = kustomizations.get("app").await.unwrap();
    let status = ks.status.clone().unwrap();
    assert_eq!(status.last_applied_revision.as_deref(), Some(second.as_str()));
    assert_eq!(inventory_ids(&ks), [format!("{ns}_y__ConfigMap")]);
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &ns);
    assert!(
        maps.get_opt("x").await.unwrap().is_none(),
        "x left Git but was not pruned: the reconcile read the inventory of the stale copy"
    );
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_kustomization_whose_own_spec_is_wrong_stalls_instead_of_retrying() {
    let setup = Setup::start(
        "stall",
        &[("deploy/settings.yaml", &config_map("settings", "one"))],
        &["--no-cross-namespace-refs"],
    )
    .await;
    let ns = setup.ns.clone();
    let cases = [
        (
            "elsewhere",
            json!({"path": "./deploy", "sourceRef": {"kind": "GitRepository", "name": "app", "namespace": "another"}}),
            "AccessDenied",
        ),
        (
            "bad-variable",
            json!({"path": "./deploy", "targetNamespace": ns, "postBuild": {"substitute": {"not-a-name": "x"}}}),
            "BuildFailed",
        ),
        (
            "bad-ignore",
            json!({"path": "./deploy", "targetNamespace": ns, "ignore": [{"paths": ["no-leading-slash"]}]}),
            "BuildFailed",
        ),
    ];
    for (name, spec, _) in &cases {
        setup.create_kustomization(name, spec.clone()).await;
    }
    for (name, _, reason) in &cases {
        setup
            .within(Duration::from_secs(30), &format!("{name} to stall"), || async {
                let ks = setup.kustomizations().get(name).await.ok()?;
                let status = ks.status?;
                let stalled = conditions::get(&status.conditions, conditions::STALLED)?;
                let ready = conditions::get(&status.conditions, conditions::READY)?;
                (stalled.status == "True" && stalled.reason == *reason && ready.status == "False").then_some(())
            })
            .await;
    }
    // retryInterval is 5 s: a retrying Kustomization would reconcile about three more times.
    let before = reconciles(&setup).await;
    tokio::time::sleep(Duration::from_secs(16)).await;
    let after = reconciles(&setup).await;
    assert_eq!(
        after, before,
        "stalled Kustomizations were reconciled again without a change"
    );
    setup.finish().await;
}

/// Kustomization reconciles so far, from apply-controller's metrics.
async fn reconciles(setup: &Setup) -> u64 {
    let (_, text) = setup
        .apply
        .get(setup.apply.metrics, "/metrics")
        .await
        .expect("metrics answer");
    text.lines()
        .filter(|line| line.starts_with("eddy_reconcile_total{") && line.contains("Kustomization"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_remote_base_at_a_branch_that_moved_is_applied() {
    let setup = Setup::start(
        "remote-branch",
        &[("app/placeholder.yaml", &config_map("placeholder", "one"))],
        &["--no-remote-bases=false"],
    )
    .await;
    let server = setup.server.as_ref().unwrap();
    let bases = server.create_repo("bases").unwrap();
    bases
        .commit(
            &[
                ("base/kustomization.yaml", "resources:\n  - cm.yaml\n"),
                ("base/cm.yaml", &config_map("from-remote", "first")),
            ],
            "base",
        )
        .unwrap();
    let overlay = format!("resources:\n  - {}//base?ref=main\n", server.url("bases"));
    let revision = setup.commit(&[("app/kustomization.yaml", &overlay)], "a base at a branch");
    // The source does not change again: only the base's branch moves.
    setup
        .create_kustomization(
            "app",
            json!({"path": "./app", "targetNamespace": setup.ns, "interval": "2s"}),
        )
        .await;
    setup.ready("app", Some(&revision)).await;
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &setup.ns);
    assert_eq!(maps.get("from-remote").await.unwrap().data.unwrap()["value"], "first");
    bases
        .commit(
            &[("base/cm.yaml", &config_map("from-remote", "moved"))],
            "the branch moves",
        )
        .unwrap();
    setup
        .within(Duration::from_secs(30), "the moved branch to be applied", || async {
            let map = maps.get("from-remote").await.ok()?;
            (map.data?.get("value").map(String::as_str) == Some("moved")).then_some(())
        })
        .await;
    setup.finish().await;
}
