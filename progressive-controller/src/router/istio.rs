//! The `istio` router: DestinationRules `<apex>-primary` and `<apex>-canary` carrying the Canary's
//! `trafficPolicy`, and VirtualService `<apex>`, whose HTTP routes split requests between them by
//! weight, send matched requests (A/B) and sticky sessions to the canary, and mirror to it.
//!
//! Every HTTP route carries the Canary's `service` options as Flagger writes them: its `match`
//! conditions (A/B and session conditions are added to each), `rewrite`, `retries`, `headers`,
//! `corsPolicy` and `timeout`. With `service.appProtocol: TCP` the VirtualService routes TCP by
//! weight instead, and nothing else.
//!
//! Written as JSON at `networking.istio.io/v1` (served since Istio 1.22), in the shape of the
//! CRDs that `istio.io/api` publishes, which the cluster tests install. As Flagger does, hosts are
//! the Services' short names, resolved in the Canary's namespace.

use serde_json::{Map, Value, json};

use eddy_api::progressive::RequestMatch;

use super::{
    Desired, RouterError, RouterInputs, Routes, Supports, TrafficRouter, ValueMatch, affinity_cookie_regex,
    affinity_set_cookie, check_routes, cookie_header_regex, custom_resource,
};
use crate::release::Release;

const GROUP: &str = "networking.istio.io";
const VERSION: &str = "v1";
/// The router's name in what it refuses when it routes TCP: only weights exist there.
const TCP_ROUTER: &str = "istio (appProtocol TCP)";

/// Whether the Canary's port carries TCP rather than HTTP (`service.appProtocol: TCP`, in any
/// case), which makes the VirtualService route TCP.
pub fn routes_tcp(release: &Release) -> bool {
    release
        .service
        .app_protocol
        .as_deref()
        .is_some_and(|protocol| protocol.eq_ignore_ascii_case("tcp"))
}

/// The `istio` router.
pub struct Istio;

impl TrafficRouter for Istio {
    fn name(&self) -> &'static str {
        "istio"
    }

    fn desired(&self, release: &Release, routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
        let tcp = routes_tcp(release);
        let routing = if tcp {
            check_routes(TCP_ROUTER, Supports::default(), release, routes)?;
            let tcp = json!([{"route": [
                destination(release, &release.primary_service, routes.primary),
                destination(release, &release.canary_service, routes.canary),
            ]}]);
            ("tcp", tcp)
        } else {
            ("http", json!(self.http_routes(release, routes)?))
        };

        let mut hosts = vec![release.apex.clone()];
        for host in &release.service.hosts {
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
        let gateways = if release.service.gateways.is_empty() {
            vec!["mesh".to_owned()]
        } else {
            release.service.gateways.clone()
        };
        let mut spec = json!({"hosts": hosts, "gateways": gateways});
        spec[routing.0] = routing.1;
        let virtual_service = json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "VirtualService",
            "metadata": release.metadata(&release.apex, &Default::default(), &Default::default()),
            "spec": spec,
        });

        let mut desired: Vec<Desired> = [&release.primary_service, &release.canary_service]
            .into_iter()
            .map(|host| Desired {
                resource: custom_resource(GROUP, VERSION, "DestinationRule", "destinationrules"),
                object: destination_rule(release, host),
            })
            .collect();
        desired.push(Desired {
            resource: custom_resource(GROUP, VERSION, "VirtualService", "virtualservices"),
            object: virtual_service,
        });
        Ok(desired)
    }
}

