//! The reconciles of Provider and Alert: each checks its object (a Provider resolves its Secret
//! and address, an Alert compiles its selection and finds its Provider, and shows the last
//! delivery outcome) and writes the verdict as conditions, only when it changed. Receivers have
//! their own module, [`crate::receiver`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;

use eddy_api::conditions::{self, READY, STALLED, Status};
use eddy_api::meta::RECONCILE_REQUESTED_AT;
use eddy_api::notify::{Alert, EventSeverity, Provider};
use eddy_runtime::{Context, ControllerError, write_status};

use crate::dispatch::{Hub, Outcome, key_of};
use crate::matching::Selector;
use crate::target;

/// How often a healthy Provider's Secret is checked again.
const PROVIDER_RECHECK: Duration = Duration::from_secs(300);
/// How soon a missing Secret or Provider is looked for again.
const MISSING_RETRY: Duration = Duration::from_secs(30);

/// Reasons of notify-controller's conditions.
pub mod reasons {
    /// The Provider's configuration cannot work until it changes.
    pub const INVALID_PROVIDER: &str = "InvalidProvider";
    /// The Provider's Secret is missing or unreadable.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// The Alert's selection cannot work until it changes.
    pub const INVALID_SELECTOR: &str = "InvalidSelector";
    /// The Alert's Provider does not exist.
    pub const PROVIDER_NOT_FOUND: &str = "ProviderNotFound";
    /// The last send of the Alert failed.
    pub const DISPATCH_FAILED: &str = "NotificationDispatchFailed";
}

/// A status write failed.
#[derive(Debug, thiserror::Error)]
#[error("writing the status of {object}: {source}")]
pub struct StatusError {
    object: String,
    #[source]
    source: kube::Error,
}

impl ControllerError for StatusError {
    fn reason(&self) -> &'static str {
        "StatusWriteFailed"
    }
}

/// The verdict on an object, as conditions.
pub struct Verdict {
    /// Ready's status.
    pub ready: Status,
    /// Its reason.
    pub reason: &'static str,
    /// Its message.
    pub message: String,
    /// A terminal problem: Stalled is set too.
    pub stalled: bool,
}

