//! The canary traffic harness without Kubernetes: two test apps behind Debian's nginx, which
//! routes as a Gateway API HTTPRoute says, and a load generator counting who answered. These
//! pin that traffic (and so the apps' metrics) moves exactly as the route says.

use std::time::Duration;

use eddy_tests::traffic::{
    Behaviour, GENERATION, LoadGenerator, NginxGatewayStandIn, RouteError, SERVED_BY, TestApp, canary_services,
    metric_sample,
};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

/// The primary and canary of a Canary named `podinfo`, behind the stand-in.
struct Release {
    primary: TestApp,
    canary: TestApp,
    gateway: NginxGatewayStandIn,
}

async fn release(primary: Behaviour, canary: Behaviour) -> Release {
    let primary = TestApp::start("primary", primary).await.expect("starting the primary");
    let canary = TestApp::start("canary", canary).await.expect("starting the canary");
    let gateway = NginxGatewayStandIn::start(canary_services("podinfo", primary.addr, canary.addr))
        .await
        .expect("starting nginx");
    Release {
        primary,
        canary,
        gateway,
    }
}

/// An HTTPRoute `podinfo` with `rules`, as the API server stores it (defaults filled in).
fn http_route(rules: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo", "namespace": "test", "generation": 1},
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}],
            "rules": rules,
        },
    })
}

fn backend(service: &str, weight: u64) -> Value {
    json!({"group": "", "kind": "Service", "name": service, "port": 9898, "weight": weight})
}

fn every_path() -> Value {
    json!([{"path": {"type": "PathPrefix", "value": "/"}}])
}

/// The weighted rule the controller writes at a canary step.
fn weights(primary: u64, canary: u64) -> Value {
    http_route(json!([{
        "matches": every_path(),
        "backendRefs": [backend("podinfo-primary", primary), backend("podinfo-canary", canary)],
    }]))
}

/// An A/B rule (requests whose `header` matches go to the canary) before the all-primary rule.
fn ab_test(header: Value) -> Value {
    http_route(json!([
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [header]}],
            "backendRefs": [backend("podinfo-primary", 0), backend("podinfo-canary", 100)],
        },
        {
            "matches": every_path(),
            "backendRefs": [backend("podinfo-primary", 100), backend("podinfo-canary", 0)],
        },
    ]))
}

/// All traffic to the primary, with a copy of `percent` of it (all when `None`) to the canary.
fn mirrored(percent: Option<u64>) -> Value {
    let mut mirror = json!({"backendRef": {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898}});
    if let Some(percent) = percent {
        mirror["percent"] = json!(percent);
    }
    http_route(json!([{
        "matches": every_path(),
        "filters": [{"type": "RequestMirror", "requestMirror": mirror}],
        "backendRefs": [backend("podinfo-primary", 100), backend("podinfo-canary", 0)],
    }]))
}

