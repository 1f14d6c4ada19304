//! The `nginx` router: a copy of the Canary's `ingressRef` Ingress, `<ingress>-canary`, whose
//! backends are `<apex>-canary` and whose ingress-nginx canary annotations say which requests
//! the canary gets: `canary-weight` percent, or those that `canary-by-header` (with
//! `-value` or `-pattern`) or `canary-by-cookie` select.
//!
//! The original Ingress is read (in [`RouterInputs::ingress`]) and never written: it stays the
//! user's, applied by whatever applies it, pointing at the apex Service, which selects the
//! primary's pods. ingress-nginx pairs the copy with it by host and path. The copy drops what
//! belongs to the original only: its canary annotations, its status, the server's metadata
//! (uid, resourceVersion, managedFields, creationTimestamp, ...), its owner references, kubectl's
//! last-applied configuration, and the marks of the GitOps controllers that apply it
//! (`apply.eddy.dev/`, `kustomize.toolkit.fluxcd.io/`), which would otherwise claim the copy.
//!
//! ingress-nginx evaluates one header and one cookie, either of which sends a request to the
//! canary, and a cookie only by the value `always`: matches beyond that are refused, as are
//! mirroring, session affinity and timeouts (a canary Ingress takes its other annotations from
//! the original).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use kube::core::ApiResource;
use serde_json::{Value, json};

use super::{Desired, RouterError, RouterInputs, Routes, Supports, TrafficRouter, ValueMatch, check_routes};
use crate::release::Release;

/// The prefix of ingress-nginx's annotations.
const ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// The prefix of every canary annotation ingress-nginx reads (`canary`, `canary-weight`, ...).
const CANARY_ANNOTATIONS: &str = "nginx.ingress.kubernetes.io/canary";
/// Label and annotation prefixes of the controllers that apply the original Ingress.
const APPLIER_PREFIXES: [&str; 2] = ["apply.eddy.dev/", "kustomize.toolkit.fluxcd.io/"];
/// kubectl's copy of what it applied, meaningful for the original only.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The cookie value by which ingress-nginx sends a request to the canary.
const COOKIE_ALWAYS: &str = "always";

/// The `nginx` router.
pub struct Nginx;

impl TrafficRouter for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn desired(&self, release: &Release, routes: &Routes, inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        let supports = Supports {
            matches: true,
            ..Supports::default()
        };
        check_routes(self.name(), supports, release, routes)?;
        let original = inputs.ingress.as_ref().ok_or_else(|| RouterError::Missing {
            router: self.name(),
            what: "the Ingress named by ingressRef".into(),
        })?;
        let name = original["metadata"]["name"].as_str().unwrap_or_default();
        let subject = format!("Ingress/{}/{name}", release.namespace);
        if original["apiVersion"] != "networking.k8s.io/v1" || original["kind"] != "Ingress" || name.is_empty() {
            return Err(RouterError::Input {
                object: subject,
                reason: "not a networking.k8s.io/v1 Ingress with a name".into(),
            });
        }

        let mut spec = original["spec"].clone();
        if retarget_backends(&mut spec, &release.apex, &release.canary_service) == 0 {
            return Err(RouterError::Input {
                object: subject,
                reason: format!("no backend is the apex Service {:?}", release.apex),
            });
        }
        let labels = kept(&original["metadata"]["labels"]);
        let mut annotations = kept(&original["metadata"]["annotations"]);
        annotations.retain(|key, _| !key.starts_with(CANARY_ANNOTATIONS));
        annotations.extend(self.canary_annotations(release, routes)?);

        let canary_name = format!("{name}-canary");
        Ok(vec![Desired {
            resource: ApiResource::erase::<Ingress>(&()),
            object: json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": release.metadata(&canary_name, &labels, &annotations),
                "spec": spec,
            }),
        }])
    }
}

impl Nginx {
    /// `canary: "true"`, the weight, and the header and cookie that select requests for the
    /// canary whatever the weight.
    fn canary_annotations(&self, release: &Release, routes: &Routes) -> Result<BTreeMap<String, String>, RouterError> {
        let annotation = |name: &str| format!("{ANNOTATION_PREFIX}{name}");
        let mut annotations = BTreeMap::from([
            (annotation("canary"), "true".to_owned()),
            (annotation("canary-weight"), routes.canary.to_string()),
        ]);
        for request in &routes.matches {
            let conditions = request.headers.len() + request.cookies.len();
            if conditions != 1 {
                return Err(self.cannot(format!(
                    "require {conditions} conditions in one match: ingress-nginx checks one header or one cookie"
                )));
            }
        }
        let mut headers = routes.matches.iter().flat_map(|request| &request.headers);
        let mut cookies = routes.matches.iter().flat_map(|request| &request.cookies);
        let (header, cookie) = (headers.next(), cookies.next());
        if headers.next().is_some() {
            return Err(self.cannot("match two headers: ingress-nginx checks one".into()));
        }
        if cookies.next().is_some() {
            return Err(self.cannot("match two cookies: ingress-nginx checks one".into()));
        }
        if let Some((name, given)) = header {
            annotations.insert(annotation("canary-by-header"), name.clone());
            match ValueMatch::of(release, name, given)? {
                ValueMatch::Exact(value) => annotations.insert(annotation("canary-by-header-value"), value.to_owned()),
                condition => annotations.insert(annotation("canary-by-header-pattern"), condition.to_regex()),
            };
        }
        if let Some((name, given)) = cookie {
            if ValueMatch::of(release, name, given)? != ValueMatch::Exact(COOKIE_ALWAYS) {
                return Err(self.cannot(format!(
                    "match cookie {name:?} other than by the value \"{COOKIE_ALWAYS}\", the only one ingress-nginx knows"
                )));
            }
            annotations.insert(annotation("canary-by-cookie"), name.clone());
        }
        Ok(annotations)
    }