impl Istio {
    /// The HTTP routes, first match first: A/B requests to the canary, sticky sessions to the
    /// canary, then the weighted split (with the mirror).
    fn http_routes(&self, release: &Release, routes: &Routes) -> Result<Vec<Value>, RouterError> {
        let supports = Supports {
            matches: true,
            mirror: true,
            session_affinity: true,
            timeout: true,
        };
        check_routes(self.name(), supports, release, routes)?;

        let mut http = Vec::new();
        if !routes.matches.is_empty() {
            let matches = routes
                .matches
                .iter()
                .map(|request| self.request_match(release, request))
                .collect::<Result<Vec<_>, _>>()?;
            http.push(route(
                release,
                "canary-match",
                Some(matches),
                vec![destination(release, &release.canary_service, 100)],
            ));
        }
        if let Some(affinity) = &routes.session_affinity {
            let sticky = json!({"headers": {"cookie": {"regex": affinity_cookie_regex(affinity)}}});
            http.push(route(
                release,
                "canary-session",
                Some(vec![sticky]),
                vec![destination(release, &release.canary_service, 100)],
            ));
        }
        let mut canary = destination(release, &release.canary_service, routes.canary);
        if let Some(affinity) = &routes.session_affinity {
            canary["headers"] = json!({"response": {"add": {"Set-Cookie": affinity_set_cookie(affinity)}}});
        }
        let mut weighted = route(
            release,
            "weighted",
            None,
            vec![destination(release, &release.primary_service, routes.primary), canary],
        );
        if let Some(percent) = routes.mirror {
            weighted["mirror"] = json!({"host": release.canary_service, "port": {"number": release.port()}});
            if percent != 100 {
                weighted["mirrorPercentage"] = json!({"value": f64::from(percent)});
            }
        }
        http.push(weighted);
        Ok(http)
    }

    /// An HTTPMatchRequest holding every condition of `request`. Header names are lowercased, as
    /// Istio requires; the cookie is a regular expression on the `cookie` header; a query
    /// parameter prefix is a regular expression, as Istio matches those exactly or by regex only.
    fn request_match(&self, release: &Release, request: &RequestMatch) -> Result<Value, RouterError> {
        let mut headers = Map::new();
        for (name, given) in &request.headers {
            let condition = match ValueMatch::of(release, name, given)? {
                ValueMatch::Exact(value) => json!({"exact": value}),
                ValueMatch::Prefix(prefix) => json!({"prefix": prefix}),
                ValueMatch::Regex(regex) => json!({"regex": regex}),
            };
            headers.insert(name.to_ascii_lowercase(), condition);
        }
        if let Some(cookie) = cookie_header_regex(self.name(), release, request)? {
            headers.insert("cookie".into(), json!({"regex": cookie}));
        }
        let mut condition = Map::new();
        if !headers.is_empty() {
            condition.insert("headers".into(), Value::Object(headers));
        }
        let mut params = Map::new();
        for (name, given) in &request.query_params {
            let param = match ValueMatch::of(release, name, given)? {
                ValueMatch::Exact(value) => json!({"exact": value}),
                other => json!({"regex": other.to_regex()}),
            };
            params.insert(name.clone(), param);
        }
        if !params.is_empty() {
            condition.insert("queryParams".into(), Value::Object(params));
        }
        if !request.source_labels.is_empty() {
            condition.insert("sourceLabels".into(), json!(request.source_labels));
        }
        Ok(Value::Object(condition))
    }
}

/// The Canary's `service.match` conditions as Istio reads them, header names lowercased.
fn service_matches(release: &Release) -> Vec<Value> {
    release
        .service
        .match_requests
        .iter()
        .map(|given| {
            let mut condition = json!(given);
            for key in ["headers", "withoutHeaders"] {
                if let Some(Value::Object(headers)) = condition.get_mut(key) {
                    *headers = std::mem::take(headers)
                        .into_iter()
                        .map(|(name, value)| (name.to_ascii_lowercase(), value))
                        .collect();
                }
            }
            condition
        })
        .collect()
}

/// `conditions` within the Canary's own `service.match`: each condition added to each of them
/// (its headers, query parameters and source labels joining theirs), as Flagger merges them.
/// Without `service.match`, the conditions as they are.
fn within_service_matches(release: &Release, conditions: Vec<Value>) -> Vec<Value> {
    let bases = service_matches(release);
    if bases.is_empty() {
        return conditions;
    }
    conditions
        .iter()
        .flat_map(|condition| {
            bases.iter().map(move |base| {
                let mut merged = base.clone();
                for (key, value) in condition.as_object().into_iter().flatten() {
                    match (merged.get_mut(key), value) {
                        (Some(Value::Object(into)), Value::Object(from)) => {
                            into.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())))
                        }
                        _ => merged[key] = value.clone(),
                    }
                }
                merged
            })
        })
        .collect()
}

