//! The four controller binaries on the shared runtime, run as processes against the local
//! control plane: leadership on a Lease, probes and metrics, graceful shutdown, sharding, and the
//! status they report before their reconcilers exist.

use std::time::Duration;

use eddy_api::conditions::{self, READY};
use eddy_api::progressive::MetricTemplate;
use eddy_tests::{
    ControllerProcess, cluster, cluster_namespace, create_example, delete_namespace, eventually, install_crds,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

const CONTROLLERS: [&str; 4] = [
    "source-controller",
    "apply-controller",
    "notify-controller",
    "progressive-controller",
];

async fn holder(client: &Client, ns: &str, lease: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    api.get_opt(lease).await.ok().flatten()?.spec?.holder_identity
}

async fn wait_until_leading(client: &Client, ns: &str, lease: &str, process: &ControllerProcess) {
    let pid = format!("_{}", process.pid());
    eventually(
        Duration::from_secs(30),
        &format!("{} to hold Lease {ns}/{lease}", process.name),
        || async { holder(client, ns, lease).await.filter(|h| h.ends_with(&pid)) },
    )
    .await;
    eventually(Duration::from_secs(10), "eddy_leader 1 in /metrics", || async {
        let (_, text) = process.get(process.metrics, "/metrics").await?;
        text.lines()
            .any(|l| l.starts_with("eddy_leader{") && l.ends_with(" 1"))
            .then_some(())
    })
    .await;
}

/// MetricTemplates: the simplest objects a controller reconciles (progressive-controller checks
/// that their query renders), which makes them the objects to observe the runtime's own
/// behaviour on.
fn template(name: &str, labels: serde_json::Value) -> MetricTemplate {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "progressive.eddy.dev/v1alpha1",
        "kind": "MetricTemplate",
        "metadata": {"name": name, "labels": labels},
        "spec": {"provider": {"type": "prometheus", "address": "http://127.0.0.1:9/"}, "query": "up"},
    }))
    .unwrap()
}

