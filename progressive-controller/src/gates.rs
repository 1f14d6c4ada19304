//! Evaluates the gates a tick needs ([`crate::decide::gates_needed`]): webhooks and metric
//! checks, all of one tick at once, into the [`Gates`] the decision takes. Also the webhooks that
//! are told rather than asked (`post-rollout`, `event`).
//!
//! MetricTemplates and their Secrets are read from the API server when a check needs them.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use eddy_api::progressive::{
    Canary, CanaryMetric, CanaryStatus, CanaryWebhook, CheckResult, MetricTemplate, WebhookType,
};
use eddy_runtime::Context;

use crate::decide::{self, Gate, Gates};
use crate::metrics::{self, Credentials, MetricScope, ResolvedTemplate};
use crate::release::Release;
use crate::webhook::{self, Payload};

/// How gates are evaluated, from the controller's flags.
#[derive(Clone, Debug)]
pub struct GateSettings {
    /// The Prometheus of Canaries that name no `metricsServer`.
    pub metrics_server: Option<String>,
    /// Time allowed for one query.
    pub query_timeout: Duration,
}

/// Evaluates `needed` for `canary`, the webhooks and metrics of each gate concurrently.
pub async fn evaluate(
    ctx: &Context,
    settings: &GateSettings,
    canary: &Canary,
    release: &Release,
    status: &CanaryStatus,
    needed: &[Gate],
) -> Gates {
    let mut gates = Gates::default();
    let payload = payload(canary, status);
    for gate in needed {
        match gate {
            Gate::ConfirmRollout | Gate::ConfirmTrafficIncrease | Gate::ConfirmPromotion => {
                let kind = match gate {
                    Gate::ConfirmRollout => WebhookType::ConfirmRollout,
                    Gate::ConfirmTrafficIncrease => WebhookType::ConfirmTrafficIncrease,
                    _ => WebhookType::ConfirmPromotion,
                };
                let results = call_all(canary, kind, &payload).await;
                gates
                    .confirmed
                    .insert(*gate, !results.is_empty() && results.iter().all(|r| r.passed));
            }
            Gate::PreRollout => {
                let results = call_all(canary, WebhookType::PreRollout, &payload).await;
                gates.checks.insert(*gate, results);
            }
            Gate::Rollback => {
                let results = call_all(canary, WebhookType::Rollback, &payload).await;
                gates.rollback_requested = results.iter().any(|r| r.passed);
            }
            Gate::Analysis => {
                let analysis = canary.spec.analysis.clone().unwrap_or_else(|| {
                    serde_json::from_value(serde_json::json!({})).expect("an empty analysis has every default")
                });
                let metrics = join_all(
                    analysis
                        .metrics
                        .iter()
                        .map(|metric| check_metric(ctx, settings, canary, release, metric)),
                );
                let hooks = call_all(canary, WebhookType::Rollout, &payload);
                let (mut checks, hooks) = futures::join!(metrics, hooks);
                checks.extend(hooks);
                gates.checks.insert(*gate, checks);
            }
        }
    }
    gates
}

/// Calls the webhooks of `kind` for a release that reached its end, without waiting on
/// their verdict beyond recording a failure as an event.
pub async fn run_hooks(
    ctx: &Context,
    _settings: &GateSettings,
    canary: &Canary,
    status: &CanaryStatus,
    kind: WebhookType,
) {
    let payload = payload(canary, status);
    for result in call_all(canary, kind, &payload).await {
        if !result.passed {
            let message = format!("webhook {}: {}", result.name, result.message.unwrap_or_default());
            ctx.events
                .record(canary, eddy_runtime::events::Report::error("WebhookFailed", message))
                .await;
        }
    }
}

