//! Traffic routers: one [`TrafficRouter`] per API that can split traffic between the primary
//! and the canary, one file each, chosen by the Canary's closed `provider` enum.
//!
//! A router is pure: from the release and the [`Routes`] the analysis decided, it returns the
//! objects its API expects ([`TrafficRouter::desired`]). [`apply`] writes them by server-side
//! apply with the controller's field manager; they carry the Canary's owner reference and the
//! leave-alone annotations of [`Release::metadata`].

pub mod gatewayapi;
pub mod istio;
pub mod kubernetes;
pub mod nginx;
pub mod smi;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::Value;

use eddy_api::progressive::{RequestMatch, RouterKind, SessionAffinity};

use crate::release::Release;

/// Where requests go, as the analysis decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routes {
    /// Percentage of requests served by the primary.
    pub primary: i32,
    /// Percentage of requests served by the canary; `primary + canary == 100`.
    pub canary: i32,
    /// A/B testing: requests matching any of these go to the canary whatever the weights.
    pub matches: Vec<RequestMatch>,
    /// Percentage of requests copied to the canary, whose answers are discarded.
    pub mirror: Option<i32>,
    /// Requests carrying this cookie stay on the canary; answers from the canary set it.
    pub session_affinity: Option<SessionAffinity>,
}

impl Routes {
    /// All traffic to the primary, nothing else.
    pub fn primary_only() -> Self {
        Self {
            primary: 100,
            ..Self::default()
        }
    }
}

/// What a router must read before it can write (e.g. the Ingress the `nginx` router copies).
#[derive(Clone, Debug, Default)]
pub struct RouterInputs {
    /// The Ingress named by the Canary's `ingressRef`, as read.
    pub ingress: Option<Value>,
}

/// An object a router writes, with the API resource it is written to.
#[derive(Clone, Debug)]
pub struct Desired {
    /// Group, version, kind and plural of the object.
    pub resource: ApiResource,
    /// The whole object, `apiVersion`, `kind` and `metadata` included.
    pub object: Value,
}

/// Why a router could not write its objects.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The Canary lacks something the router needs (e.g. `ingressRef` for `nginx`).
    #[error("the {router} router needs {what}")]
    Missing { router: &'static str, what: String },
    /// An input object read from the cluster has not the shape the router needs.
    #[error("{object}: {reason}")]
    Input { object: String, reason: String },
    /// The API server refused an object (e.g. its CRD is not installed).
    #[error("applying {object}: {source}")]
    Apply {
        object: String,
        #[source]
        source: kube::Error,
    },
}

/// One way of splitting traffic.
pub trait TrafficRouter: Send + Sync {
    /// The router's name, as in the Canary's `provider`.
    fn name(&self) -> &'static str;

    /// The objects that make traffic follow `routes`.
    fn desired(&self, release: &Release, routes: &Routes, inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError>;

    /// Whether this router steers traffic by pointing the apex Service at the primary or the
    /// canary itself (then its [`desired`](Self::desired) includes the apex Service); otherwise
    /// the controller's apex Service always selects the primary's pods.
    fn owns_apex_service(&self) -> bool {
        false
    }
}

/// The router of `kind`.
pub fn router_for(kind: RouterKind) -> &'static dyn TrafficRouter {
    match kind {
        RouterKind::Gatewayapi => &gatewayapi::GatewayApi { version: "v1" },
        RouterKind::GatewayapiV1beta1 => &gatewayapi::GatewayApi { version: "v1beta1" },
        RouterKind::Nginx => &nginx::Nginx,
        RouterKind::Istio => &istio::Istio,
        RouterKind::Smi => &smi::Smi { version: "v1alpha3" },
        RouterKind::SmiV1alpha2 => &smi::Smi { version: "v1alpha2" },
        RouterKind::Kubernetes => &kubernetes::Kubernetes,
    }
}

/// Writes `objects` by server-side apply with `field_manager`, forcing ownership of the fields
/// the router sets. Stops at the first refusal, naming the object.
pub async fn apply(client: &kube::Client, field_manager: &str, objects: &[Desired]) -> Result<(), RouterError> {
    for desired in objects {
        let metadata = &desired.object["metadata"];
        let name = metadata["name"].as_str().unwrap_or_default();
        let namespace = metadata["namespace"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &desired.resource);
        api.patch(name, &PatchParams::apply(field_manager).force(), &Patch::Apply(&desired.object))
            .await
            .map_err(|source| RouterError::Apply {
                object: format!("{}/{namespace}/{name}", desired.resource.kind),
                source,
            })?;
    }
    Ok(())
}
