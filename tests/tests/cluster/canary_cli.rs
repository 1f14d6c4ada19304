//! `eddy canary` against the local control plane. No progressive-controller runs: the test writes
//! the Canary's status itself and, where the command waits for an answer, stands in for the
//! controller (`answer_like_the_controller`), keeping to the annotation protocol the CLI and the
//! controller share.

use std::pin::pin;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use eddy_api::progressive::{ABORT_REQUESTED_AT, Canary, PAUSED, PROMOTE_REQUESTED_AT};
use eddy_tests::{cluster_namespace, delete_namespace, kubeconfig_path, workspace_binary};
use futures::StreamExt as _;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

const NAME: &str = "podinfo";

/// Runs `eddy` with the local control plane's kubeconfig.
async fn eddy(args: &[&str]) -> Output {
    tokio::process::Command::new(workspace_binary("eddy"))
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .env_remove("NO_COLOR")
        .output()
        .await
        .expect("running eddy")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Canary `podinfo` in a fresh namespace, with `status` written through the status subresource.
async fn canary_with_status(prefix: &str, status: Value) -> (Client, String, Api<Canary>) {
    let (client, ns) = cluster_namespace(prefix).await;
    let api: Api<Canary> = Api::namespaced(client.clone(), &ns);
    let canary: Canary = serde_json::from_value(json!({
        "apiVersion": "progressive.eddy.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": NAME},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "provider": "gatewayapi",
            "service": {"port": 9898},
            "analysis": {"threshold": 5, "maxWeight": 50, "stepWeight": 10},
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &canary)
        .await
        .expect("creating the Canary");
    write_status(&api, status).await;
    (client, ns, api)
}

async fn write_status(api: &Api<Canary>, status: Value) {
    api.patch_status(NAME, &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
        .await
        .expect("writing the Canary's status");
}

fn annotation(canary: &Canary, key: &str) -> Option<String> {
    canary.annotations().get(key).cloned()
}

/// The stand-in for progressive-controller, stopped when dropped.
struct StandIn(tokio::task::JoinHandle<()>);

impl Drop for StandIn {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Does what progressive-controller does with a one-time request: watches the Canary, and for
/// every new token in `annotation` writes it to `status.<handled_field>` and moves the release to
/// `phase` at `weight`.
fn answer_like_the_controller(
    api: &Api<Canary>,
    annotation: &'static str,
    handled_field: &'static str,
    phase: &'static str,
    weight: i32,
) -> StandIn {
    let api = api.clone();
    StandIn(tokio::spawn(async move {
        let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
        let mut canaries = pin!(watcher(api.clone(), config).default_backoff().applied_objects());
        while let Some(event) = canaries.next().await {
            let Ok(canary) = event else { continue };
            let Some(token) = canary.annotations().get(annotation) else {
                continue;
            };
            let status = serde_json::to_value(&canary.status).unwrap();
            if status.get(handled_field).and_then(Value::as_str) == Some(token.as_str()) {
                continue;
            }
            write_status(
                &api,
                json!({handled_field: token, "phase": phase, "canaryWeight": weight}),
            )
            .await;
        }
    }))
}

fn waiting_for_promotion() -> Value {
    json!({"phase": "WaitingPromotion", "canaryWeight": 50, "failedChecks": 0})
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn promote_sets_the_token_and_returns_once_the_controller_recorded_it() {
    let (client, ns, api) = canary_with_status("canary-promote", waiting_for_promotion()).await;
    let _controller = answer_like_the_controller(&api, PROMOTE_REQUESTED_AT, "lastHandledPromoteAt", "Promoting", 50);

    let output = eddy(&["canary", "promote", NAME, "-n", &ns, "--timeout", "30s"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("✔ Canary/{ns}/{NAME} promote handled: Promoting, canary weight 50%\n")
    );
    assert!(
        stderr(&output).contains(&format!(
            "► Canary/{ns}/{NAME} promote requested; waiting up to 30s for progressive-controller"
        )),
        "{}",
        stderr(&output)
    );
    let canary = api.get(NAME).await.unwrap();
    let token = annotation(&canary, PROMOTE_REQUESTED_AT).expect("the promote annotation");
    assert_eq!(
        canary.status.as_ref().unwrap().last_handled_promote_at.as_deref(),
        Some(token.as_str())
    );
    // RFC 3339 with nanoseconds, so that every request is a new value.
    let fraction = token.strip_suffix('Z').and_then(|t| t.split_once('.')).map(|(_, f)| f);
    assert_eq!(fraction.map(str::len), Some(9), "{token}");
    token.parse::<k8s_openapi::jiff::Timestamp>().unwrap();
    let manager = canary
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.to_string().contains(PROMOTE_REQUESTED_AT))
        })
        .and_then(|m| m.manager.clone());
    assert_eq!(manager.as_deref(), Some("eddy"));

    // A second promote is a new request with a new token; --silent keeps stderr quiet.
    let output = eddy(&["canary", "promote", NAME, "-n", &ns, "--silent"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let again = annotation(&api.get(NAME).await.unwrap(), PROMOTE_REQUESTED_AT).unwrap();
    assert_ne!(again, token);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn promote_times_out_with_a_clear_message_when_nobody_answers() {
    let (client, ns, api) = canary_with_status("canary-unanswered", waiting_for_promotion()).await;
    let started = Instant::now();
    let output = eddy(&["canary", "promote", NAME, "-n", &ns, "--timeout", "2s"]).await;
    let took = started.elapsed();
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "✗ Canary/{ns}/{NAME}: progressive-controller did not handle the promote within 2s"
        )),
        "{err}"
    );
    assert!(err.contains("status.lastHandledPromoteAt is unset"), "{err}");
    assert!(
        err.contains("The Canary is WaitingPromotion, canary weight 50%."),
        "{err}"
    );
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "{took:?}"
    );
    // The request stays: a controller that comes up later still answers it.
    let canary = api.get(NAME).await.unwrap();
    assert!(annotation(&canary, PROMOTE_REQUESTED_AT).is_some());
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn abort_waits_for_the_rollback_and_prints_the_phase() {
    let (client, ns, api) =
        canary_with_status("canary-abort", json!({"phase": "Progressing", "canaryWeight": 30})).await;
    let _controller = answer_like_the_controller(&api, ABORT_REQUESTED_AT, "lastHandledAbortAt", "Failed", 0);
    let output = eddy(&["canary", "abort", NAME, "-n", &ns, "--timeout", "30s"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("✔ Canary/{ns}/{NAME} abort handled: Failed, canary weight 0%\n")
    );
    let canary = api.get(NAME).await.unwrap();
    assert_eq!(
        canary.status.unwrap().last_handled_abort_at,
        annotation(&api.get(NAME).await.unwrap(), ABORT_REQUESTED_AT)
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn no_wait_returns_at_once_with_the_request_made() {
    let (client, ns, api) = canary_with_status("canary-nowait", waiting_for_promotion()).await;
    let started = Instant::now();
    let output = eddy(&["canary", "promote", NAME, "-n", &ns, "--no-wait"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(10));
    let token = annotation(&api.get(NAME).await.unwrap(), PROMOTE_REQUESTED_AT).unwrap();
    assert_eq!(
        stdout(&output),
        format!("✔ Canary/{ns}/{NAME} promote requested ({PROMOTE_REQUESTED_AT}: {token})\n")
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn pause_and_resume_set_and_remove_the_annotation() {
    let (client, ns, api) = canary_with_status("canary-pause", waiting_for_promotion()).await;
    let output = eddy(&["canary", "pause", NAME, "-n", &ns]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("Canary/{ns}/{NAME} paused")));
    assert_eq!(
        annotation(&api.get(NAME).await.unwrap(), PAUSED).as_deref(),
        Some("true")
    );
    let view = eddy(&["canary", "status", NAME, "-n", &ns]).await;
    assert!(
        stdout(&view).starts_with(&format!("Canary/{ns}/{NAME}  (paused)\n")),
        "{}",
        stdout(&view)
    );

    let output = eddy(&["canary", "resume", NAME, "-n", &ns]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("Canary/{ns}/{NAME} resumed")));
    assert_eq!(annotation(&api.get(NAME).await.unwrap(), PAUSED), None);
    delete_namespace(&client, &ns).await;
}

fn mid_release() -> Value {
    let step = |minute: u32, weight: i32, latency: f64, success: f64, failed: &[&str]| {
        json!({
            "time": format!("2026-05-01T10:0{minute}:00Z"),
            "phase": "Progressing",
            "canaryWeight": weight,
            "values": {"request-duration": latency, "request-success-rate": success},
            "failed": failed,
        })
    };
    json!({
        "phase": "Progressing",
        "canaryWeight": 30,
        "failedChecks": 1,
        "iterations": 0,
        "conditions": [{
            "type": "Ready",
            "status": "Unknown",
            "reason": "Progressing",
            "message": "Advancing canary weight 30",
            "lastTransitionTime": "2026-05-01T10:03:00Z",
        }],
        "lastChecks": [
            {"name": "request-success-rate", "value": 99.2, "passed": true, "time": "2026-05-01T10:03:00Z"},
            {"name": "request-duration", "value": 612.0, "passed": false,
             "message": "612 is above the maximum 500", "time": "2026-05-01T10:03:00Z"},
            {"name": "load-test", "passed": false, "message": "connection refused",
             "time": "2026-05-01T10:03:00Z"},
        ],
        "history": [
            step(0, 10, 412.0, 99.9, &[]),
            step(1, 20, 480.5, 99.5, &[]),
            step(2, 20, 612.0, 99.2, &["request-duration", "load-test"]),
            step(3, 30, 455.0, 99.7, &[]),
        ],
    })
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn status_prints_the_checks_and_charts_the_weight_and_values() {
    let (client, ns, _api) = canary_with_status("canary-status", mid_release()).await;
    let output = eddy(&["canary", "status", NAME, "-n", &ns]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        format!("Canary/{ns}/{NAME}\n"),
        "  phase          Progressing\n".to_owned(),
        "  canary weight  30%\n".to_owned(),
        "  failed checks  1/5\n".to_owned(),
        "  Ready          Unknown Progressing: Advancing canary weight 30\n".to_owned(),
        "  ✔ request-success-rate       99.2  2026-05-01T10:03:00Z\n".to_owned(),
        "  ✗ request-duration            612  2026-05-01T10:03:00Z  612 is above the maximum 500\n".to_owned(),
        "  ✗ load-test                     -  2026-05-01T10:03:00Z  connection refused\n".to_owned(),
        // One row per step: time, phase, weight bar, values, failures marked.
        "  10:00:00  Progressing  ██··················  10%               412              99.9\n".to_owned(),
        "  10:02:00  Progressing  ████················  20%             612 ✗              99.2  ✗ load-test\n"
            .to_owned(),
        "  10:03:00  Progressing  ██████··············  30%               455              99.7\n".to_owned(),
        "  weight                ▂▂▂▃  10% → 30%\n".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }
    // Not a terminal: no colour.
    assert!(!text.contains('\x1b'), "{text}");

    let output = eddy(&["canary", "status", NAME, "-n", &ns, "-o", "json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let status: Value = serde_json::from_str(&stdout(&output)).expect("-o json prints JSON");
    assert_eq!(status["canaryWeight"], 30);
    assert_eq!(status["history"].as_array().unwrap().len(), 4);
    assert_eq!(status["lastChecks"][1]["value"], 612.0);

    let output = eddy(&["canary", "status", NAME, "-n", &ns, "-o", "yaml"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let from_yaml: Value = serde_saphyr::from_str(&stdout(&output)).expect("-o yaml prints YAML");
    assert_eq!(from_yaml, status);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn status_watch_prints_again_when_the_canary_changes() {
    let (client, ns, api) = canary_with_status("canary-watch", mid_release()).await;
    let mut child = tokio::process::Command::new(workspace_binary("eddy"))
        .args(["canary", "status", NAME, "-n", &ns, "--watch", "-o", "json"])
        .env("KUBECONFIG", kubeconfig_path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting eddy canary status --watch");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_status = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a line within 20 s")
            .unwrap()
            .expect("eddy is still watching");
        serde_json::from_str(&line).expect("one JSON document per line")
    };
    assert_eq!(next_status().await["canaryWeight"], 30);
    write_status(&api, json!({"canaryWeight": 40})).await;
    assert_eq!(next_status().await["canaryWeight"], 40);
    write_status(&api, json!({"phase": "Succeeded", "canaryWeight": 0})).await;
    let last = next_status().await;
    assert_eq!(
        (last["phase"].as_str(), last["canaryWeight"].as_i64()),
        (Some("Succeeded"), Some(0))
    );
    child.kill().await.unwrap();
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn the_namespace_defaults_to_the_kubeconfig_context() {
    let (client, ns, _api) = canary_with_status("canary-context", waiting_for_promotion()).await;
    let text = std::fs::read_to_string(kubeconfig_path()).unwrap();
    let mut kubeconfig: Value = serde_saphyr::from_str(&text).unwrap();
    for context in kubeconfig["contexts"].as_array_mut().unwrap() {
        context["context"]["namespace"] = json!(ns);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, serde_json::to_string(&kubeconfig).unwrap()).unwrap();
    let output = tokio::process::Command::new(workspace_binary("eddy"))
        .args(["--kubeconfig", path.to_str().unwrap(), "canary", "status", NAME])
        .env("KUBECONFIG", "/nonexistent/eddy-kubeconfig")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with(&format!("Canary/{ns}/{NAME}\n")),
        "{}",
        stdout(&output)
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_missing_canary_is_named_and_fails() {
    let (client, ns) = cluster_namespace("canary-missing").await;
    for command in [
        vec!["canary", "status", "nope", "-n", &ns],
        vec!["canary", "status", "nope", "-n", &ns, "--watch"],
        vec!["canary", "promote", "nope", "-n", &ns, "--timeout", "5s"],
        vec!["canary", "abort", "nope", "-n", &ns, "--no-wait"],
        vec!["canary", "pause", "nope", "-n", &ns],
        vec!["canary", "resume", "nope", "-n", &ns],
    ] {
        let output = eddy(&command).await;
        assert!(!output.status.success(), "{command:?}");
        assert_eq!(output.status.code(), Some(1), "{command:?}");
        assert_eq!(
            stderr(&output),
            format!("✗ Canary/{ns}/nope not found\n"),
            "{command:?}"
        );
        assert_eq!(stdout(&output), "", "{command:?}");
    }
    delete_namespace(&client, &ns).await;
}
