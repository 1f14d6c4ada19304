//! The `gatewayapi` router: one HTTPRoute `<apex>` (`gateway.networking.k8s.io`, `v1` or
//! `v1beta1`) attached to the Canary's `service.gatewayRefs`, whose rules split requests between
//! the `<apex>-primary` and `<apex>-canary` Services by weight, send matched requests (A/B) and
//! sticky sessions to the canary, and mirror to it.
//!
//! The object is written as JSON: the `gateway-api` crate targets kube 4 / k8s-openapi 0.28,
//! this workspace kube 5 / k8s-openapi 0.29. Its shape is the standard channel's CRD (v1.2 and
//! later: `RequestMirror.percent`, rule `timeouts`), which the cluster tests install from the Go
//! module that publishes it. Header conditions with a prefix become `RegularExpression` matches,
//! the only other kind Gateway API has beside `Exact`; cookies are a regular expression on the
//! `Cookie` header, as is the session cookie (Flagger's form of session affinity).

use serde_json::{Value, json};

use eddy_api::progressive::RequestMatch;

use super::{
    Desired, RouterError, RouterInputs, Routes, Supports, TrafficRouter, ValueMatch, affinity_cookie_regex,
    affinity_set_cookie, check_routes, cookie_header_regex, custom_resource,
};
use crate::release::Release;

const GROUP: &str = "gateway.networking.k8s.io";

/// The `gatewayapi` router, writing HTTPRoutes at API `version` (`v1` or `v1beta1`, which have
/// the same schema).
pub struct GatewayApi {
    pub version: &'static str,
}

impl TrafficRouter for GatewayApi {
    fn name(&self) -> &'static str {
        "gatewayapi"
    }

    fn desired(&self, release: &Release, routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        let supports = Supports {
            matches: true,
            mirror: true,
            session_affinity: true,
            timeout: true,
        };
        check_routes(self.name(), supports, release, routes)?;
        if release.service.gateway_refs.is_empty() {
            return Err(RouterError::Missing {
                router: self.name(),
                what: "service.gatewayRefs, the Gateways its HTTPRoute attaches to".into(),
            });
        }
        let parent_refs: Vec<Value> = release
            .service
            .gateway_refs
            .iter()
            .map(|gateway| {
                let mut parent = json!({"name": gateway.name});
                if let Some(namespace) = &gateway.namespace {
                    parent["namespace"] = json!(namespace);
                }
                if let Some(section) = &gateway.section_name {
                    parent["sectionName"] = json!(section);
                }
                parent
            })
            .collect();

        let mut rules = Vec::new();
        if !routes.matches.is_empty() {
            let matches = routes
                .matches
                .iter()
                .map(|request| self.route_match(release, request))
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(rule(
                release,
                matches,
                vec![backend(release, &release.canary_service, 100)],
            ));
        }
        if let Some(affinity) = &routes.session_affinity {
            let sticky = json!({
                "path": {"type": "PathPrefix", "value": "/"},
                "headers": [{"type": "RegularExpression", "name": "Cookie", "value": affinity_cookie_regex(affinity)}],
            });
            rules.push(rule(
                release,
                vec![sticky],
                vec![backend(release, &release.canary_service, 100)],
            ));
        }
        let mut canary = backend(release, &release.canary_service, routes.canary);
        if let Some(affinity) = &routes.session_affinity {
            canary["filters"] = json!([{
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": affinity_set_cookie(affinity)}]},
            }]);
        }
        let mut default = rule(
            release,
            vec![json!({"path": {"type": "PathPrefix", "value": "/"}})],
            vec![backend(release, &release.primary_service, routes.primary), canary],
        );
        if let Some(percent) = routes.mirror {
            let mut mirror = json!({"backendRef": {"name": release.canary_service, "port": release.port()}});
            if percent != 100 {
                mirror["percent"] = json!(percent);
            }
            default["filters"] = json!([{"type": "RequestMirror", "requestMirror": mirror}]);
        }
        rules.push(default);

        let mut spec = json!({"parentRefs": parent_refs, "rules": rules});
        if !release.service.hosts.is_empty() {
            spec["hostnames"] = json!(release.service.hosts);
        }
        Ok(vec![Desired {
            resource: custom_resource(GROUP, self.version, "HTTPRoute", "httproutes"),
            object: json!({
                "apiVersion": format!("{GROUP}/{}", self.version),
                "kind": "HTTPRoute",
                "metadata": release.metadata(&release.apex, &Default::default(), &Default::default()),
                "spec": spec,
            }),
        }])
    }
}