/// Sends an event of the release to the Canary's `event` webhooks.
pub async fn send_event(canary: &Canary, status: &CanaryStatus, warning: bool, reason: &str, message: &str) {
    let hooks: Vec<&CanaryWebhook> = hooks_of(canary, WebhookType::Event).collect();
    if hooks.is_empty() {
        return;
    }
    let mut payload = payload(canary, status);
    payload.event = Some(webhook::EventDetails {
        message: message.to_owned(),
        reason: reason.to_owned(),
        event_type: if warning { "Warning" } else { "Normal" },
    });
    join_all(hooks.into_iter().map(|hook| webhook::call(hook, &payload))).await;
}

fn hooks_of(canary: &Canary, kind: WebhookType) -> impl Iterator<Item = &CanaryWebhook> {
    canary
        .spec
        .analysis
        .iter()
        .flat_map(|analysis| analysis.webhooks.iter())
        .filter(move |hook| hook.hook_type == kind)
}

async fn call_all(canary: &Canary, kind: WebhookType, payload: &Payload) -> Vec<CheckResult> {
    join_all(hooks_of(canary, kind).map(|hook| webhook::call(hook, payload))).await
}

fn payload(canary: &Canary, status: &CanaryStatus) -> Payload {
    Payload {
        name: canary.name_any(),
        namespace: canary.namespace().unwrap_or_default(),
        phase: status.phase,
        checksum: decide::checksum(status),
        event: None,
    }
}

/// Runs one metric check, reading its MetricTemplate and that template's Secret.
async fn check_metric(
    ctx: &Context,
    settings: &GateSettings,
    canary: &Canary,
    release: &Release,
    metric: &CanaryMetric,
) -> CheckResult {
    let namespace = canary.namespace().unwrap_or_default();
    let name = canary.name_any();
    let metrics_server = canary
        .spec
        .metrics_server
        .clone()
        .or_else(|| settings.metrics_server.clone())
        .unwrap_or_default();
    let ingress = canary.spec.ingress_ref.as_ref().map(|r| r.name.clone());
    let scope = MetricScope {
        namespace: &namespace,
        name: &name,
        target: &release.target,
        service: &release.apex,
        ingress: ingress.as_deref(),
        metrics_server: &metrics_server,
        timeout: settings.query_timeout,
    };
    let Some(reference) = &metric.template_ref else {
        return metrics::evaluate(&scope, metric, None).await;
    };
    let template_namespace = reference.namespace.clone().unwrap_or_else(|| namespace.clone());
    let templates: Api<MetricTemplate> = Api::namespaced(ctx.client.clone(), &template_namespace);
    let template = match templates.get_opt(&reference.name).await {
        Ok(Some(template)) => template,
        Ok(None) => return metrics::evaluate(&scope, metric, None).await,
        Err(err) => {
            return failed(
                metric,
                format!("reading MetricTemplate/{template_namespace}/{}: {err}", reference.name),
            );
        }
    };
    let credentials = match &template.spec.provider.secret_ref {
        None => None,
        Some(secret) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &template_namespace);
            match secrets.get_opt(&secret.name).await {
                Ok(Some(found)) => match Credentials::from_secret(&secret.name, &found.data.unwrap_or_default()) {
                    Ok(credentials) => Some(credentials),
                    Err(err) => return failed(metric, err.to_string()),
                },
                Ok(None) => return failed(metric, format!("Secret/{template_namespace}/{} not found", secret.name)),
                Err(err) => {
                    return failed(
                        metric,
                        format!("reading Secret/{template_namespace}/{}: {err}", secret.name),
                    );
                }
            }
        }
    };
    let template_name = template.name_any();
    let resolved = ResolvedTemplate {
        namespace: &template_namespace,
        name: &template_name,
        spec: &template.spec,
        credentials,
    };
    metrics::evaluate(&scope, metric, Some(&resolved)).await
}

fn failed(metric: &CanaryMetric, message: String) -> CheckResult {
    CheckResult {
        name: metric.name.clone(),
        value: None,
        passed: false,
        message: Some(message),
        time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        )),
    }
}