/// Sends `count` requests through `gateway` at `rate` a second with `headers`, and returns what
/// was counted once every answer arrived.
async fn load(
    gateway: &NginxGatewayStandIn,
    count: u64,
    rate: u32,
    headers: &[(&str, &str)],
) -> eddy_tests::traffic::Counts {
    let load = LoadGenerator::start(&gateway.url("/"), rate, headers).unwrap();
    load.wait_for_answers(count, LIMIT).await;
    let counts = load.stop().await;
    assert_eq!(counts.failed, 0, "requests without answer: {counts:?}");
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_90_10_split_about_90_10_and_the_apps_count_what_they_served() {
    let mut release = release(
        Behaviour::healthy(),
        Behaviour {
            error_rate: 0.2,
            latency: Duration::from_millis(20),
        },
    )
    .await;
    release.gateway.configure(&weights(90, 10)).await.unwrap();

    let counts = load(&release.gateway, 500, 250, &[]).await;

    let canary = counts.share("canary");
    assert!(
        (0.08..=0.12).contains(&canary),
        "canary served {:.1}% of the answers, not about 10%: {counts:?}",
        canary * 100.0
    );
    assert_eq!(
        counts.served_by("primary") + counts.served_by("canary"),
        counts.answered()
    );
    // The canary's errors show in what the users got: 20% of the canary's answers.
    let canary_errors = counts.answer("canary", 500);
    let expected = counts.served_by("canary") as f64 * 0.2;
    assert!((canary_errors as f64 - expected).abs() <= 1.0, "{counts:?}");
    assert_eq!(counts.answer("primary", 500), 0);

    // The apps' own metrics agree with the load generator, answer for answer.
    for app in [&release.primary, &release.canary] {
        let by_code = app.requests_by_code().await.unwrap();
        assert_eq!(by_code[&200], counts.answer(&app.name, 200), "{} 200s", app.name);
        assert_eq!(by_code[&500], counts.answer(&app.name, 500), "{} 500s", app.name);
    }
    let exposition = release.canary.scrape().await.unwrap();
    let observed = metric_sample(&exposition, "http_request_duration_seconds_count").unwrap();
    assert_eq!(observed as u64, counts.served_by("canary"));
    // Every canary answer took its 20 ms, none less, and most little more (a busy machine
    // stretches the tail, so not all).
    assert_eq!(
        metric_sample(&exposition, "http_request_duration_seconds_bucket{le=\"0.018\"}"),
        Some(0.0),
        "{exposition}"
    );
    let by_25ms = metric_sample(&exposition, "http_request_duration_seconds_bucket{le=\"0.025\"}").unwrap();
    assert!(by_25ms >= observed * 0.5, "{exposition}");
}

#[tokio::test(flavor = "multi_thread")]
async fn weight_0_sends_nothing_and_weight_100_everything() {
    let mut release = release(Behaviour::healthy(), Behaviour::healthy()).await;

    release.gateway.configure(&weights(0, 100)).await.unwrap();
    let counts = load(&release.gateway, 300, 300, &[]).await;
    assert_eq!(counts.served_by("canary"), counts.answered(), "{counts:?}");
    assert_eq!(counts.served_by("primary"), 0);

    release.gateway.configure(&weights(100, 0)).await.unwrap();
    let counts = load(&release.gateway, 300, 300, &[]).await;
    assert_eq!(counts.served_by("primary"), counts.answered(), "{counts:?}");
    assert_eq!(counts.served_by("canary"), 0);

    // Every backend at weight 0 is a 500 from the gateway, as Gateway API requires.
    release.gateway.configure(&weights(0, 0)).await.unwrap();
    let counts = load(&release.gateway, 20, 100, &[]).await;
    assert_eq!(counts.answer("", 500), counts.answered(), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_match_sends_only_matching_requests_to_the_canary() {
    let mut release = release(Behaviour::healthy(), Behaviour::healthy()).await;
    release
        .gateway
        .configure(&ab_test(
            json!({"type": "Exact", "name": "X-Canary", "value": "insider"}),
        ))
        .await
        .unwrap();

    let insiders = LoadGenerator::start(&release.gateway.url("/"), 200, &[("x-canary", "insider")]).unwrap();
    let others = LoadGenerator::start(&release.gateway.url("/"), 200, &[]).unwrap();
    let near_misses = LoadGenerator::start(&release.gateway.url("/"), 200, &[("x-canary", "Insider")]).unwrap();
    let prefixed = LoadGenerator::start(&release.gateway.url("/"), 200, &[("x-canary", "insider2")]).unwrap();
    insiders.wait_for_answers(200, LIMIT).await;
    others.wait_for_answers(200, LIMIT).await;
    near_misses.wait_for_answers(100, LIMIT).await;
    prefixed.wait_for_answers(100, LIMIT).await;

    let insiders = insiders.stop().await;
    assert_eq!(insiders.served_by("canary"), insiders.answered(), "{insiders:?}");
    for (what, load) in [("no header", others), ("Insider", near_misses), ("insider2", prefixed)] {
        let counts = load.stop().await;
        assert_eq!(counts.served_by("primary"), counts.answered(), "{what}: {counts:?}");
        assert_eq!(counts.failed, 0, "{what}: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_regex_match_sends_requests_carrying_the_cookie_to_the_canary() {
    let mut release = release(Behaviour::healthy(), Behaviour::healthy()).await;
    // Flagger's documented cookie regex, `^(.*?;)?(canary=always)(;.*)?$`, with the space
    // browsers put after `;` allowed: the whole header value must match.
    release
        .gateway
        .configure(&ab_test(json!({
            "type": "RegularExpression",
            "name": "cookie",
            "value": "^(.*?; ?)?(canary=always)(;.*)?$",
        })))
        .await
        .unwrap();

    let counts = load(
        &release.gateway,
        100,
        200,
        &[("cookie", "session=abc; canary=always; theme=dark")],
    )
    .await;
    assert_eq!(counts.served_by("canary"), counts.answered(), "{counts:?}");
    let counts = load(&release.gateway, 100, 200, &[("cookie", "canary=always")]).await;
    assert_eq!(counts.served_by("canary"), counts.answered(), "{counts:?}");

    for cookie in ["canary=never", "session=abc; xcanary=always", ""] {
        let headers: &[(&str, &str)] = if cookie.is_empty() { &[] } else { &[("cookie", cookie)] };
        let counts = load(&release.gateway, 100, 200, headers).await;
        assert_eq!(
            counts.served_by("primary"),
            counts.answered(),
            "cookie {cookie:?}: {counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_filter_copies_requests_to_the_canary_while_the_primary_answers() {
    let mut release = release(
        Behaviour::healthy(),
        Behaviour {
            error_rate: 1.0,
            latency: Duration::ZERO,
        },
    )
    .await;
    release.gateway.configure(&mirrored(None)).await.unwrap();

    let counts = load(&release.gateway, 300, 300, &[]).await;
    // Every answer is the primary's: the failing canary's 500s never reach a user.
    assert_eq!(counts.answer("primary", 200), counts.answered(), "{counts:?}");
    // The canary sees a copy of every request (mirrored in the background, so eventually).
    let served = eddy_tests::eventually(LIMIT, "the canary to see every copy", || async {
        let seen = release.canary.requests_by_code().await.ok()?[&500];
        (seen == counts.answered()).then_some(seen)
    })
    .await;
    assert_eq!(served, counts.answered());
    assert_eq!(
        release.primary.requests_by_code().await.unwrap()[&200],
        counts.answered()
    );

    // With `percent`, only about that share is copied.
    release.gateway.configure(&mirrored(Some(25))).await.unwrap();
    let before = release.canary.requests_by_code().await.unwrap()[&500];
    let counts = load(&release.gateway, 400, 400, &[]).await;
    assert_eq!(counts.answer("primary", 200), counts.answered(), "{counts:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let copies = release.canary.requests_by_code().await.unwrap()[&500] - before;
    let share = copies as f64 / counts.answered() as f64;
    assert!(
        (0.15..=0.35).contains(&share),
        "{copies} of {} requests mirrored, not about 25%",
        counts.answered()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reconfiguring_mid_load_changes_the_split_for_every_later_request() {
    let mut release = release(Behaviour::healthy(), Behaviour::healthy()).await;
    release.gateway.configure(&weights(100, 0)).await.unwrap();
    let load = LoadGenerator::start(&release.gateway.url("/"), 300, &[]).unwrap();
    let before = load.wait_for_answers(150, LIMIT).await;
    assert_eq!(before.served_by("canary"), 0, "{before:?}");

    // configure returns once the old configuration's worker is gone, so everything sent after
    // it is routed by the new one.
    release.gateway.configure(&weights(50, 50)).await.unwrap();
    load.reset();
    let half = load.wait_for_answers(300, LIMIT).await;
    let share = half.share("canary");
    assert!((0.45..=0.55).contains(&share), "{half:?}");

    release.gateway.configure(&weights(0, 100)).await.unwrap();
    load.reset();
    load.wait_for_answers(150, LIMIT).await;
    let after = load.stop().await;
    assert_eq!(after.served_by("canary"), after.answered(), "{after:?}");
    for counts in [&before, &half, &after] {
        assert_eq!(counts.failed, 0, "a reload dropped requests: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsupported_filter_is_refused_naming_the_field_and_the_route_stays() {
    let mut release = release(Behaviour::healthy(), Behaviour::healthy()).await;
    let served = release.gateway.configure(&weights(100, 0)).await.unwrap();

    let rewrite = http_route(json!([{
        "matches": every_path(),
        "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/"}}}],
        "backendRefs": [backend("podinfo-canary", 1)],
    }]));
    let err = release.gateway.configure(&rewrite).await.unwrap_err();
    let route_error = err.downcast_ref::<RouteError>().unwrap_or_else(|| panic!("{err:#}"));
    assert_eq!(route_error.field, "spec.rules[0].filters[0].type");
    assert_eq!(
        err.to_string(),
        "HTTPRoute test/podinfo: spec.rules[0].filters[0].type: filter URLRewrite is not supported by the nginx Gateway stand-in"
    );

    let query = http_route(json!([{
        "matches": [{"queryParams": [{"type": "Exact", "name": "canary", "value": "1"}]}],
        "backendRefs": [backend("podinfo-canary", 1)],
    }]));
    let err = release.gateway.configure(&query).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.rules[0].matches[0].queryParams: is not supported"),
        "{err}"
    );

    let unknown = http_route(json!([{"backendRefs": [backend("shop-canary", 1)]}]));
    let err = release.gateway.configure(&unknown).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.rules[0].backendRefs[0].name: no address for Service shop-canary"),
        "{err}"
    );

    // nginx still serves the last route it accepted.
    assert_eq!(release.gateway.generation(), served);
    let counts = load(&release.gateway, 20, 100, &[]).await;
    assert_eq!(counts.served_by("primary"), counts.answered(), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostnames_and_backend_response_headers_route_like_a_gateway() {
    let mut release = release(Behaviour::healthy(), Behaviour::healthy()).await;
    // Flagger's session affinity: answers from the canary set a cookie.
    let mut route = weights(50, 50);
    route["spec"]["hostnames"] = json!(["app.example.com"]);
    route["spec"]["rules"][0]["backendRefs"][1]["filters"] = json!([{
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "canary=always; Max-Age=60"}]},
    }]);
    let generation = release.gateway.configure(&route).await.unwrap();

    let client = reqwest::Client::new();
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let answer = client
            .get(release.gateway.url("/"))
            .header("host", "app.example.com")
            .send()
            .await
            .unwrap();
        let app = answer.headers()[SERVED_BY].to_str().unwrap().to_owned();
        assert_eq!(answer.headers()[GENERATION].to_str().unwrap(), generation.to_string());
        let cookie = answer
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        let expected = (app == "canary").then(|| "canary=always; Max-Age=60".to_owned());
        assert_eq!(cookie, expected, "answer from {app}");
        *seen.entry(app).or_default() += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    // Another host name is no route's: 404 from the gateway itself.
    let other = client
        .get(release.gateway.url("/"))
        .header("host", "other.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert!(other.headers().get(SERVED_BY).is_none());
}
