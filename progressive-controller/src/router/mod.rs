//! Traffic routers: one [`TrafficRouter`] per API that can split traffic between the primary
//! and the canary, one file each, chosen by the Canary's closed `provider` enum.
//!
//! A router is pure: from the release and the [`Routes`] the analysis decided, it returns the
//! objects its API expects ([`TrafficRouter::desired`]). [`apply`] writes them by server-side
//! apply with the controller's field manager; they carry the Canary's owner reference and the
//! leave-alone annotations of [`Release::metadata`]. What a router's API cannot express (a
//! mirror for `smi`, a 90/10 split for `kubernetes`) is refused with an error naming the router
//! ([`RouterError::Unsupported`]), never dropped.

pub mod gatewayapi;
pub mod istio;
pub mod kubernetes;
pub mod nginx;
pub mod smi;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use eddy_api::progressive::{RequestMatch, RouterKind, SessionAffinity, StringMatch};

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
    /// The routes ask for something the router's API cannot express (e.g. a mirror for `smi`).
    #[error("the {router} router cannot {what}")]
    Unsupported { router: &'static str, what: String },
    /// An input has not the shape the router needs: an object read from the cluster (the
    /// Ingress), or the Canary's own matches and the weights decided for it.
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

/// What a router can express besides weights. [`check_routes`] refuses the rest, naming the
/// router, rather than dropping it: a Canary that asks for a mirror must not silently get none.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Supports {
    /// A/B testing: [`Routes::matches`].
    pub matches: bool,
    /// [`Routes::mirror`].
    pub mirror: bool,
    /// [`Routes::session_affinity`].
    pub session_affinity: bool,
    /// The Canary's `service.timeout`.
    pub timeout: bool,
}

/// Checks `routes`, and the Canary's `service.timeout`, against what `router` `supports`, and
/// the invariants every router relies on: weights from 0 to 100 adding up to 100, a mirror
/// percentage from 1 to 100.
pub(crate) fn check_routes(
    router: &'static str,
    supports: Supports,
    release: &Release,
    routes: &Routes,
) -> Result<(), RouterError> {
    let percentage = 0..=100;
    if !percentage.contains(&routes.primary)
        || !percentage.contains(&routes.canary)
        || routes.primary + routes.canary != 100
    {
        return Err(RouterError::Input {
            object: canary_object(release),
            reason: format!(
                "weights {}/{} (primary/canary) are not two percentages adding up to 100",
                routes.primary, routes.canary
            ),
        });
    }
    if let Some(mirror) = routes.mirror
        && !(1..=100).contains(&mirror)
    {
        return Err(RouterError::Input {
            object: canary_object(release),
            reason: format!("a mirror of {mirror}% is not a percentage from 1 to 100"),
        });
    }
    let refused = [
        (!routes.matches.is_empty() && !supports.matches).then_some("route requests by header or cookie (A/B testing)"),
        (routes.mirror.is_some() && !supports.mirror).then_some("mirror requests to the canary"),
        (routes.session_affinity.is_some() && !supports.session_affinity)
            .then_some("keep sessions on the canary with a cookie (session affinity)"),
        (release.service.timeout.is_some() && !supports.timeout).then_some("set a request timeout (service.timeout)"),
    ];
    match refused.into_iter().flatten().next() {
        Some(what) => Err(RouterError::Unsupported {
            router,
            what: what.to_owned(),
        }),
        None => Ok(()),
    }
}

/// `Canary/<namespace>/<name>`, the subject of errors about the Canary's own fields.
fn canary_object(release: &Release) -> String {
    format!("Canary/{}/{}", release.namespace, release.name)
}