/// DestinationRule `host`, for the Service of that name, with the Canary's traffic policy.
fn destination_rule(release: &Release, host: &str) -> Value {
    let mut spec = json!({"host": host});
    if let Some(policy) = &release.service.traffic_policy {
        spec["trafficPolicy"] = policy.clone();
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "DestinationRule",
        "metadata": release.metadata(host, &Default::default(), &Default::default()),
        "spec": spec,
    })
}

/// An HTTP route named `name` sending requests that meet any of `matches` (within the Canary's
/// `service.match`; all requests it matches when `None`) to `destinations`, with the Canary's
/// route options: rewrite, retries, headers, CORS policy and timeout.
fn route(release: &Release, name: &str, matches: Option<Vec<Value>>, destinations: Vec<Value>) -> Value {
    let service = &release.service;
    let mut route = json!({"name": name, "route": destinations});
    let matches = match matches {
        Some(conditions) => within_service_matches(release, conditions),
        None => service_matches(release),
    };
    if !matches.is_empty() {
        route["match"] = json!(matches);
    }
    if let Some(rewrite) = &service.rewrite {
        // `type` is Gateway API's; Istio replaces the matched prefix, or the whole path.
        let mut istio = Map::new();
        if let Some(uri) = &rewrite.uri {
            istio.insert("uri".into(), json!(uri));
        }
        if let Some(authority) = &rewrite.authority {
            istio.insert("authority".into(), json!(authority));
        }
        if !istio.is_empty() {
            route["rewrite"] = Value::Object(istio);
        }
    }
    if let Some(retries) = &service.retries {
        route["retries"] = json!(retries);
    }
    if let Some(headers) = &service.headers {
        route["headers"] = json!(headers);
    }
    if let Some(cors) = &service.cors_policy {
        route["corsPolicy"] = json!(cors);
    }
    if let Some(timeout) = &service.timeout {
        route["timeout"] = json!(timeout);
    }
    route
}

