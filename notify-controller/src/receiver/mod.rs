//! Receivers: webhooks in. The reconcile reads a Receiver's token, derives its secret path
//! (`/hook/<sha256 of token, name and namespace>`, as Flux does), writes it to
//! `status.webhookPath` and registers it with the server. The server answers `POST /hook/...`:
//! unknown path 404, suspended Receiver 503, oversize body 413, slow body 408, a request that
//! fails [`verify`] 400/401/403, an event type the Receiver does not act on 200 with nothing
//! done; a genuine request sets `requestedAt` on every selected object, a burst coalesced into
//! one patch per object, so that source- and apply-controller act at once.

pub mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use sha2::{Digest, Sha256};

use eddy_api::conditions::{self, Status};
use eddy_api::notify::{Receiver, ReceiverResource};
use eddy_runtime::Context;

use crate::metrics::NotifyMetrics;
use crate::status::{StatusError, Verdict, write_verdict};
use verify::Verified;

/// The largest webhook body read. GitHub caps its payloads at 25 MiB; push events are far
/// smaller, and nothing in the body is used beyond its event type.
pub const MAX_HOOK_BODY: usize = 4 * 1024 * 1024;
/// How soon a Receiver whose Secret is missing is looked at again.
const MISSING_RETRY: Duration = Duration::from_secs(30);

/// The registered Receivers, by path.
#[derive(Default)]
pub struct Registry {
    by_path: RwLock<HashMap<String, Arc<Registered>>>,
    pending: Mutex<HashSet<(String, String, String, String)>>,
}

/// What the server needs of one Receiver besides the object itself (read live from the cache,
/// so that a change of spec applies at once).
pub struct Registered {
    receiver: ObjectRef<Receiver>,
    token: String,
}

/// An object whose patch is in flight; dropping it (also when the request is abandoned
/// mid-patch) lets the next request patch again.
struct InFlight<'a> {
    registry: &'a Registry,
    key: (String, String, String, String),
}