    fn cannot(&self, what: String) -> RouterError {
        RouterError::Unsupported {
            router: self.name(),
            what,
        }
    }
}

/// The labels or annotations of the original worth copying: all but the appliers' marks and
/// kubectl's last-applied configuration.
fn kept(map: &Value) -> BTreeMap<String, String> {
    map.as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| *key != LAST_APPLIED && !APPLIER_PREFIXES.iter().any(|prefix| key.starts_with(prefix)))
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect()
}

/// Points every backend of an Ingress `spec` (default backend and rule paths) that is Service
/// `from` at Service `to`; returns how many it changed.
fn retarget_backends(spec: &mut Value, from: &str, to: &str) -> usize {
    let retarget = |backend: &mut Value| match backend.pointer_mut("/service/name") {
        Some(service) if service == from => {
            *service = json!(to);
            1
        }
        _ => 0,
    };
    let mut changed = spec.get_mut("defaultBackend").map_or(0, retarget);
    if let Some(rules) = spec.get_mut("rules").and_then(Value::as_array_mut) {
        for rule in rules {
            if let Some(paths) = rule.pointer_mut("/http/paths").and_then(Value::as_array_mut) {
                changed += paths
                    .iter_mut()
                    .filter_map(|path| path.get_mut("backend"))
                    .map(retarget)
                    .sum::<usize>();
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use eddy_api::progressive::{RequestMatch, SessionAffinity, StringMatch};
    use serde_json::json;

    use super::*;
    use crate::release::CANARY_LABEL;
    use crate::router::fixtures::{assert_generated, release};

    /// The Ingress as the API server returns it: server metadata, status, an owner, canary
    /// annotations of its own and an applier's marks.
    fn original() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "shop",
                "namespace": "shop",
                "uid": "5d1c6f0e-0000-4000-8000-000000000001",
                "resourceVersion": "4242",
                "generation": 3,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}],
                "labels": {"app": "shop", "apply.eddy.dev/name": "apps", "apply.eddy.dev/namespace": "eddy-system"},
                "annotations": {
                    "nginx.ingress.kubernetes.io/rewrite-target": "/",
                    "nginx.ingress.kubernetes.io/canary": "false",
                    "nginx.ingress.kubernetes.io/canary-weight": "50",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "apply.eddy.dev/ssa": "Merge",
                },
            },
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                "rules": [{
                    "host": "shop.example.com",
                    "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                        {"path": "/static", "pathType": "Prefix", "backend": {"service": {"name": "cdn", "port": {"number": 80}}}},
                    ]},
                }],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}},
        })
    }

    fn inputs() -> RouterInputs {
        RouterInputs {
            ingress: Some(original()),
        }
    }

    fn copy(routes: &Routes) -> Value {
        let mut desired = Nginx.desired(&release(json!({"port": 80})), routes, &inputs()).unwrap();
        assert_eq!(desired.len(), 1);
        desired.remove(0).object
    }

    fn weighted(primary: i32, canary: i32) -> Routes {
        Routes {
            primary,
            canary,
            ..Routes::default()
        }
    }

    fn exact(value: &str) -> StringMatch {
        StringMatch {
            exact: Some(value.into()),
            ..StringMatch::default()
        }
    }

    #[test]
    fn the_copy_sends_the_canary_weight_to_the_canary_service() {
        let copy = copy(&weighted(90, 10));
        assert_generated(&copy, "shop-canary");
        let annotations = &copy["metadata"]["annotations"];
        assert_eq!(annotations["nginx.ingress.kubernetes.io/canary"], "true");
        assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-weight"], "10");
        let paths = &copy["spec"]["rules"][0]["http"]["paths"];
        assert_eq!(
            paths[0]["backend"]["service"],
            json!({"name": "web-canary", "port": {"number": 80}})
        );
        assert_eq!(
            paths[1]["backend"]["service"]["name"], "cdn",
            "other Services' backends stay"
        );
        assert_eq!(copy["spec"]["ingressClassName"], "nginx");
        assert_eq!(copy["spec"]["tls"], original()["spec"]["tls"]);
    }

    #[test]
    fn the_copy_drops_what_belongs_to_the_original() {
        let copy = copy(&weighted(100, 0));
        assert!(copy.get("status").is_none());
        let metadata = copy["metadata"].as_object().unwrap();
        let mut keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["annotations", "labels", "name", "namespace", "ownerReferences"]);
        assert_eq!(copy["metadata"]["ownerReferences"].as_array().unwrap().len(), 1);
        assert_eq!(copy["metadata"]["ownerReferences"][0]["kind"], "Canary");
        assert_eq!(copy["metadata"]["labels"], json!({"app": "shop", CANARY_LABEL: "web"}));
        let annotations = &copy["metadata"]["annotations"];
        assert_eq!(annotations["nginx.ingress.kubernetes.io/rewrite-target"], "/");
        assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-weight"], "0");
        assert!(
            annotations
                .get("kubectl.kubernetes.io/last-applied-configuration")
                .is_none()
        );
        assert!(annotations.get("apply.eddy.dev/ssa").is_none());
    }

    #[test]
    fn ab_testing_selects_requests_by_header_and_by_cookie() {
        let routes = Routes {
            matches: vec![
                RequestMatch {
                    headers: BTreeMap::from([("x-canary".into(), exact("insider"))]),
                    ..RequestMatch::default()
                },
                RequestMatch {
                    cookies: BTreeMap::from([("canary".into(), exact("always"))]),
                    ..RequestMatch::default()
                },
            ],
            ..Routes::primary_only()
        };
        let annotations = copy(&routes)["metadata"]["annotations"].clone();
        assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-by-header"], "x-canary");
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/canary-by-header-value"],
            "insider"
        );
        assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-by-cookie"], "canary");
        assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-weight"], "0");
        assert!(
            annotations
                .get("nginx.ingress.kubernetes.io/canary-by-header-pattern")
                .is_none()
        );
    }

    #[test]
    fn header_prefixes_and_regexes_become_a_pattern() {
        let routes = Routes {
            matches: vec![RequestMatch {
                headers: BTreeMap::from([(
                    "user-agent".into(),
                    StringMatch {
                        prefix: Some("Mozilla/5.0 (iPhone".into()),
                        ..StringMatch::default()
                    },
                )]),
                ..RequestMatch::default()
            }],
            ..Routes::primary_only()
        };
        let annotations = copy(&routes)["metadata"]["annotations"].clone();
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/canary-by-header-pattern"],
            r"^Mozilla/5\.0 \(iPhone.*"
        );
        assert!(
            annotations
                .get("nginx.ingress.kubernetes.io/canary-by-header-value")
                .is_none()
        );
    }

    #[test]
    fn what_ingress_nginx_cannot_match_is_refused_by_name() {
        let two_headers = RequestMatch {
            headers: BTreeMap::from([("a".into(), exact("1")), ("b".into(), exact("2"))]),
            ..RequestMatch::default()
        };
        let cookie_value = RequestMatch {
            cookies: BTreeMap::from([("canary".into(), exact("yes"))]),
            ..RequestMatch::default()
        };
        let header = |name: &str| RequestMatch {
            headers: BTreeMap::from([(name.into(), exact("1"))]),
            ..RequestMatch::default()
        };
        for (matches, what) in [
            (vec![two_headers], "require 2 conditions in one match"),
            (vec![cookie_value], "other than by the value \"always\""),
            (vec![header("a"), header("b")], "match two headers"),
        ] {
            let routes = Routes {
                matches,
                ..Routes::primary_only()
            };
            let err = Nginx
                .desired(&release(json!({"port": 80})), &routes, &inputs())
                .unwrap_err();
            assert!(matches!(err, RouterError::Unsupported { router: "nginx", .. }), "{err}");
            assert!(err.to_string().contains(what), "{err}");
        }
        let sticky = Routes {
            session_affinity: Some(SessionAffinity {
                cookie_name: "c".into(),
                max_age: 60,
                ..SessionAffinity::default()
            }),
            ..weighted(90, 10)
        };
        let err = Nginx
            .desired(&release(json!({"port": 80})), &sticky, &inputs())
            .unwrap_err();
        assert!(err.to_string().contains("session affinity"), "{err}");
    }

    #[test]
    fn without_the_ingress_or_a_backend_on_the_apex_it_says_so() {
        let err = Nginx
            .desired(
                &release(json!({"port": 80})),
                &weighted(90, 10),
                &RouterInputs::default(),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the nginx router needs the Ingress named by ingressRef"
        );

        let other = release(json!({"port": 80, "name": "api"}));
        let err = Nginx.desired(&other, &weighted(90, 10), &inputs()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Ingress/shop/shop: no backend is the apex Service \"api\""
        );
    }

    #[test]
    fn the_default_backend_is_retargeted_too() {
        let mut spec = json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}});
        assert_eq!(retarget_backends(&mut spec, "web", "web-canary"), 1);
        assert_eq!(spec["defaultBackend"]["service"]["name"], "web-canary");
    }
}