/// The API resource of a kind that `k8s-openapi` does not have.
pub(crate) fn custom_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// One header or cookie condition of a [`RequestMatch`]: exactly one of exact, prefix, regex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueMatch<'a> {
    /// The value equals this.
    Exact(&'a str),
    /// The value starts with this.
    Prefix(&'a str),
    /// The value matches this regular expression.
    Regex(&'a str),
}

impl<'a> ValueMatch<'a> {
    /// The condition `given` sets on the header or cookie `name`; an error when it sets none or
    /// more than one.
    pub(crate) fn of(release: &Release, name: &str, given: &'a StringMatch) -> Result<Self, RouterError> {
        match (given.exact.as_deref(), given.prefix.as_deref(), given.regex.as_deref()) {
            (Some(value), None, None) => Ok(Self::Exact(value)),
            (None, Some(value), None) => Ok(Self::Prefix(value)),
            (None, None, Some(value)) => Ok(Self::Regex(value)),
            _ => Err(RouterError::Input {
                object: canary_object(release),
                reason: format!("the match on {name:?} must set exactly one of exact, prefix and regex"),
            }),
        }
    }

    /// The condition as a regular expression, for APIs without a prefix (or exact) match.
    pub(crate) fn to_regex(self) -> String {
        match self {
            Self::Exact(value) => format!("^{}$", regex::escape(value)),
            Self::Prefix(prefix) => format!("^{}.*", regex::escape(prefix)),
            Self::Regex(regex) => regex.to_owned(),
        }
    }
}

/// A regular expression on the `Cookie` header that holds when the cookie `name` meets `value`.
/// The cookie may stand anywhere in the header and its value is matched whole, so anchors
/// inside a regex condition cannot match.
pub(crate) fn cookie_regex(name: &str, value: ValueMatch<'_>) -> String {
    let value = match value {
        ValueMatch::Exact(value) => regex::escape(value),
        ValueMatch::Prefix(prefix) => format!("{}[^;]*", regex::escape(prefix)),
        ValueMatch::Regex(regex) => format!("(?:{regex})"),
    };
    format!(r"^(.*?;\s*)?{}={value}(;.*)?$", regex::escape(name))
}

/// The cookie condition of `request` as a regular expression on the `Cookie` header, if it has
/// one. The APIs match each header once per condition list, so one match can require one cookie
/// only, and not together with a condition of its own on the `Cookie` header.
pub(crate) fn cookie_header_regex(
    router: &'static str,
    release: &Release,
    request: &RequestMatch,
) -> Result<Option<String>, RouterError> {
    let mut cookies = request.cookies.iter();
    let Some((name, given)) = cookies.next() else {
        return Ok(None);
    };
    if cookies.next().is_some() {
        return Err(RouterError::Unsupported {
            router,
            what: "require two cookies in one match".into(),
        });
    }
    if request
        .headers
        .keys()
        .any(|header| header.eq_ignore_ascii_case("cookie"))
    {
        return Err(RouterError::Unsupported {
            router,
            what: "match a cookie and the Cookie header in one match".into(),
        });
    }
    Ok(Some(cookie_regex(name, ValueMatch::of(release, name, given)?)))
}

/// The value of the session-affinity cookie: a request carrying `<cookieName>=canary` stays on
/// the canary. Fixed so that routers need no state; the controller names the cookie anew for a
/// release whose canary old sessions must not follow.
pub const AFFINITY_COOKIE_VALUE: &str = "canary";

/// The `Set-Cookie` value the canary's answers carry under session affinity. `Path=/`: the
/// canary serves the whole host, so the cookie must not stay on the first request's path.
pub(crate) fn affinity_set_cookie(affinity: &SessionAffinity) -> String {
    format!(
        "{}={AFFINITY_COOKIE_VALUE}; Max-Age={}; Path=/",
        affinity.cookie_name, affinity.max_age
    )
}

/// The regular expression on the `Cookie` header of requests that stay on the canary.
pub(crate) fn affinity_cookie_regex(affinity: &SessionAffinity) -> String {
    cookie_regex(&affinity.cookie_name, ValueMatch::Exact(AFFINITY_COOKIE_VALUE))
}

/// Writes `objects` by server-side apply with `field_manager`, forcing ownership of the fields
/// the router sets. Stops at the first refusal, naming the object.
pub async fn apply(client: &kube::Client, field_manager: &str, objects: &[Desired]) -> Result<(), RouterError> {
    for desired in objects {
        let metadata = &desired.object["metadata"];
        let name = metadata["name"].as_str().unwrap_or_default();
        let namespace = metadata["namespace"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &desired.resource);
        api.patch(
            name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(&desired.object),
        )
        .await
        .map_err(|source| RouterError::Apply {
            object: format!("{}/{namespace}/{name}", desired.resource.kind),
            source,
        })?;
    }
    Ok(())
}

/// The Canary every router's unit tests release, and checks shared by them.
#[cfg(test)]
pub(crate) mod fixtures {
    use eddy_api::progressive::Canary;
    use serde_json::{Value, json};

    use crate::release::{FLUX_RECONCILE_ANNOTATION, RECONCILE_ANNOTATION, Release};

    /// The uid of the fixture Canary, which owner references must carry.
    pub(crate) const CANARY_UID: &str = "9b0c7b36-3f5e-4a55-9d5b-5a1f3c0e7d21";

    /// The release of Canary `shop/web` (target `web`, pods labelled `app: web`) whose
    /// `service` section is `service`.
    pub(crate) fn release(service: Value) -> Release {
        let canary: Canary = serde_json::from_value(json!({
            "apiVersion": "progressive.eddy.dev/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": "web", "namespace": "shop", "uid": CANARY_UID},
            "spec": {
                "targetRef": {"kind": "Deployment", "name": "web"},
                "provider": "kubernetes",
                "service": service,
            },
        }))
        .expect("a valid Canary");
        Release::new(&canary, ("app".into(), "web".into()))
    }

    /// Asserts that `object` is named `name` in the Canary's namespace, is owned by the Canary
    /// and carries the leave-alone annotations.
    pub(crate) fn assert_generated(object: &Value, name: &str) {
        let metadata = &object["metadata"];
        assert_eq!(metadata["name"], name);
        assert_eq!(metadata["namespace"], "shop");
        let owner = &metadata["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["uid"], &owner["controller"]),
            (&json!("Canary"), &json!("web"), &json!(CANARY_UID), &json!(true)),
            "{metadata:#}"
        );
        assert_eq!(metadata["annotations"][RECONCILE_ANNOTATION], "disabled");
        assert_eq!(metadata["annotations"][FLUX_RECONCILE_ANNOTATION], "disabled");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn cookie_matches(regex: &str, header: &str) -> bool {
        regex::Regex::new(regex).expect("a valid regex").is_match(header)
    }

    #[test]
    fn cookie_regex_finds_the_cookie_anywhere_in_the_header_and_matches_its_whole_value() {
        let exact = cookie_regex("canary", ValueMatch::Exact("always"));
        assert!(cookie_matches(&exact, "canary=always"));
        assert!(cookie_matches(&exact, "session=1; canary=always; theme=dark"));
        assert!(!cookie_matches(&exact, "canary=always-not"));
        assert!(!cookie_matches(&exact, "notcanary=always"));
        assert!(!cookie_matches(&exact, "session=canary=always"));

        let prefix = cookie_regex("user", ValueMatch::Prefix("beta."));
        assert!(cookie_matches(&prefix, "a=b; user=beta.42"));
        assert!(!cookie_matches(&prefix, "user=betaX42"), "the prefix is literal");

        let regex = cookie_regex("user", ValueMatch::Regex("[0-9]+"));
        assert!(cookie_matches(&regex, "user=123; a=b"));
        assert!(!cookie_matches(&regex, "user=12a"));
    }

    #[test]
    fn a_match_sets_exactly_one_condition() {
        let release = fixtures::release(json!({"port": 80}));
        let two = StringMatch {
            exact: Some("a".into()),
            prefix: Some("b".into()),
            regex: None,
        };
        let err = ValueMatch::of(&release, "x-user", &two).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Canary/shop/web: the match on \"x-user\" must set exactly one of exact, prefix and regex"
        );
        assert!(ValueMatch::of(&release, "x-user", &StringMatch::default()).is_err());
    }

    #[test]
    fn check_routes_refuses_what_the_router_cannot_express_and_names_it() {
        let release = fixtures::release(json!({"port": 80}));
        let mirrored = Routes {
            mirror: Some(50),
            ..Routes::primary_only()
        };
        let err = check_routes("smi", Supports::default(), &release, &mirrored).unwrap_err();
        assert_eq!(err.to_string(), "the smi router cannot mirror requests to the canary");

        let ab = Routes {
            matches: vec![RequestMatch {
                headers: BTreeMap::from([("x-canary".into(), StringMatch::default())]),
                ..RequestMatch::default()
            }],
            ..Routes::primary_only()
        };
        let err = check_routes("kubernetes", Supports::default(), &release, &ab).unwrap_err();
        assert!(err.to_string().contains("A/B testing"), "{err}");

        let timed = fixtures::release(json!({"port": 80, "timeout": "30s"}));
        let err = check_routes("smi", Supports::default(), &timed, &Routes::primary_only()).unwrap_err();
        assert!(err.to_string().contains("service.timeout"), "{err}");

        let everything = Supports {
            matches: true,
            mirror: true,
            session_affinity: true,
            timeout: true,
        };
        check_routes("istio", everything, &timed, &mirrored).unwrap();
    }

    #[test]
    fn check_routes_refuses_weights_that_are_not_a_split_of_100() {
        let release = fixtures::release(json!({"port": 80}));
        for (primary, canary) in [(90, 20), (-10, 110), (0, 0)] {
            let routes = Routes {
                primary,
                canary,
                ..Routes::default()
            };
            let err = check_routes("istio", Supports::default(), &release, &routes).unwrap_err();
            assert!(matches!(err, RouterError::Input { .. }), "{primary}/{canary}: {err}");
        }
        let zero_mirror = Routes {
            mirror: Some(0),
            ..Routes::primary_only()
        };
        let all = Supports {
            mirror: true,
            ..Supports::default()
        };
        assert!(check_routes("istio", all, &release, &zero_mirror).is_err());
    }

    #[test]
    fn every_router_kind_has_its_router() {
        for (kind, name) in [
            (RouterKind::Gatewayapi, "gatewayapi"),
            (RouterKind::GatewayapiV1beta1, "gatewayapi"),
            (RouterKind::Nginx, "nginx"),
            (RouterKind::Istio, "istio"),
            (RouterKind::Smi, "smi"),
            (RouterKind::SmiV1alpha2, "smi"),
            (RouterKind::Kubernetes, "kubernetes"),
        ] {
            assert_eq!(router_for(kind).name(), name);
        }
        assert!(router_for(RouterKind::Kubernetes).owns_apex_service());
        assert!(!router_for(RouterKind::Istio).owns_apex_service());
    }
}