impl<'a> InFlight<'a> {
    fn enter(registry: &'a Registry, key: (String, String, String, String)) -> Option<Self> {
        let fresh = registry
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        fresh.then_some(Self { registry, key })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.registry
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// `/hook/<hex sha256 of token, name and namespace>`.
pub fn webhook_path(token: &str, name: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{token}{name}{namespace}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("/hook/{hex}")
}

impl Registry {
    fn register(&self, path: String, registered: Registered) {
        let mut by_path = self.by_path.write().unwrap_or_else(|p| p.into_inner());
        by_path.retain(|_, existing| existing.receiver != registered.receiver);
        by_path.insert(path, Arc::new(registered));
    }

    fn unregister(&self, receiver: &ObjectRef<Receiver>) {
        let mut by_path = self.by_path.write().unwrap_or_else(|p| p.into_inner());
        by_path.retain(|_, existing| existing.receiver != *receiver);
    }

    fn find(&self, path: &str) -> Option<Arc<Registered>> {
        let by_path = self.by_path.read().unwrap_or_else(|p| p.into_inner());
        by_path.get(path).cloned()
    }
}

/// Reads the Receiver's token, registers its path and writes it to the status.
pub async fn reconcile(
    receiver: Arc<Receiver>,
    ctx: Arc<Context>,
    registry: Arc<Registry>,
) -> Result<Action, StatusError> {
    let namespace = receiver.namespace().unwrap_or_default();
    let name = receiver.name_any();
    let reference = ObjectRef::from_obj(receiver.as_ref());
    let secret_name = &receiver.spec.secret_ref.name;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let token = match secrets.get_opt(secret_name).await {
        Ok(Some(secret)) => secret
            .data
            .unwrap_or_default()
            .get("token")
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("Secret {namespace}/{secret_name} has no token key")),
        Ok(None) => Err(format!("Secret {namespace}/{secret_name} not found")),
        Err(err) => Err(format!("reading Secret {namespace}/{secret_name}: {err}")),
    };
    let token = match token {
        Ok(token) => token,
        Err(message) => {
            registry.unregister(&reference);
            let verdict = Verdict {
                ready: Status::False,
                reason: crate::status::reasons::SECRET_NOT_FOUND,
                message,
                stalled: false,
            };
            write_verdict(&ctx, receiver.as_ref(), &verdict, Default::default()).await?;
            return Ok(Action::requeue(MISSING_RETRY));
        }
    };
    let path = webhook_path(&token, &name, &namespace);
    registry.register(
        path.clone(),
        Registered {
            receiver: reference,
            token,
        },
    );
    let verdict = if receiver.spec.suspend {
        Verdict {
            ready: Status::True,
            reason: conditions::reason::SUSPENDED,
            message: format!("suspended: {path} answers 503"),
            stalled: false,
        }
    } else {
        Verdict {
            ready: Status::True,
            reason: conditions::reason::SUCCEEDED,
            message: format!("Receiver initialised for path {path}"),
            stalled: false,
        }
    };
    let mut extra = serde_json::Map::new();
    extra.insert("webhookPath".into(), path.into());
    write_verdict(&ctx, receiver.as_ref(), &verdict, extra).await?;
    let recheck = receiver.spec.interval.to_std().unwrap_or(Duration::from_secs(600));
    Ok(Action::requeue(recheck))
}

#[derive(Clone)]
struct Hooks {
    client: Client,
    registry: Arc<Registry>,
    receivers: Store<Receiver>,
    metrics: NotifyMetrics,
    cross_namespace: bool,
}

/// The routes of the Receivers' paths (`/hook/<digest>`).
pub fn router(
    client: Client,
    registry: Arc<Registry>,
    receivers: Store<Receiver>,
    metrics: NotifyMetrics,
    cross_namespace: bool,
) -> Router {
    let hooks = Hooks {
        client,
        registry,
        receivers,
        metrics,
        cross_namespace,
    };
    Router::new()
        .route("/hook/{digest}", axum::routing::post(receive))
        .with_state(hooks)
}

async fn receive(State(hooks): State<Hooks>, Path(digest): Path<String>, request: Request) -> Response {
    let (answer, outcome) = answer(&hooks, &digest, request).await;
    hooks.metrics.receiver_call(outcome);
    answer
}

async fn answer(hooks: &Hooks, digest: &str, request: Request) -> (Response, &'static str) {
    let path = format!("/hook/{digest}");
    // The object must still exist: a deleted Receiver's path stops working at once.
    let Some((registered, live)) = hooks
        .registry
        .find(&path)
        .and_then(|r| hooks.receivers.get(&r.receiver).map(|live| (r, live)))
    else {
        return (
            (StatusCode::NOT_FOUND, "no Receiver has this path\n").into_response(),
            "not_found",
        );
    };
    if live.spec.suspend {
        return (
            (StatusCode::SERVICE_UNAVAILABLE, "the Receiver is suspended\n").into_response(),
            "suspended",
        );
    }
    let (parts, body) = request.into_parts();
    let body = match crate::server::read_body(body, MAX_HOOK_BODY).await {
        Ok(body) => body,
        Err(refusal) => return (refusal, "bad_body"),
    };
    let spec = &live.spec;
    match verify::verify(
        spec.receiver_type,
        &registered.token,
        &spec.events,
        &parts.headers,
        &body,
    ) {
        Err(refusal) => {
            tracing::info!(receiver = %registered.receiver, status = %refusal.status, reason = %refusal.message, "webhook refused");
            (
                (refusal.status, format!("{}\n", refusal.message)).into_response(),
                "refused",
            )
        }
        Ok(Verified::Ignore(why)) => (
            (StatusCode::OK, format!("{why}; nothing done\n")).into_response(),
            "ignored",
        ),
        Ok(Verified::Reconcile) => match request_reconciles(hooks, &live).await {
            Ok(count) => {
                tracing::info!(receiver = %registered.receiver, objects = count, "webhook accepted; reconciles requested");
                (
                    (StatusCode::OK, format!("reconcile requested for {count} object(s)\n")).into_response(),
                    "accepted",
                )
            }
            Err(message) => {
                tracing::warn!(receiver = %registered.receiver, error = %message, "webhook accepted but requesting reconciles failed");
                // The caller is outside the cluster: the details stay in the log.
                let text = "requesting the reconciles failed; see notify-controller's log\n";
                ((StatusCode::INTERNAL_SERVER_ERROR, text).into_response(), "error")
            }
        },
    }
}

/// Annotates every selected object; returns how many were selected.
async fn request_reconciles(hooks: &Hooks, receiver: &Receiver) -> Result<usize, String> {
    let namespace = receiver.namespace().unwrap_or_default();
    let mut objects = Vec::new();
    for resource in &receiver.spec.resources {
        objects.extend(select(hooks, &namespace, resource).await?);
    }
    let count = objects.len();
    let value = Timestamp::now().to_string();
    let patches = objects.into_iter().map(|(api_version, kind, namespace, name)| {
        let value = value.clone();
        async move {
            let key = (api_version, kind, namespace, name);
            // Coalesce: one patch per object in flight; a request arriving meanwhile is
            // served by it, since that patch lands after the request's push happened.
            let Some(_in_flight) = InFlight::enter(&hooks.registry, key.clone()) else {
                return Ok(());
            };
            let (api_version, kind, namespace, name) = &key;
            let api = crate::objects::api(&hooks.client, api_version, kind, namespace);
            let annotation = crate::objects::requested_at_annotation(api_version);
            let patch = serde_json::json!({"metadata": {"annotations": {annotation: value}}});
            let outcome = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await;
            match outcome {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
                Err(err) => Err(format!("annotating {kind}/{namespace}/{name}: {err}")),
            }
        }
    });
    let failures: Vec<String> = futures::future::join_all(patches)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if failures.is_empty() {
        Ok(count)
    } else {
        Err(failures.join("; "))
    }
}

/// The objects a resource entry names: one by name, or all with its labels for `*`.
async fn select(
    hooks: &Hooks,
    receiver_namespace: &str,
    resource: &ReceiverResource,
) -> Result<Vec<(String, String, String, String)>, String> {
    let kind = resource.kind.as_str().to_owned();
    let api_version = resource
        .api_version
        .clone()
        .unwrap_or_else(|| resource.kind.default_api_version().to_owned());
    let namespace = resource
        .namespace
        .clone()
        .unwrap_or_else(|| receiver_namespace.to_owned());
    if namespace != receiver_namespace && !hooks.cross_namespace {
        return Err(format!(
            "{kind}/{namespace}/{} is in another namespace, and cross-namespace references are disabled",
            resource.name
        ));
    }
    if resource.name != "*" {
        return Ok(vec![(api_version, kind, namespace, resource.name.clone())]);
    }
    let selector: Vec<String> = resource.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let api = crate::objects::api(&hooks.client, &api_version, &kind, &namespace);
    let list = api
        .list_metadata(&ListParams::default().labels(&selector.join(",")))
        .await
        .map_err(|err| format!("listing {kind} in {namespace}: {err}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|item| (api_version.clone(), kind.clone(), namespace.clone(), item.name_any()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_sha256_of_token_name_and_namespace() {
        // sha256("tokenwebshop")
        let expected = Sha256::digest(b"tokenwebshop");
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(webhook_path("token", "web", "shop"), format!("/hook/{hex}"));
        assert_ne!(
            webhook_path("token", "web", "shop"),
            webhook_path("token2", "web", "shop")
        );
    }
}