/// Writes `verdict` (and `extra` status fields) unless the object already says exactly that.
pub async fn write_verdict<K>(
    ctx: &Context,
    obj: &K,
    verdict: &Verdict,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<(), StatusError>
where
    K: eddy_runtime::Watched + Serialize,
{
    let current = serde_json::to_value(obj)
        .map(|v| v["status"].clone())
        .unwrap_or_default();
    let mut conditions: Vec<Condition> = serde_json::from_value(current["conditions"].clone()).unwrap_or_default();
    let generation = obj.meta().generation;
    let requested = obj.annotations().get(RECONCILE_REQUESTED_AT).cloned();
    let ready_now = conditions::get(&conditions, READY).is_some_and(|ready| {
        ready.status == verdict.ready.as_str()
            && ready.reason == verdict.reason
            && ready.message == verdict.message
            && ready.observed_generation == generation
    });
    let stalled_now = conditions::get(&conditions, STALLED).is_some() == verdict.stalled;
    let extra_now = extra.iter().all(|(key, value)| current[key] == *value);
    if ready_now
        && stalled_now
        && extra_now
        && current["observedGeneration"].as_i64() == generation
        && current["lastHandledReconcileAt"].as_str() == requested.as_deref()
    {
        return Ok(());
    }
    let now = Timestamp::now();
    conditions::set(
        &mut conditions,
        READY,
        verdict.ready,
        verdict.reason,
        verdict.message.clone(),
        generation,
        now,
    );
    if verdict.stalled {
        conditions::set(
            &mut conditions,
            STALLED,
            Status::True,
            verdict.reason,
            verdict.message.clone(),
            generation,
            now,
        );
    } else {
        conditions::remove(&mut conditions, STALLED);
    }
    let mut status = serde_json::json!({ "observedGeneration": generation, "conditions": conditions });
    if let Some(requested) = requested {
        status["lastHandledReconcileAt"] = requested.into();
    }
    for (key, value) in extra {
        status[key] = value;
    }
    write_status(ctx, obj, status).await.map_err(|source| StatusError {
        object: format!("{}/{}", K::kind(&()), key_of(obj)),
        source,
    })
}

/// Checks that a Provider can send: its Secret, address, token, CA and proxy.
pub async fn reconcile_provider(
    provider: Arc<Provider>,
    ctx: Arc<Context>,
    hub: Arc<Hub>,
) -> Result<Action, StatusError> {
    let (verdict, action) = if provider.spec.suspend {
        let verdict = Verdict {
            ready: Status::True,
            reason: conditions::reason::SUSPENDED,
            message: "suspended: Alerts send nothing through this Provider".into(),
            stalled: false,
        };
        (verdict, Action::await_change())
    } else {
        match target::resolve(&ctx.client, &provider, hub.settings().block_private).await {
            Ok(target) => (
                Verdict {
                    ready: Status::True,
                    reason: conditions::reason::SUCCEEDED,
                    message: format!(
                        "sends to {} ({})",
                        target.shown_address(),
                        target::type_name(target.provider_type)
                    ),
                    stalled: false,
                },
                Action::requeue(PROVIDER_RECHECK),
            ),
            Err(invalid) if invalid.is_transient() => (
                Verdict {
                    ready: Status::False,
                    reason: reasons::SECRET_NOT_FOUND,
                    message: invalid.to_string(),
                    stalled: false,
                },
                Action::requeue(MISSING_RETRY),
            ),
            Err(invalid) => (
                Verdict {
                    ready: Status::False,
                    reason: reasons::INVALID_PROVIDER,
                    message: invalid.to_string(),
                    stalled: true,
                },
                // A Secret that changes can fix it; look again now and then.
                Action::requeue(PROVIDER_RECHECK),
            ),
        }
    };
    write_verdict(&ctx, provider.as_ref(), &verdict, Default::default()).await?;
    Ok(action)
}

/// Checks an Alert's selection and Provider, and shows its last delivery outcome.
pub async fn reconcile_alert(alert: Arc<Alert>, ctx: Arc<Context>, hub: Arc<Hub>) -> Result<Action, StatusError> {
    let key = key_of(alert.as_ref());
    let observed = serde_json::to_value(alert.as_ref())
        .ok()
        .and_then(|v| v["status"]["observedGeneration"].as_i64());
    if observed.is_some() && observed != alert.meta().generation {
        hub.forget_alert(&key);
    }
    let namespace = alert.namespace().unwrap_or_default();
    let provider = ObjectRef::<Provider>::new(&alert.spec.provider_ref.name).within(&namespace);
    let (verdict, action) = match Selector::compile(&namespace, &alert.spec, hub.settings().cross_namespace) {
        Err(invalid) => (
            Verdict {
                ready: Status::False,
                reason: reasons::INVALID_SELECTOR,
                message: invalid.to_string(),
                stalled: true,
            },
            Action::await_change(),
        ),
        Ok(_) if alert.spec.suspend => (
            Verdict {
                ready: Status::True,
                reason: conditions::reason::SUSPENDED,
                message: "suspended: sends nothing".into(),
                stalled: false,
            },
            Action::await_change(),
        ),
        Ok(_) => match (hub.provider_exists(&provider), hub.outcome(&key)) {
            (false, _) => (
                Verdict {
                    ready: Status::False,
                    reason: reasons::PROVIDER_NOT_FOUND,
                    message: format!("Provider {namespace}/{} not found", alert.spec.provider_ref.name),
                    stalled: false,
                },
                Action::requeue(MISSING_RETRY),
            ),
            (true, Some(Outcome::Failed(text))) => (
                Verdict {
                    ready: Status::False,
                    reason: reasons::DISPATCH_FAILED,
                    message: text,
                    stalled: false,
                },
                Action::await_change(),
            ),
            (true, _) => {
                let severity = match alert.spec.event_severity {
                    EventSeverity::Info => "all",
                    EventSeverity::Error => "error",
                };
                let message = format!(
                    "sends {severity} events of {} source(s) to Provider {}",
                    alert.spec.event_sources.len(),
                    alert.spec.provider_ref.name
                );
                (
                    Verdict {
                        ready: Status::True,
                        reason: conditions::reason::SUCCEEDED,
                        message,
                        stalled: false,
                    },
                    Action::await_change(),
                )
            }
        },
    };
    write_verdict(&ctx, alert.as_ref(), &verdict, Default::default()).await?;
    Ok(action)
}