impl GatewayApi {
    /// An HTTPRouteMatch holding every condition of `request`: exact headers as `Exact`, the rest
    /// (and the cookie) as `RegularExpression`.
    fn route_match(&self, release: &Release, request: &RequestMatch) -> Result<Value, RouterError> {
        let mut headers = Vec::new();
        for (name, given) in &request.headers {
            let header = match ValueMatch::of(release, name, given)? {
                ValueMatch::Exact(value) => json!({"type": "Exact", "name": name, "value": value}),
                condition => json!({"type": "RegularExpression", "name": name, "value": condition.to_regex()}),
            };
            headers.push(header);
        }
        if let Some(cookie) = cookie_header_regex(self.name(), release, request)? {
            headers.push(json!({"type": "RegularExpression", "name": "Cookie", "value": cookie}));
        }
        Ok(json!({"path": {"type": "PathPrefix", "value": "/"}, "headers": headers}))
    }
}

/// A rule sending requests that meet any of `matches` to `backends`, with the Canary's timeout.
fn rule(release: &Release, matches: Vec<Value>, backends: Vec<Value>) -> Value {
    let mut rule = json!({"matches": matches, "backendRefs": backends});
    if let Some(timeout) = &release.service.timeout {
        rule["timeouts"] = json!({"request": timeout});
    }
    rule
}

