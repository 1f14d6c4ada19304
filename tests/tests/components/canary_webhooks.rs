//! progressive-controller's Canary webhooks against a local HTTP endpoint (`eddy_tests::webhook`)
//! that records what it receives and answers from a script: Flagger's payload, 2xx passes,
//! anything else fails with the status and the start of the body, retries, timeouts, no
//! redirects, and no URL credentials in what is returned.

use std::time::{Duration, Instant};

use eddy_api::progressive::{CanaryPhase, CanaryWebhook, CheckResult};
use eddy_tests::webhook::{Reply, WebhookServer};
use progressive_controller::webhook::{self, EventDetails, Payload};

fn hook(json: serde_json::Value) -> CanaryWebhook {
    serde_json::from_value(json).expect("a CanaryWebhook")
}

fn payload() -> Payload {
    Payload {
        name: "podinfo".into(),
        namespace: "shop".into(),
        phase: Some(CanaryPhase::Progressing),
        checksum: "rev-1".into(),
        event: None,
    }
}

async fn server() -> WebhookServer {
    eddy_runtime::install_crypto_provider();
    WebhookServer::start().await.expect("starting the webhook endpoint")
}

#[tokio::test]
async fn a_2xx_answer_passes_and_the_hook_receives_flaggers_payload() {
    let server = server().await;
    server.then(Reply::Answer(202, vec![], "accepted".into()));
    let h = hook(serde_json::json!({
        "name": "load-test", "type": "rollout", "url": server.url("/hooks/load"), "metadata": {"cmd": "hey -z 1m"}
    }));
    let check = webhook::call(&h, &payload()).await;
    assert_eq!(
        (check.name.as_str(), check.passed, check.message.as_deref()),
        ("load-test", true, None)
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/hooks/load");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(
        requests[0].json(),
        serde_json::json!({
            "name": "podinfo", "namespace": "shop", "phase": "Progressing", "checksum": "rev-1",
            "type": "rollout", "metadata": {"cmd": "hey -z 1m"}
        })
    );
}

#[tokio::test]
async fn an_event_hook_receives_the_event_in_metadata() {
    let server = server().await;
    let h = hook(serde_json::json!({"name": "events", "type": "event", "url": server.url("/events")}));
    let mut payload = payload();
    payload.event = Some(EventDetails {
        message: "Advance podinfo.shop canary weight 20".into(),
        reason: "Progressing".into(),
        event_type: "Normal",
    });
    assert!(webhook::call(&h, &payload).await.passed);
    let body = server.requests()[0].json();
    assert_eq!(body["type"], "event");
    assert_eq!(
        body["metadata"]["eventMessage"],
        "Advance podinfo.shop canary weight 20"
    );
    assert_eq!(body["metadata"]["eventReason"], "Progressing");
    let timestamp: i64 = body["metadata"]["timestamp"].as_str().unwrap().parse().unwrap();
    assert!(
        timestamp > 1_700_000_000_000,
        "milliseconds since the epoch: {timestamp}"
    );
}

#[tokio::test]
async fn a_500_fails_with_the_status_and_the_first_512_bytes_of_the_body() {
    let server = server().await;
    let body = format!("database unavailable {}", "x".repeat(4000));
    server.then(Reply::Answer(500, vec![], body.clone()));
    let h = hook(serde_json::json!({"name": "smoke", "type": "pre-rollout", "url": server.url("/smoke")}));
    let check: CheckResult = webhook::call(&h, &payload()).await;
    assert!(!check.passed);
    let expected = format!(
        "POST {} answered HTTP 500: {}",
        server.url("/smoke"),
        &body[..webhook::MAX_QUOTED_BODY]
    );
    assert_eq!(check.message.as_deref(), Some(expected.as_str()));
    assert_eq!(server.requests().len(), 1, "no retries unless asked");
}

