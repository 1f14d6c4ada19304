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

use eddy_shared::api::source::GitRepository;
use eddy_shared::conditions;
use eddy_tests::{create, kubeconfig_path, namespace};
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

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_reconcile_that_starts_from_a_stale_copy_still_prunes_by_the_last_inventory() {
    let setup = Setup::start("stale-copy", &[("deploy/y.yaml", &config_map("y", "one"))], &[]).await;
    let ns = setup.ns.clone();
    // A gate the test opens and closes: an object in a namespace no controller here watches,
    // whose status the test writes. While it is not Ready, the health check holds the reconcile.
    let gates_ns = namespace(&setup.client, "stale-copy-gate").await;
    create(
        &setup.client,
        &gates_ns,
        json!({
            "apiVersion": "source.eddy.dev/v1alpha1", "kind": "GitRepository",
            "metadata": {"name": "gate"},
            "spec": {"url": "https://example.invalid/gate.git", "interval": "1h"},
        }),
    )
    .await
    .unwrap();
    let gates: Api<GitRepository> = Api::namespaced(setup.client.clone(), &gates_ns);
    let set_gate = |open: bool| {
        let gates = gates.clone();
        async move {
            let now = "2026-01-01T00:00:00Z";
            let conditions = if open {
                json!([{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "open", "lastTransitionTime": now, "observedGeneration": 1}])
            } else {
                json!([
                    {"type": "Ready", "status": "False", "reason": "Progressing", "message": "closed", "lastTransitionTime": now, "observedGeneration": 1},
                    {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "closed", "lastTransitionTime": now, "observedGeneration": 1},
                ])
            };
            let patch = json!({"status": {"observedGeneration": 1, "conditions": conditions}});
            gates
                .patch_status("gate", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    set_gate(true).await;
    setup
        .create_kustomization(
            "app",
            json!({
                "path": "./deploy", "targetNamespace": ns, "interval": "1h", "timeout": "60s",
                "healthChecks": [{"apiVersion": "source.eddy.dev/v1alpha1", "kind": "GitRepository", "name": "gate", "namespace": gates_ns}],
            }),
        )
        .await;
    setup.ready("app", None).await;

    // Revision A adds x; its reconcile applies x and then waits at the closed gate.
    set_gate(false).await;
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &ns);
    setup.commit(&[("deploy/x.yaml", &config_map("x", "one"))], "A: x");
    setup
        .within(Duration::from_secs(30), "x to be applied", || async {
            maps.get_opt("x").await.ok()?.map(|_| ())
        })
        .await;
    // Revision B removes x and reaches the source while A's reconcile still waits, so B's
    // reconcile starts right after A's writes its status, from a watch copy that may predate it.
    std::fs::remove_file(setup.repo.work().join("deploy/x.yaml")).unwrap();
    let revision_b = setup.commit(&[("deploy/y.yaml", &config_map("y", "two"))], "B: no x");
    let sources: Api<GitRepository> = Api::namespaced(setup.client.clone(), &ns);
    setup
        .within(Duration::from_secs(30), "the source to have revision B", || async {
            let source = sources.get("app").await.ok()?;
            let artifact = source.status?.artifact?;
            (artifact.revision == revision_b).then_some(())
        })
        .await;
    set_gate(true).await;

    let ks = setup.ready("app", Some(&revision_b)).await;
    assert_eq!(inventory_ids(&ks), [format!("{ns}_y__ConfigMap")]);
    setup
        .within(
            Duration::from_secs(10),
            "x, which left Git in B, to be pruned",
            || async { maps.get_opt("x").await.ok()?.is_none().then_some(()) },
        )
        .await;
    eddy_tests::delete_namespace(&setup.client, &gates_ns).await;
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