/// A weighted destination: Service `host` on the Canary's port.
fn destination(release: &Release, host: &str, weight: i32) -> Value {
    json!({"destination": {"host": host, "port": {"number": release.port()}}, "weight": weight})
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use eddy_api::progressive::{SessionAffinity, StringMatch};
    use serde_json::json;

    use super::*;
    use crate::router::fixtures::{assert_generated, release};

    fn objects(release: &Release, routes: &Routes) -> (Value, Value, Value) {
        let desired = Istio.desired(release, routes, &RouterInputs::default()).unwrap();
        let kinds: Vec<_> = desired.iter().map(|d| d.resource.kind.as_str()).collect();
        assert_eq!(kinds, ["DestinationRule", "DestinationRule", "VirtualService"]);
        let mut objects = desired.into_iter().map(|d| d.object);
        (
            objects.next().unwrap(),
            objects.next().unwrap(),
            objects.next().unwrap(),
        )
    }

    fn weighted(primary: i32, canary: i32) -> Routes {
        Routes {
            primary,
            canary,
            ..Routes::default()
        }
    }

    #[test]
    fn destination_rules_name_each_service_and_carry_the_traffic_policy() {
        let policy = json!({"tls": {"mode": "ISTIO_MUTUAL"}});
        let release = release(json!({"port": 80, "trafficPolicy": policy}));
        let (primary, canary, _) = objects(&release, &weighted(100, 0));
        assert_generated(&primary, "web-primary");
        assert_generated(&canary, "web-canary");
        assert_eq!(primary["apiVersion"], "networking.istio.io/v1");
        assert_eq!(primary["spec"], json!({"host": "web-primary", "trafficPolicy": policy}));
        assert_eq!(canary["spec"], json!({"host": "web-canary", "trafficPolicy": policy}));
    }

    #[test]
    fn weights_go_to_the_primary_and_canary_destinations() {
        let release = release(json!({"port": 9898, "hosts": ["app.example.com", "web"], "gateways": ["public/gw"]}));
        let (_, _, vs) = objects(&release, &weighted(90, 10));
        assert_generated(&vs, "web");
        assert_eq!(vs["kind"], "VirtualService");
        assert_eq!(
            vs["spec"],
            json!({
                "hosts": ["web", "app.example.com"],
                "gateways": ["public/gw"],
                "http": [{
                    "name": "weighted",
                    "route": [
                        {"destination": {"host": "web-primary", "port": {"number": 9898}}, "weight": 90},
                        {"destination": {"host": "web-canary", "port": {"number": 9898}}, "weight": 10},
                    ],
                }],
            })
        );
    }

    #[test]
    fn without_gateways_the_virtual_service_serves_the_mesh() {
        let (_, _, vs) = objects(&release(json!({"port": 80})), &weighted(100, 0));
        assert_eq!(vs["spec"]["gateways"], json!(["mesh"]));
    }

    #[test]
    fn ab_testing_puts_the_matched_route_to_the_canary_first() {
        let routes = Routes {
            matches: vec![RequestMatch {
                headers: BTreeMap::from([(
                    "X-Canary".into(),
                    StringMatch {
                        regex: Some("^(insider|beta)$".into()),
                        ..StringMatch::default()
                    },
                )]),
                cookies: BTreeMap::from([(
                    "canary".into(),
                    StringMatch {
                        prefix: Some("yes".into()),
                        ..StringMatch::default()
                    },
                )]),
                ..RequestMatch::default()
            }],
            ..Routes::primary_only()
        };
        let (_, _, vs) = objects(&release(json!({"port": 80, "timeout": "5s"})), &routes);
        let http = vs["spec"]["http"].as_array().unwrap();
        assert_eq!(http.len(), 2);
        assert_eq!(
            http[0],
            json!({
                "name": "canary-match",
                "match": [{"headers": {
                    "x-canary": {"regex": "^(insider|beta)$"},
                    "cookie": {"regex": r"^(.*?;\s*)?canary=yes[^;]*(;.*)?$"},
                }}],
                "route": [{"destination": {"host": "web-canary", "port": {"number": 80}}, "weight": 100}],
                "timeout": "5s",
            })
        );
        assert_eq!(http[1]["name"], "weighted");
        assert_eq!(http[1]["route"][0]["weight"], 100);
        assert_eq!(http[1]["timeout"], "5s");
    }

    #[test]
    fn mirroring_sets_mirror_and_its_percentage_on_the_weighted_route() {
        let routes = Routes {
            mirror: Some(40),
            ..Routes::primary_only()
        };
        let (_, _, vs) = objects(&release(json!({"port": 80})), &routes);
        let weighted = &vs["spec"]["http"][0];
        assert_eq!(
            weighted["mirror"],
            json!({"host": "web-canary", "port": {"number": 80}})
        );
        assert_eq!(weighted["mirrorPercentage"], json!({"value": 40.0}));
    }

    /// The Istio tutorial's `service` with every route option Flagger documents.
    fn service_with_route_options() -> Value {
        json!({
            "port": 9898,
            "timeout": "10s",
            "match": [
                {"uri": {"prefix": "/api"}, "headers": {"X-Tenant": {"exact": "shop"}}},
                {"uri": {"exact": "/healthz"}},
            ],
            "rewrite": {"uri": "/v2", "authority": "api.example.com", "type": "ReplacePrefixMatch"},
            "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream"},
            "headers": {
                "request": {"add": {"x-added": "1"}, "set": {"x-api-version": "v1"}, "remove": ["x-debug"]},
                "response": {"remove": ["x-powered-by"]},
            },
            "corsPolicy": {
                "allowOrigins": [{"exact": "https://shop.example"}],
                "allowMethods": ["GET", "POST"],
                "allowCredentials": true,
                "maxAge": "24h",
            },
        })
    }

    #[test]
    fn every_route_carries_the_service_match_rewrite_retries_headers_cors_and_timeout() {
        let release = release(service_with_route_options());
        let (_, _, vs) = objects(&release, &weighted(90, 10));
        let weighted = &vs["spec"]["http"][0];
        assert_eq!(
            weighted["match"],
            json!([
                {"uri": {"prefix": "/api"}, "headers": {"x-tenant": {"exact": "shop"}}},
                {"uri": {"exact": "/healthz"}},
            ]),
            "header names are lowercased, as Istio requires"
        );
        assert_eq!(
            weighted["rewrite"],
            json!({"uri": "/v2", "authority": "api.example.com"})
        );
        assert_eq!(
            weighted["retries"],
            json!({"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream"})
        );
        assert_eq!(
            weighted["headers"],
            json!({
                "request": {"add": {"x-added": "1"}, "set": {"x-api-version": "v1"}, "remove": ["x-debug"]},
                "response": {"remove": ["x-powered-by"]},
            })
        );
        assert_eq!(
            weighted["corsPolicy"],
            json!({
                "allowOrigins": [{"exact": "https://shop.example"}],
                "allowMethods": ["GET", "POST"],
                "allowCredentials": true,
                "maxAge": "24h",
            })
        );
        assert_eq!(weighted["timeout"], "10s");
    }

    #[test]
    fn ab_conditions_are_added_to_each_service_match() {
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
                        prefix: Some("y".into()),
                        ..StringMatch::default()
                    },
                )]),
                source_labels: BTreeMap::from([("app".into(), "frontend".into())]),
                ..RequestMatch::default()
            }],
            ..Routes::primary_only()
        };
        let (_, _, vs) = objects(&release(service_with_route_options()), &routes);
        let ab = &vs["spec"]["http"][0];
        assert_eq!(ab["name"], "canary-match");
        assert_eq!(
            ab["match"],
            json!([
                {
                    "uri": {"prefix": "/api"},
                    "headers": {"x-tenant": {"exact": "shop"}, "x-canary": {"exact": "insider"}},
                    "queryParams": {"beta": {"regex": "^y.*"}},
                    "sourceLabels": {"app": "frontend"},
                },
                {
                    "uri": {"exact": "/healthz"},
                    "headers": {"x-canary": {"exact": "insider"}},
                    "queryParams": {"beta": {"regex": "^y.*"}},
                    "sourceLabels": {"app": "frontend"},
                },
            ])
        );
        assert_eq!(ab["retries"]["attempts"], 3, "the A/B route has the route options too");
    }

    #[test]
    fn app_protocol_tcp_routes_tcp_by_weight_only() {
        let release = release(json!({"port": 7070, "appProtocol": "TCP", "gateways": ["istio-system/public-gateway"]}));
        let (_, _, vs) = objects(&release, &weighted(80, 20));
        assert!(vs["spec"].get("http").is_none());
        assert_eq!(
            vs["spec"]["tcp"],
            json!([{"route": [
                {"destination": {"host": "web-primary", "port": {"number": 7070}}, "weight": 80},
                {"destination": {"host": "web-canary", "port": {"number": 7070}}, "weight": 20},
            ]}])
        );
        assert_eq!(vs["spec"]["gateways"], json!(["istio-system/public-gateway"]));

        let mirrored = Routes {
            mirror: Some(100),
            ..Routes::primary_only()
        };
        let err = Istio
            .desired(&release, &mirrored, &RouterInputs::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the istio (appProtocol TCP) router cannot mirror requests to the canary"
        );
    }

    #[test]
    fn session_affinity_routes_cookie_holders_to_the_canary_which_sets_the_cookie() {
        let routes = Routes {
            session_affinity: Some(SessionAffinity {
                cookie_name: "sticky".into(),
                max_age: 600,
                ..SessionAffinity::default()
            }),
            ..weighted(70, 30)
        };
        let (_, _, vs) = objects(&release(json!({"port": 80})), &routes);
        let http = vs["spec"]["http"].as_array().unwrap();
        assert_eq!(
            http[0]["match"],
            json!([{"headers": {"cookie": {"regex": r"^(.*?;\s*)?sticky=canary(;.*)?$"}}}])
        );
        assert_eq!(http[0]["route"][0]["destination"]["host"], "web-canary");
        assert_eq!(
            http[1]["route"][1]["headers"],
            json!({"response": {"add": {"Set-Cookie": "sticky=canary; Max-Age=600; Path=/"}}})
        );
        assert!(http[1]["route"][0].get("headers").is_none());
    }
}