/// A backend reference to Service `name` on the Canary's port.
fn backend(release: &Release, name: &str, weight: i32) -> Value {
    json!({"name": name, "port": release.port(), "weight": weight})
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use eddy_api::progressive::{SessionAffinity, StringMatch};
    use serde_json::json;

    use super::*;
    use crate::router::fixtures::{assert_generated, release};

    const V1: GatewayApi = GatewayApi { version: "v1" };

    fn gateway_release() -> Release {
        release(json!({
            "port": 9898,
            "hosts": ["app.example.com"],
            "gatewayRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
        }))
    }

    fn weighted(primary: i32, canary: i32) -> Routes {
        Routes {
            primary,
            canary,
            ..Routes::default()
        }
    }

    fn route(release: &Release, routes: &Routes) -> Value {
        let mut desired = V1.desired(release, routes, &RouterInputs::default()).unwrap();
        assert_eq!(desired.len(), 1);
        desired.remove(0).object
    }

    #[test]
    fn weights_go_to_the_primary_and_canary_backends_of_the_default_rule() {
        let route = route(&gateway_release(), &weighted(90, 10));
        assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(route["kind"], "HTTPRoute");
        assert_generated(&route, "web");
        assert_eq!(
            route["spec"]["parentRefs"],
            json!([{"name": "public", "namespace": "gateways", "sectionName": "https"}])
        );
        assert_eq!(route["spec"]["hostnames"], json!(["app.example.com"]));
        assert_eq!(
            route["spec"]["rules"],
            json!([{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"name": "web-primary", "port": 9898, "weight": 90},
                    {"name": "web-canary", "port": 9898, "weight": 10},
                ],
            }])
        );
    }

    #[test]
    fn v1beta1_writes_the_same_route_at_the_older_version() {
        let v1beta1 = GatewayApi { version: "v1beta1" };
        let desired = v1beta1
            .desired(&gateway_release(), &weighted(100, 0), &RouterInputs::default())
            .unwrap();
        assert_eq!(desired[0].object["apiVersion"], "gateway.networking.k8s.io/v1beta1");
        assert_eq!(desired[0].resource.version, "v1beta1");
        assert_eq!(desired[0].resource.plural, "httproutes");
    }

    #[test]
    fn ab_testing_puts_the_matched_rule_to_the_canary_before_the_default_rule() {
        let routes = Routes {
            matches: vec![
                RequestMatch {
                    headers: BTreeMap::from([
                        (
                            "x-canary".into(),
                            StringMatch {
                                exact: Some("insider".into()),
                                ..StringMatch::default()
                            },
                        ),
                        (
                            "user-agent".into(),
                            StringMatch {
                                prefix: Some("Mozilla/5.0 (iPhone".into()),
                                ..StringMatch::default()
                            },
                        ),
                    ]),
                    ..RequestMatch::default()
                },
                RequestMatch {
                    cookies: BTreeMap::from([(
                        "canary".into(),
                        StringMatch {
                            exact: Some("always".into()),
                            ..StringMatch::default()
                        },
                    )]),
                    ..RequestMatch::default()
                },
            ],
            ..Routes::primary_only()
        };
        let route = route(&gateway_release(), &routes);
        let rules = route["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0],
            json!({
                "matches": [
                    {
                        "path": {"type": "PathPrefix", "value": "/"},
                        "headers": [
                            {"type": "RegularExpression", "name": "user-agent", "value": r"^Mozilla/5\.0 \(iPhone.*"},
                            {"type": "Exact", "name": "x-canary", "value": "insider"},
                        ],
                    },
                    {
                        "path": {"type": "PathPrefix", "value": "/"},
                        "headers": [
                            {"type": "RegularExpression", "name": "Cookie", "value": r"^(.*?;\s*)?canary=always(;.*)?$"},
                        ],
                    },
                ],
                "backendRefs": [{"name": "web-canary", "port": 9898, "weight": 100}],
            })
        );
        assert_eq!(
            rules[1]["backendRefs"],
            json!([
                {"name": "web-primary", "port": 9898, "weight": 100},
                {"name": "web-canary", "port": 9898, "weight": 0},
            ])
        );
    }

    #[test]
    fn mirroring_adds_a_request_mirror_filter_to_the_canary_with_its_percentage() {
        let routes = Routes {
            mirror: Some(25),
            ..Routes::primary_only()
        };
        let mirrored = route(&gateway_release(), &routes);
        assert_eq!(
            mirrored["spec"]["rules"][0]["filters"],
            json!([{
                "type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": "web-canary", "port": 9898}, "percent": 25},
            }])
        );

        let all = Routes {
            mirror: Some(100),
            ..Routes::primary_only()
        };
        let whole = route(&gateway_release(), &all);
        assert!(
            whole["spec"]["rules"][0]["filters"][0]["requestMirror"]
                .get("percent")
                .is_none(),
            "100% is the default, left unset"
        );
    }

    #[test]
    fn session_affinity_keeps_cookie_holders_on_the_canary_and_sets_the_cookie_there() {
        let routes = Routes {
            session_affinity: Some(SessionAffinity {
                cookie_name: "web-canary-7f3a".into(),
                max_age: 3600,
            }),
            ..weighted(80, 20)
        };
        let route = route(&gateway_release(), &routes);
        let rules = route["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0]["matches"][0]["headers"],
            json!([{"type": "RegularExpression", "name": "Cookie", "value": r"^(.*?;\s*)?web\-canary\-7f3a=canary(;.*)?$"}])
        );
        assert_eq!(
            rules[0]["backendRefs"],
            json!([{"name": "web-canary", "port": 9898, "weight": 100}])
        );
        assert_eq!(
            rules[1]["backendRefs"][1]["filters"],
            json!([{
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "web-canary-7f3a=canary; Max-Age=3600; Path=/"}]},
            }])
        );
        assert!(
            rules[1]["backendRefs"][0].get("filters").is_none(),
            "the primary sets no cookie"
        );
    }

    #[test]
    fn the_timeout_applies_to_every_rule() {
        let release = release(json!({"port": 80, "timeout": "15s", "gatewayRefs": [{"name": "public"}]}));
        let routes = Routes {
            session_affinity: Some(SessionAffinity {
                cookie_name: "c".into(),
                max_age: 60,
            }),
            ..Routes::primary_only()
        };
        let route = route(&release, &routes);
        for rule in route["spec"]["rules"].as_array().unwrap() {
            assert_eq!(rule["timeouts"], json!({"request": "15s"}));
        }
        assert!(route["spec"].get("hostnames").is_none());
        assert_eq!(route["spec"]["parentRefs"], json!([{"name": "public"}]));
    }

    #[test]
    fn without_gateway_refs_it_says_what_is_missing() {
        let err = V1
            .desired(
                &release(json!({"port": 80})),
                &weighted(90, 10),
                &RouterInputs::default(),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the gatewayapi router needs service.gatewayRefs, the Gateways its HTTPRoute attaches to"
        );
    }

    #[test]
    fn two_cookies_in_one_match_are_refused() {
        let exact = |value: &str| StringMatch {
            exact: Some(value.into()),
            ..StringMatch::default()
        };
        let routes = Routes {
            matches: vec![RequestMatch {
                cookies: BTreeMap::from([("a".into(), exact("1")), ("b".into(), exact("2"))]),
                ..RequestMatch::default()
            }],
            ..Routes::primary_only()
        };
        let err = V1
            .desired(&gateway_release(), &routes, &RouterInputs::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the gatewayapi router cannot require two cookies in one match"
        );
    }
}