async fn ready_condition(
    api: &Api<MetricTemplate>,
    name: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let repo = api.get(name).await.ok()?;
    conditions::get(&repo.status?.conditions, READY).cloned()
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn each_controller_leads_serves_probes_and_exits_cleanly_on_sigterm() {
    let (client, ns) = cluster_namespace("leaders").await;

    // Something for each controller to reconcile, so that each records a reconcile duration.
    for example in [
        "gitrepository.yaml",
        "kustomization.yaml",
        "provider.yaml",
        "metrictemplate.yaml",
    ] {
        create_example(&client, &ns, example).await;
    }
    let mut processes = Vec::new();
    for name in CONTROLLERS {
        let process = ControllerProcess::start(
            name,
            &[
                &format!("--leader-election-namespace={ns}"),
                &format!("--watch-namespace={ns}"),
            ],
        )
        .unwrap();
        processes.push(process);
    }
    for process in &processes {
        let (status, body) = eventually(
            Duration::from_secs(30),
            &format!("{} /healthz", process.name),
            || async { process.get(process.health, "/healthz").await },
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        let (status, _) = eventually(Duration::from_secs(10), "/readyz", || async {
            process.get(process.health, "/readyz").await
        })
        .await;
        assert_eq!(status, 200, "{} is ready", process.name);
        wait_until_leading(&client, &ns, &process.name, process).await;
        eventually(Duration::from_secs(30), "a reconcile duration in /metrics", || async {
            let (_, metrics) = process.get(process.metrics, "/metrics").await?;
            metrics.contains("eddy_reconcile_duration_seconds_count{").then_some(())
        })
        .await;
    }

    for process in &mut processes {
        process.signal("TERM").unwrap();
        let exit = process.wait_for_exit(Duration::from_secs(10)).await.unwrap();
        assert!(
            exit.success(),
            "{} exited with {exit}; logs:\n{}",
            process.name,
            process.logs()
        );
        assert_eq!(
            holder(&client, &ns, &process.name).await,
            None,
            "{} released its Lease",
            process.name
        );
    }
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn standby_replica_waits_then_takes_over_when_the_leader_stops() {
    let (client, ns) = cluster_namespace("standby").await;
    let repos: Api<MetricTemplate> = Api::namespaced(client.clone(), &ns);
    let lease_flag = format!("--leader-election-namespace={ns}");
    let scope = format!("--watch-namespace={ns}");

    let mut leader = ControllerProcess::start("progressive-controller", &[&lease_flag, &scope]).unwrap();
    wait_until_leading(&client, &ns, "progressive-controller", &leader).await;
    let standby = ControllerProcess::start("progressive-controller", &[&lease_flag, &scope]).unwrap();
    eventually(Duration::from_secs(30), "the standby's /readyz", || async {
        standby.get(standby.health, "/readyz").await.filter(|(s, _)| *s == 200)
    })
    .await;
    let (_, metrics) = standby.get(standby.metrics, "/metrics").await.unwrap();
    assert!(
        metrics.contains("eddy_leader{controller=\"progressive-controller\"} 0"),
        "the standby does not lead: {metrics}"
    );
    assert!(
        !metrics.contains("eddy_reconcile_total{"),
        "the standby reconciles nothing: {metrics}"
    );

    leader.signal("TERM").unwrap();
    assert!(leader.wait_for_exit(Duration::from_secs(10)).await.unwrap().success());
    // The Lease was released, so the standby takes it at its next attempt rather than after expiry.
    wait_until_leading(&client, &ns, "progressive-controller", &standby).await;

    repos
        .create(
            &PostParams::default(),
            &template("after-takeover", serde_json::json!({})),
        )
        .await
        .unwrap();
    let ready = eventually(
        Duration::from_secs(30),
        "the new leader to report on a MetricTemplate",
        || async { ready_condition(&repos, "after-takeover").await },
    )
    .await;
    assert_eq!(ready.reason, "ReconciliationSucceeded");
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn metric_templates_say_whether_their_query_renders_and_reconcile_requests_are_handled() {
    let (client, ns) = cluster_namespace("templates").await;
    let repos: Api<MetricTemplate> = Api::namespaced(client.clone(), &ns);
    let process = ControllerProcess::start(
        "progressive-controller",
        &[
            &format!("--leader-election-namespace={ns}"),
            &format!("--watch-namespace={ns}"),
        ],
    )
    .unwrap();
    repos
        .create(&PostParams::default(), &template("app", serde_json::json!({})))
        .await
        .unwrap();

    let ready = eventually(Duration::from_secs(30), "Ready on the MetricTemplate", || async {
        ready_condition(&repos, "app").await
    })
    .await;
    assert_eq!(ready.status, "True", "{ready:?}");
    assert_eq!(ready.observed_generation, Some(1));

    let mut broken = template("broken", serde_json::json!({}));
    broken.spec.query = "sum(rate(http_requests_total{pod=~\"{{ podname }}\"}[1m]))".into();
    repos.create(&PostParams::default(), &broken).await.unwrap();
    let stalled = eventually(
        Duration::from_secs(30),
        "Ready on the broken MetricTemplate",
        || async { ready_condition(&repos, "broken").await },
    )
    .await;
    assert_eq!(stalled.status, "False");
    assert!(
        stalled.message.contains("podname"),
        "the unknown variable is named: {}",
        stalled.message
    );
    let first_transition = ready.last_transition_time.clone();

    let request =
        serde_json::json!({"metadata": {"annotations": {"reconcile.eddy.dev/requestedAt": "2026-11-22T10:00:00Z"}}});
    repos
        .patch("app", &PatchParams::default(), &Patch::Merge(&request))
        .await
        .unwrap();
    let handled = eventually(Duration::from_secs(30), "lastHandledReconcileAt", || async {
        repos.get("app").await.ok()?.status?.last_handled_reconcile_at
    })
    .await;
    assert_eq!(handled, "2026-11-22T10:00:00Z");
    let ready = ready_condition(&repos, "app").await.unwrap();
    assert_eq!(
        ready.last_transition_time, first_transition,
        "the status did not change, so neither did the transition time"
    );

    let (_, metrics) = process.get(process.metrics, "/metrics").await.unwrap();
    assert!(
        metrics.contains(
            "eddy_reconcile_total{controller=\"progressive-controller\",kind=\"MetricTemplate\",result=\"success\"}"
        ),
        "{metrics}"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn watch_label_selector_shards_objects_between_controllers() {
    let (client, ns) = cluster_namespace("shards").await;
    let repos: Api<MetricTemplate> = Api::namespaced(client.clone(), &ns);
    let _shard = ControllerProcess::start(
        "progressive-controller",
        &[
            &format!("--leader-election-namespace={ns}"),
            "--leader-election-lease-name=progressive-controller-shard1",
            &format!("--watch-namespace={ns}"),
            "--watch-label-selector=sharding.eddy.dev/key=shard1",
        ],
    )
    .unwrap();
    repos
        .create(
            &PostParams::default(),
            &template("in-shard", serde_json::json!({"sharding.eddy.dev/key": "shard1"})),
        )
        .await
        .unwrap();
    repos
        .create(
            &PostParams::default(),
            &template("other-shard", serde_json::json!({"sharding.eddy.dev/key": "shard2"})),
        )
        .await
        .unwrap();

    eventually(
        Duration::from_secs(30),
        "the shard's object to get a status",
        || async { ready_condition(&repos, "in-shard").await },
    )
    .await;
    // The other object was created at the same time; had the controller seen it, it would have a
    // status by now as well.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        ready_condition(&repos, "other-shard").await.is_none(),
        "objects of another shard are left alone"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn malformed_label_selector_fails_start_up_with_a_clear_error() {
    let client = cluster().await;
    install_crds(&client).await.unwrap();
    let mut process = ControllerProcess::start(
        "progressive-controller",
        &[
            "--leader-elect=false",
            "--watch-label-selector=sharding.eddy.dev/key in (a,",
        ],
    )
    .unwrap();
    let exit = process.wait_for_exit(Duration::from_secs(20)).await.unwrap();
    assert!(!exit.success());
    let logs = process.logs();
    assert!(
        logs.contains("cannot list") && logs.contains("--watch-label-selector"),
        "{logs}"
    );
}

/// notify-controller serves traffic through a Service, so only the replica that leads (and
/// listens) is ready: a standby gets no events or webhooks that nothing would answer, and takes
/// over readiness and listening with the Lease.
#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn only_the_leading_notify_controller_is_ready_and_listens() {
    let (client, ns) = cluster_namespace("notify-standby").await;
    let lease_flag = format!("--leader-election-namespace={ns}");
    let scope = format!("--watch-namespace={ns}");
    let mut leader = ControllerProcess::start("notify-controller", &[&lease_flag, &scope]).unwrap();
    wait_until_leading(&client, &ns, "notify-controller", &leader).await;
    eventually(Duration::from_secs(30), "the leader's /readyz", || async {
        leader.get(leader.health, "/readyz").await.filter(|(s, _)| *s == 200)
    })
    .await;
    assert!(
        std::net::TcpStream::connect(leader.events.unwrap()).is_ok(),
        "the leader listens"
    );

    let standby = ControllerProcess::start("notify-controller", &[&lease_flag, &scope]).unwrap();
    eventually(Duration::from_secs(30), "the standby's health server", || async {
        standby.get(standby.health, "/healthz").await.filter(|(s, _)| *s == 200)
    })
    .await;
    // Give it time to have become ready, were it to.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = standby.get(standby.health, "/readyz").await.unwrap();
    assert_ne!(status, 200, "a standby is not ready");
    for addr in [standby.events.unwrap(), standby.hooks.unwrap()] {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "a standby does not listen on {addr}"
        );
    }

    leader.signal("TERM").unwrap();
    assert!(leader.wait_for_exit(Duration::from_secs(10)).await.unwrap().success());
    eventually(Duration::from_secs(30), "the new leader's /readyz", || async {
        standby.get(standby.health, "/readyz").await.filter(|(s, _)| *s == 200)
    })
    .await;
    let response = reqwest::Client::new()
        .post(format!("http://{}/", standby.events.unwrap()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400, "the new leader answers events");
    delete_namespace(&client, &ns).await;
}
