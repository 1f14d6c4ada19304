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
//!
//! The Canary's `service` options become the rules' matches and filters as in Flagger: every rule
//! matches within `service.match` (path, method, headers, query parameters; a condition Gateway
//! API has no match for is refused), and carries header modifiers (`service.headers`), a
//! `URLRewrite` (`service.rewrite`), a `CORS` filter (`service.corsPolicy`), `RequestMirror`s
//! (`service.mirror`) and `timeouts` (`service.timeout`, `service.backendTimeout`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use eddy_api::progressive::{CorsPolicy, HeaderOperation, HttpMatchRequest, RequestMatch, RewriteType, StringMatch};

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
        // A `gatewayRefs` entry has the shape and field names of a ParentReference.
        let parent_refs: Vec<Value> = release
            .service
            .gateway_refs
            .iter()
            .map(|gateway| json!(gateway))
            .collect();

        let service_matches = self.service_matches(release)?;
        let filters = self.filters(release)?;
        let mut rules = Vec::new();
        if !routes.matches.is_empty() {
            let conditions = routes
                .matches
                .iter()
                .map(|request| self.route_match(release, request))
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(rule(
                release,
                within(&service_matches, &conditions),
                &filters,
                vec![backend(release, &release.canary_service, 100)],
            ));
        }
        if let Some(affinity) = &routes.session_affinity {
            let sticky = json!({"headers": [{"type": "RegularExpression", "name": "Cookie", "value": affinity_cookie_regex(affinity)}]});
            rules.push(rule(
                release,
                within(&service_matches, &[sticky]),
                &filters,
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
        let mut default_filters = filters.clone();
        if let Some(percent) = routes.mirror {
            let mut mirror = json!({"backendRef": {"name": release.canary_service, "port": release.port()}});
            if percent != 100 {
                mirror["percent"] = json!(percent);
            }
            default_filters.push(json!({"type": "RequestMirror", "requestMirror": mirror}));
        }
        rules.push(rule(
            release,
            service_matches,
            &default_filters,
            vec![backend(release, &release.primary_service, routes.primary), canary],
        ));

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
    /// The header, cookie and query parameter conditions of `request` (an A/B condition, added to
    /// each of the rule's own matches): exact values as `Exact`, the rest (and the cookie) as
    /// `RegularExpression`. Source labels are Istio's: refused.
    fn route_match(&self, release: &Release, request: &RequestMatch) -> Result<Value, RouterError> {
        if !request.source_labels.is_empty() {
            return Err(
                self.cannot("match requests by the labels of their source (analysis.match[].sourceLabels)".into())
            );
        }
        let mut headers = conditions(release, &request.headers)?;
        if let Some(cookie) = cookie_header_regex(self.name(), release, request)? {
            headers.push(json!({"type": "RegularExpression", "name": "Cookie", "value": cookie}));
        }
        let mut condition = json!({"headers": headers});
        if !request.query_params.is_empty() {
            condition["queryParams"] = json!(conditions(release, &request.query_params)?);
        }
        Ok(condition)
    }

    /// The rules' own matches: the Canary's `service.match`, or every path.
    fn service_matches(&self, release: &Release) -> Result<Vec<Value>, RouterError> {
        if release.service.match_requests.is_empty() {
            return Ok(vec![json!({"path": {"type": "PathPrefix", "value": "/"}})]);
        }
        release
            .service
            .match_requests
            .iter()
            .enumerate()
            .map(|(index, given)| self.service_match(release, index, given))
            .collect()
    }

    /// An HTTPRouteMatch for `service.match[index]`: its path, method, headers and query
    /// parameters. What Gateway API cannot match on (scheme, authority, port, source, gateways,
    /// absent headers, case-insensitive paths, a method by pattern) is refused, naming the field.
    fn service_match(&self, release: &Release, index: usize, given: &HttpMatchRequest) -> Result<Value, RouterError> {
        let unsupported = [
            ("scheme", given.scheme.is_some()),
            ("authority", given.authority.is_some()),
            ("port", given.port.is_some()),
            ("sourceLabels", !given.source_labels.is_empty()),
            ("sourceNamespace", given.source_namespace.is_some()),
            ("gateways", !given.gateways.is_empty()),
            ("withoutHeaders", !given.without_headers.is_empty()),
            ("ignoreUriCase", given.ignore_uri_case == Some(true)),
        ];
        if let Some((field, _)) = unsupported.into_iter().find(|(_, set)| *set) {
            return Err(self.cannot(format!("match on service.match[{index}].{field}")));
        }
        let path = match &given.uri {
            None => json!({"type": "PathPrefix", "value": "/"}),
            Some(uri) => match ValueMatch::of(release, &format!("service.match[{index}].uri"), uri)? {
                ValueMatch::Exact(path) => json!({"type": "Exact", "value": path}),
                ValueMatch::Prefix(prefix) => json!({"type": "PathPrefix", "value": prefix}),
                ValueMatch::Regex(regex) => json!({"type": "RegularExpression", "value": regex}),
            },
        };
        let mut condition = json!({"path": path});
        if let Some(method) = &given.method {
            match ValueMatch::of(release, &format!("service.match[{index}].method"), method)? {
                ValueMatch::Exact(method) => condition["method"] = json!(method),
                _ => return Err(self.cannot(format!("match service.match[{index}].method other than exactly"))),
            }
        }
        if !given.headers.is_empty() {
            condition["headers"] = json!(conditions(release, &given.headers)?);
        }
        if !given.query_params.is_empty() {
            condition["queryParams"] = json!(conditions(release, &given.query_params)?);
        }
        Ok(condition)
    }

    /// The filters of every rule: header modifiers, URL rewrite, CORS and the Canary's mirrors.
    fn filters(&self, release: &Release) -> Result<Vec<Value>, RouterError> {
        let service = &release.service;
        let mut filters = Vec::new();
        if let Some(headers) = &service.headers {
            for (kind, key, operation) in [
                ("RequestHeaderModifier", "requestHeaderModifier", &headers.request),
                ("ResponseHeaderModifier", "responseHeaderModifier", &headers.response),
            ] {
                if let Some(modifier) = operation.as_ref().and_then(header_modifier) {
                    let mut filter = json!({"type": kind});
                    filter[key] = modifier;
                    filters.push(filter);
                }
            }
        }
        if let Some(rewrite) = &service.rewrite {
            let mut url = Map::new();
            if let Some(authority) = &rewrite.authority {
                url.insert("hostname".into(), json!(authority));
            }
            if let Some(uri) = &rewrite.uri {
                let path = match rewrite.rewrite_type.unwrap_or(RewriteType::ReplaceFullPath) {
                    RewriteType::ReplaceFullPath => json!({"type": "ReplaceFullPath", "replaceFullPath": uri}),
                    RewriteType::ReplacePrefixMatch => {
                        json!({"type": "ReplacePrefixMatch", "replacePrefixMatch": uri})
                    }
                };
                url.insert("path".into(), path);
            }
            if !url.is_empty() {
                filters.push(json!({"type": "URLRewrite", "urlRewrite": url}));
            }
        }
        if let Some(cors) = &service.cors_policy {
            filters.push(json!({"type": "CORS", "cors": self.cors(release, cors)?}));
        }
        for mirror in &service.mirror {
            filters.push(json!({"type": "RequestMirror", "requestMirror": {"backendRef": mirror.backend_ref}}));
        }
        Ok(filters)
    }

    /// Istio's CORS policy as Gateway API's `CORS` filter: origins exactly as given (Gateway API
    /// has wildcards, not prefixes or regular expressions), `maxAge` in seconds.
    fn cors(&self, release: &Release, cors: &CorsPolicy) -> Result<Value, RouterError> {
        let mut origins = cors.allow_origin.clone();
        for origin in &cors.allow_origins {
            match ValueMatch::of(release, "service.corsPolicy.allowOrigins", origin)? {
                ValueMatch::Exact(origin) => origins.push(origin.to_owned()),
                _ => {
                    return Err(self.cannot(
                        "allow CORS origins by prefix or regular expression (service.corsPolicy.allowOrigins)".into(),
                    ));
                }
            }
        }
        let mut filter = Map::new();
        let lists = [
            ("allowOrigins", origins),
            ("allowMethods", cors.allow_methods.clone()),
            ("allowHeaders", cors.allow_headers.clone()),
            ("exposeHeaders", cors.expose_headers.clone()),
        ];
        for (key, list) in lists {
            if !list.is_empty() {
                filter.insert(key.into(), json!(list));
            }
        }
        if let Some(credentials) = cors.allow_credentials {
            filter.insert("allowCredentials".into(), json!(credentials));
        }
        if let Some(max_age) = &cors.max_age {
            let seconds = eddy_api::meta::Duration::parse(max_age)
                .and_then(|d| d.to_std())
                .map_err(|err| RouterError::Input {
                    object: format!("Canary/{}/{}", release.namespace, release.name),
                    reason: format!("service.corsPolicy.maxAge: {err}"),
                })?
                .as_secs()
                .max(1);
            filter.insert("maxAge".into(), json!(seconds));
        }
        Ok(Value::Object(filter))
    }

    fn cannot(&self, what: String) -> RouterError {
        RouterError::Unsupported {
            router: self.name(),
            what,
        }
    }
}

/// Header or query parameter conditions: exact values as `Exact`, the rest as
/// `RegularExpression`.
fn conditions(release: &Release, given: &BTreeMap<String, StringMatch>) -> Result<Vec<Value>, RouterError> {
    given
        .iter()
        .map(|(name, condition)| {
            Ok(match ValueMatch::of(release, name, condition)? {
                ValueMatch::Exact(value) => json!({"type": "Exact", "name": name, "value": value}),
                condition => json!({"type": "RegularExpression", "name": name, "value": condition.to_regex()}),
            })
        })
        .collect()
}

/// A header modifier (`set`, `add`, `remove`), or `None` when `operation` changes nothing.
fn header_modifier(operation: &HeaderOperation) -> Option<Value> {
    let pairs = |map: &BTreeMap<String, String>| -> Vec<Value> {
        map.iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    };
    let mut modifier = Map::new();
    if !operation.set.is_empty() {
        modifier.insert("set".into(), json!(pairs(&operation.set)));
    }
    if !operation.add.is_empty() {
        modifier.insert("add".into(), json!(pairs(&operation.add)));
    }
    if !operation.remove.is_empty() {
        modifier.insert("remove".into(), json!(operation.remove));
    }
    (!modifier.is_empty()).then_some(Value::Object(modifier))
}

/// Each of `conditions` (headers and query parameters) within each of the rule's own `matches`,
/// whose path and method it keeps and whose headers and query parameters it extends.
fn within(matches: &[Value], conditions: &[Value]) -> Vec<Value> {
    conditions
        .iter()
        .flat_map(|condition| {
            matches.iter().map(move |base| {
                let mut merged = base.clone();
                for key in ["headers", "queryParams"] {
                    let extra = condition[key].as_array().cloned().unwrap_or_default();
                    if extra.is_empty() {
                        continue;
                    }
                    let mut list = merged[key].as_array().cloned().unwrap_or_default();
                    list.extend(extra);
                    merged[key] = json!(list);
                }
                merged
            })
        })
        .collect()
}

/// A rule sending requests that meet any of `matches` to `backends`, through `filters`, with the
/// Canary's timeouts.
fn rule(release: &Release, matches: Vec<Value>, filters: &[Value], backends: Vec<Value>) -> Value {
    let mut rule = json!({"matches": matches, "backendRefs": backends});
    if !filters.is_empty() {
        rule["filters"] = json!(filters);
    }
    let mut timeouts = Map::new();
    if let Some(timeout) = &release.service.timeout {
        timeouts.insert("request".into(), json!(timeout));
    }
    if let Some(timeout) = &release.service.backend_timeout {
        timeouts.insert("backendRequest".into(), json!(timeout));
    }
    if !timeouts.is_empty() {
        rule["timeouts"] = Value::Object(timeouts);
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
                ..SessionAffinity::default()
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
                ..SessionAffinity::default()
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

    /// The Gateway API tutorial's `service`, with every HTTPRoute option Flagger documents.
    fn customised_release() -> Release {
        release(json!({
            "port": 9898,
            "timeout": "30s",
            "backendTimeout": "10s",
            "gatewayRefs": [
                {"name": "gateway", "namespace": "istio-ingress"},
                {"name": "web", "group": "core", "kind": "Service", "port": 9898},
            ],
            "match": [
                {"uri": {"prefix": "/api"}, "method": {"exact": "GET"}, "headers": {"x-tenant": {"exact": "shop"}}},
                {"uri": {"regex": "/v[0-9]+/.*"}, "queryParams": {"debug": {"prefix": "t"}}},
            ],
            "headers": {
                "request": {"add": {"x-custom-header": "custom-value"}, "set": {"x-api-version": "v1"}, "remove": ["x-debug-header"]},
                "response": {"set": {"cache-control": "no-cache"}, "remove": ["x-powered-by"]},
            },
            "rewrite": {"uri": "/api/v2", "type": "ReplacePrefixMatch", "authority": "api.example.com"},
            "corsPolicy": {
                "allowOrigin": ["https://foo.example"],
                "allowOrigins": [{"exact": "http://foo.example"}],
                "allowMethods": ["GET", "PUT"],
                "allowCredentials": true,
                "allowHeaders": ["Content-Type"],
                "maxAge": "24h",
            },
            "mirror": [{"backendRef": {"name": "shadow", "port": 8080}}],
        }))
    }

    #[test]
    fn parent_refs_keep_group_kind_and_port() {
        let route = route(&customised_release(), &weighted(100, 0));
        assert_eq!(
            route["spec"]["parentRefs"],
            json!([
                {"name": "gateway", "namespace": "istio-ingress"},
                {"name": "web", "group": "core", "kind": "Service", "port": 9898},
            ])
        );
    }

    #[test]
    fn every_rule_matches_within_the_service_match_and_carries_its_filters_and_timeouts() {
        let route = route(&customised_release(), &weighted(90, 10));
        let rule = &route["spec"]["rules"][0];
        assert_eq!(
            rule["matches"],
            json!([
                {
                    "path": {"type": "PathPrefix", "value": "/api"},
                    "method": "GET",
                    "headers": [{"type": "Exact", "name": "x-tenant", "value": "shop"}],
                },
                {
                    "path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"},
                    "queryParams": [{"type": "RegularExpression", "name": "debug", "value": "^t.*"}],
                },
            ])
        );
        assert_eq!(
            rule["filters"],
            json!([
                {
                    "type": "RequestHeaderModifier",
                    "requestHeaderModifier": {
                        "set": [{"name": "x-api-version", "value": "v1"}],
                        "add": [{"name": "x-custom-header", "value": "custom-value"}],
                        "remove": ["x-debug-header"],
                    },
                },
                {
                    "type": "ResponseHeaderModifier",
                    "responseHeaderModifier": {
                        "set": [{"name": "cache-control", "value": "no-cache"}],
                        "remove": ["x-powered-by"],
                    },
                },
                {
                    "type": "URLRewrite",
                    "urlRewrite": {
                        "hostname": "api.example.com",
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/api/v2"},
                    },
                },
                {
                    "type": "CORS",
                    "cors": {
                        "allowOrigins": ["https://foo.example", "http://foo.example"],
                        "allowMethods": ["GET", "PUT"],
                        "allowHeaders": ["Content-Type"],
                        "allowCredentials": true,
                        "maxAge": 86400,
                    },
                },
                {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow", "port": 8080}}},
            ])
        );
        assert_eq!(rule["timeouts"], json!({"request": "30s", "backendRequest": "10s"}));
    }

    #[test]
    fn ab_conditions_join_each_service_match_and_the_canary_mirror_joins_the_filters() {
        let routes = Routes {
            matches: vec![RequestMatch {
                headers: BTreeMap::from([(
                    "x-canary".into(),
                    StringMatch {
                        exact: Some("insider".into()),
                        ..StringMatch::default()
                    },
                )]),
                query_params: BTreeMap::from([(
                    "beta".into(),
                    StringMatch {
                        exact: Some("1".into()),
                        ..StringMatch::default()
                    },
                )]),
                ..RequestMatch::default()
            }],
            mirror: Some(50),
            ..Routes::primary_only()
        };
        let route = route(&customised_release(), &routes);
        let rules = route["spec"]["rules"].as_array().unwrap();
        assert_eq!(
            rules[0]["matches"],
            json!([
                {
                    "path": {"type": "PathPrefix", "value": "/api"},
                    "method": "GET",
                    "headers": [
                        {"type": "Exact", "name": "x-tenant", "value": "shop"},
                        {"type": "Exact", "name": "x-canary", "value": "insider"},
                    ],
                    "queryParams": [{"type": "Exact", "name": "beta", "value": "1"}],
                },
                {
                    "path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"},
                    "headers": [{"type": "Exact", "name": "x-canary", "value": "insider"}],
                    "queryParams": [
                        {"type": "RegularExpression", "name": "debug", "value": "^t.*"},
                        {"type": "Exact", "name": "beta", "value": "1"},
                    ],
                },
            ])
        );
        assert_eq!(
            rules[0]["filters"].as_array().unwrap().len(),
            5,
            "the A/B rule has the filters too"
        );
        let filters = rules[1]["filters"].as_array().unwrap();
        assert_eq!(
            filters.last().unwrap(),
            &json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "web-canary", "port": 9898}, "percent": 50}})
        );
        assert_eq!(filters.len(), 6);
    }

    #[test]
    fn what_gateway_api_cannot_match_on_is_refused_by_name() {
        for (condition, what) in [
            (
                json!({"scheme": {"exact": "https"}}),
                "match on service.match[0].scheme",
            ),
            (
                json!({"authority": {"exact": "a"}}),
                "match on service.match[0].authority",
            ),
            (
                json!({"withoutHeaders": {"x": {"exact": "1"}}}),
                "match on service.match[0].withoutHeaders",
            ),
            (
                json!({"method": {"prefix": "P"}}),
                "match service.match[0].method other than exactly",
            ),
        ] {
            let release = release(json!({"port": 80, "gatewayRefs": [{"name": "public"}], "match": [condition]}));
            let err = V1
                .desired(&release, &weighted(100, 0), &RouterInputs::default())
                .unwrap_err();
            assert_eq!(err.to_string(), format!("the gatewayapi router cannot {what}"));
        }
        let sourced = Routes {
            matches: vec![RequestMatch {
                source_labels: BTreeMap::from([("app".into(), "frontend".into())]),
                ..RequestMatch::default()
            }],
            ..Routes::primary_only()
        };
        let err = V1
            .desired(&gateway_release(), &sourced, &RouterInputs::default())
            .unwrap_err();
        assert!(err.to_string().contains("sourceLabels"), "{err}");
        let regex_origin = release(json!({
            "port": 80,
            "gatewayRefs": [{"name": "public"}],
            "corsPolicy": {"allowOrigins": [{"regex": ".*"}]},
        }));
        let err = V1
            .desired(&regex_origin, &weighted(100, 0), &RouterInputs::default())
            .unwrap_err();
        assert!(err.to_string().contains("allowOrigins"), "{err}");
    }

    #[test]
    fn a_rewrite_replaces_the_full_path_unless_told_otherwise() {
        let release = release(json!({"port": 80, "gatewayRefs": [{"name": "public"}], "rewrite": {"uri": "/v2/api"}}));
        let route = route(&release, &weighted(100, 0));
        assert_eq!(
            route["spec"]["rules"][0]["filters"],
            json!([{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/v2/api"}}}])
        );
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
