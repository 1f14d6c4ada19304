//! The `istio` router: DestinationRules `<apex>-primary` and `<apex>-canary` carrying the Canary's
//! `trafficPolicy`, and VirtualService `<apex>`, whose HTTP routes split requests between them by
//! weight, send matched requests (A/B) and sticky sessions to the canary, and mirror to it.
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

/// The `istio` router.
pub struct Istio;

impl TrafficRouter for Istio {
    fn name(&self) -> &'static str {
        "istio"
    }

    fn desired(&self, release: &Release, routes: &Routes, _inputs: &RouterInputs) -> Result<Vec<Desired>, RouterError> {
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
        let virtual_service = json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "VirtualService",
            "metadata": release.metadata(&release.apex, &Default::default(), &Default::default()),
            "spec": {"hosts": hosts, "gateways": gateways, "http": http},
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
    /// An HTTPMatchRequest holding every condition of `request`. Header names are lowercased, as
    /// Istio requires; the cookie is a regular expression on the `cookie` header.
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
        Ok(json!({"headers": headers}))
    }
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

/// An HTTP route named `name` sending requests that meet any of `matches` (all when `None`) to
/// `destinations`, with the Canary's timeout.
fn route(release: &Release, name: &str, matches: Option<Vec<Value>>, destinations: Vec<Value>) -> Value {
    let mut route = json!({"name": name, "route": destinations});
    if let Some(matches) = matches {
        route["match"] = json!(matches);
    }
    if let Some(timeout) = &release.service.timeout {
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

    #[test]
    fn session_affinity_routes_cookie_holders_to_the_canary_which_sets_the_cookie() {
        let routes = Routes {
            session_affinity: Some(SessionAffinity {
                cookie_name: "sticky".into(),
                max_age: 600,
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
