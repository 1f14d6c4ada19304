//! MetricTemplate status: Ready when its query renders and its address is a URL, so that a
//! broken template is seen before a release depends on it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use eddy_api::conditions;
use eddy_api::progressive::{MetricTemplate, MetricTemplateStatus};
use eddy_runtime::{Context, StatusWriteError, write_status};

use crate::metrics::template::{TemplateValues, render};

/// Checks a MetricTemplate and says so in its Ready condition.
pub async fn reconcile(template: Arc<MetricTemplate>, ctx: Arc<Context>) -> Result<Action, StatusWriteError> {
    let generation = template.meta().generation;
    let mut status: MetricTemplateStatus = template.status.clone().unwrap_or_default();
    let before = status.clone();
    match check(&template) {
        Ok(()) => conditions::mark_ready(
            &mut status.conditions,
            conditions::reason::SUCCEEDED,
            "the query renders and the provider address is a URL",
            generation,
            Timestamp::now(),
        ),
        Err(reason) => conditions::mark_stalled(
            &mut status.conditions,
            "InvalidTemplate",
            reason,
            generation,
            Timestamp::now(),
        ),
    }
    status.observed_generation = generation;
    status.last_handled_reconcile_at = template
        .annotations()
        .get(eddy_api::meta::RECONCILE_REQUESTED_AT)
        .cloned();
    if status != before {
        let value = serde_json::to_value(&status).unwrap_or_default();
        write_status(&ctx, template.as_ref(), value).await.map_err(|source| {
            StatusWriteError::new(
                format!(
                    "MetricTemplate/{}/{}",
                    template.namespace().unwrap_or_default(),
                    template.name_any()
                ),
                source,
            )
        })?;
    }
    Ok(Action::await_change())
}

/// Renders the query with placeholder values (every `variables.<key>` it names gets one).
fn check(template: &MetricTemplate) -> Result<(), String> {
    reqwest::Url::parse(&template.spec.provider.address).map_err(|err| format!("provider.address: {err}"))?;
    let named = regex::Regex::new(r"variables\.([A-Za-z0-9_]+)").expect("a valid pattern");
    let variables: BTreeMap<String, String> = named
        .captures_iter(&template.spec.query)
        .map(|c| (c[1].to_owned(), "placeholder".to_owned()))
        .collect();
    let values = TemplateValues {
        name: "canary",
        namespace: "namespace",
        target: "target",
        service: "service",
        ingress: "ingress",
        interval: "1m",
        variables: &variables,
    };
    render(&template.spec.query, &values)
        .map(|_| ())
        .map_err(|err| format!("query: {err}"))
}