#[tokio::test]
async fn retries_repeat_a_failing_call_until_it_passes_or_they_run_out() {
    let server = server().await;
    server.then(Reply::Answer(500, vec![], "first".into()));
    server.then(Reply::Answer(503, vec![], "second".into()));
    let h = hook(serde_json::json!({"name": "flaky", "url": server.url("/flaky"), "retries": 2}));
    let outcome = webhook::deliver(&h, &payload()).await;
    assert!(outcome.passed, "{outcome:?}");
    assert_eq!(outcome.attempts, 3);
    assert_eq!(outcome.status, Some(200));
    assert_eq!(server.requests().len(), 3);

    let server = self::server().await;
    server.always(Reply::Answer(502, vec![], "down".into()));
    let h = hook(serde_json::json!({"name": "down", "url": server.url("/down"), "retries": 2}));
    let outcome = webhook::deliver(&h, &payload()).await;
    assert!(!outcome.passed);
    assert_eq!(outcome.attempts, 3);
    assert_eq!(
        outcome.message.as_deref(),
        Some(format!("POST {} answered HTTP 502: down (attempt 3 of 3)", server.url("/down")).as_str())
    );
    assert_eq!(server.requests().len(), 3);

    // A refusal is an answer, not a failure that may pass: it is not retried.
    let server = self::server().await;
    server.always(Reply::Answer(403, vec![], "gate closed".into()));
    let h = hook(
        serde_json::json!({"name": "gate", "type": "confirm-promotion", "url": server.url("/gate"), "retries": 3}),
    );
    let outcome = webhook::deliver(&h, &payload()).await;
    assert_eq!(
        (outcome.passed, outcome.attempts, outcome.status),
        (false, 1, Some(403))
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_hook_that_does_not_answer_fails_at_its_timeout() {
    let server = server().await;
    server.always(Reply::Hang);
    let h = hook(serde_json::json!({"name": "slow", "url": server.url("/slow"), "timeout": "500ms", "retries": 1}));
    let started = Instant::now();
    let outcome = webhook::deliver(&h, &payload()).await;
    let took = started.elapsed();
    assert!(!outcome.passed);
    assert_eq!(outcome.status, None);
    assert_eq!(outcome.attempts, 2);
    assert_eq!(
        outcome.message.as_deref(),
        Some(
            format!(
                "POST {} failed: no answer within 500ms (attempt 2 of 2)",
                server.url("/slow")
            )
            .as_str()
        )
    );
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(4),
        "two attempts of 500ms and a short backoff took {took:?}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = server().await;
    server.then(Reply::Answer(
        302,
        vec![("location".into(), server.url("/elsewhere"))],
        String::new(),
    ));
    let h = hook(serde_json::json!({"name": "moved", "url": server.url("/moved")}));
    let check = webhook::call(&h, &payload()).await;
    assert!(!check.passed);
    assert_eq!(
        check.message.as_deref(),
        Some(
            format!(
                "POST {} answered HTTP 302 (redirects are not followed)",
                server.url("/moved")
            )
            .as_str()
        )
    );
    assert_eq!(server.requests().len(), 1, "the redirect target was not called");
}

#[tokio::test]
async fn url_credentials_and_query_are_sent_but_never_returned() {
    let server = server().await;
    server.always(Reply::Answer(500, vec![], "nope".into()));
    let url = format!("http://eddy:s3cret@{}/gate?token=abc123", server.addr);
    let h = hook(serde_json::json!({"name": "gate", "url": url}));
    let check = webhook::call(&h, &payload()).await;
    let message = check.message.unwrap();
    assert_eq!(
        message,
        format!("POST http://{}/gate answered HTTP 500: nope", server.addr)
    );
    assert!(!message.contains("s3cret") && !message.contains("abc123"), "{message}");
    let request = &server.requests()[0];
    assert_eq!(request.path, "/gate?token=abc123");
    // eddy:s3cret, as basic authentication.
    assert_eq!(request.header("authorization"), Some("Basic ZWRkeTpzM2NyZXQ="));
}

#[tokio::test]
async fn a_rollback_hook_answering_200_asks_for_the_rollback() {
    let server = server().await;
    let h = hook(serde_json::json!({"name": "rollback", "type": "rollback", "url": server.url("/rollback/check")}));
    server.then(Reply::Answer(403, vec![], "closed".into()));
    let outcome = webhook::deliver(&h, &payload()).await;
    assert!(!outcome.rollback_requested(), "{outcome:?}");

    server.then(Reply::ok("open"));
    let outcome = webhook::deliver(&h, &payload()).await;
    assert!(outcome.rollback_requested(), "{outcome:?}");
    let check = CheckResult::from(outcome);
    assert_eq!(
        check.message.as_deref(),
        Some("the rollback hook asked for a rollback (HTTP 200)")
    );
}

#[tokio::test]
async fn an_unreachable_hook_fails_with_the_reason() {
    eddy_runtime::install_crypto_provider();
    let addr = eddy_tests::free_port();
    let h = hook(serde_json::json!({"name": "gone", "url": format!("http://{addr}/hook")}));
    let check = webhook::call(&h, &payload()).await;
    assert!(!check.passed);
    let message = check.message.unwrap();
    assert!(
        message.starts_with(&format!("POST http://{addr}/hook failed: cannot connect")),
        "{message}"
    );
}
