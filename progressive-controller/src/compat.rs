//! The Flagger fields a Canary or MetricTemplate may carry that Eddy accepts and does not act
//! on, each with the reason, so that a Flagger object moved over by changing its apiVersion says
//! what of it has no effect here (the Canary's Ready message carries them).
//!
//! Pure: from the spec alone. Whether a field acts can depend on the router the Canary names
//! (`service.gatewayRefs` means nothing to the `istio` router). What a router refuses (a mirror
//! for `smi`, a timeout for `kubernetes`) is not listed here: the release stalls with the reason.

use eddy_api::progressive::{CanarySpec, MetricTemplateSpec, RouterKind};

/// The fields of `spec` that are set and do nothing, as `field: why` lines, in the order of the
/// spec. Empty when everything set is acted on.
pub fn ignored_fields(spec: &CanarySpec) -> Vec<String> {
    let router = Router::of(spec);
    let mut ignored = Vec::new();
    let mut note = |field: String, why: String| ignored.push(format!("{field}: {why}"));

    if spec.ingress_ref.is_some() && spec.provider != RouterKind::Nginx {
        note("ingressRef".into(), router.only("nginx"));
    }
    if spec.route_ref.is_some() {
        note(
            "routeRef".into(),
            "Flagger's APISIX route; Eddy has no apisix router".into(),
        );
    }
    if spec.upstream_ref.is_some() {
        note(
            "upstreamRef".into(),
            "Flagger's Gloo upstream; Eddy has no gloo router".into(),
        );
    }
    if let Some(autoscaler) = &spec.autoscaler_ref
        && !autoscaler.primary_scaler_queries.is_empty()
    {
        note(
            "autoscalerRef.primaryScalerQueries".into(),
            "queries are for KEDA ScaledObjects; Eddy copies a HorizontalPodAutoscaler, its metrics as written".into(),
        );
    }

    let service = &spec.service;
    if !service.gateway_refs.is_empty() && !router.gateway_api {
        note("service.gatewayRefs".into(), router.only("gatewayapi"));
    }
    if service.backend_timeout.is_some() && !router.gateway_api {
        note("service.backendTimeout".into(), router.only("gatewayapi"));
    }
    if !service.mirror.is_empty() && !router.gateway_api {
        note("service.mirror".into(), router.only("gatewayapi"));
    }
    if !service.hosts.is_empty() && !router.istio && !router.gateway_api {
        note("service.hosts".into(), router.only("istio and gatewayapi"));
    }
    if !service.gateways.is_empty() && !router.istio {
        note("service.gateways".into(), router.only("istio"));
    }
    if service.traffic_policy.is_some() && !router.istio {
        note("service.trafficPolicy".into(), router.only("istio"));
    }
    if service.delegation {
        note(
            "service.delegation".into(),
            "Eddy's VirtualService always has hosts and gateways; Istio delegation is not supported".into(),
        );
    }
    let http_options = [
        ("service.match", !service.match_requests.is_empty()),
        ("service.rewrite", service.rewrite.is_some()),
        ("service.headers", service.headers.is_some()),
        ("service.corsPolicy", service.cors_policy.is_some()),
    ];
    for (field, set) in http_options {
        if set && !router.istio_http && !router.gateway_api {
            note(field.into(), router.no_http_routes());
        }
    }
    if service.retries.is_some() && !router.istio_http {
        let why = match router.gateway_api {
            true => "Gateway API's standard channel has no retries".into(),
            false => router.no_http_routes(),
        };
        note("service.retries".into(), why);
    }
    if router.istio_http && service.rewrite.as_ref().is_some_and(|r| r.rewrite_type.is_some()) {
        note(
            "service.rewrite.type".into(),
            "read by the gatewayapi routers; Istio replaces the matched prefix, or the whole path".into(),
        );
    }
    if service.mesh_name.is_some() {
        note(
            "service.meshName".into(),
            "App Mesh's; Eddy has no appmesh router".into(),
        );
    }
    if !service.backends.is_empty() {
        note(
            "service.backends".into(),
            "App Mesh's; Eddy has no appmesh router".into(),
        );
    }
    if service.unmanaged_metadata.is_some() {
        note(
            "service.unmanagedMetadata".into(),
            "Eddy applies server-side and never removes labels or annotations that others wrote".into(),
        );
    }

    let Some(analysis) = &spec.analysis else {
        return ignored;
    };
    if !analysis.alerts.is_empty() {
        note(
            "analysis.alerts".into(),
            "Eddy sends a Canary's events through notify-controller Alerts (notify.eddy.dev) that select them; \
             AlertProviders are not read"
                .into(),
        );
    }
    for hook in analysis.webhooks.iter().filter(|hook| hook.mute_alert) {
        note(
            format!("analysis.webhooks[{}].muteAlert", hook.name),
            "Eddy records every event; notify-controller Alerts choose which to send".into(),
        );
    }
    if spec.provider == RouterKind::Nginx {
        for (index, request) in analysis.match_requests.iter().enumerate() {
            if !request.query_params.is_empty() {
                note(
                    format!("analysis.match[{index}].queryParams"),
                    "ingress-nginx selects canary requests by one header or cookie only".into(),
                );
            }
            if !request.source_labels.is_empty() {
                note(
                    format!("analysis.match[{index}].sourceLabels"),
                    "ingress-nginx selects canary requests by one header or cookie only".into(),
                );
            }
        }
    }
    if let Some(affinity) = &analysis.session_affinity {
        if affinity.primary_cookie_name.is_some() {
            note(
                "analysis.sessionAffinity.primaryCookieName".into(),
                "only the canary sets a cookie; primary sessions follow the weights".into(),
            );
        }
        let attributes = [
            ("domain", affinity.domain.is_some()),
            ("path", affinity.path.is_some()),
            ("httpOnly", affinity.http_only),
            ("secure", affinity.secure),
            ("sameSite", affinity.same_site.is_some()),
            ("partitioned", affinity.partitioned),
        ];
        for (attribute, set) in attributes {
            if set {
                note(
                    format!("analysis.sessionAffinity.{attribute}"),
                    format!(
                        "Eddy's cookie is `{}=canary; Max-Age={}; Path=/`, without other attributes",
                        affinity.cookie_name, affinity.max_age
                    ),
                );
            }
        }
    }
    ignored
}

/// The fields of a MetricTemplate's `spec` that are set and do nothing, as `field: why` lines.
pub fn ignored_template_fields(spec: &MetricTemplateSpec) -> Vec<String> {
    let mut ignored = Vec::new();
    if !spec.provider.headers.is_empty() {
        ignored.push(
            "provider.headers: Eddy sends no extra headers to Prometheus; use secretRef for credentials".to_owned(),
        );
    }
    if spec.provider.region.is_some() {
        ignored.push("provider.region: a Prometheus provider has no region".to_owned());
    }
    ignored
}

/// What the router a Canary names can act on.
struct Router {
    /// The `provider` as written in the Canary.
    name: String,
    istio: bool,
    /// `istio` routing HTTP (not `appProtocol: TCP`).
    istio_http: bool,
    gateway_api: bool,
}

impl Router {
    fn of(spec: &CanarySpec) -> Self {
        let istio = spec.provider == RouterKind::Istio;
        let tcp = spec
            .service
            .app_protocol
            .as_deref()
            .is_some_and(|protocol| protocol.eq_ignore_ascii_case("tcp"));
        Self {
            name: serde_json::to_value(spec.provider)
                .ok()
                .and_then(|name| name.as_str().map(str::to_owned))
                .unwrap_or_default(),
            istio,
            istio_http: istio && !tcp,
            gateway_api: matches!(spec.provider, RouterKind::Gatewayapi | RouterKind::GatewayapiV1beta1),
        }
    }

    /// Why a field read by `routers` only does nothing here.
    fn only(&self, routers: &str) -> String {
        let default = match self.istio {
            true => " (also the provider of a Canary that names none)",
            false => "",
        };
        format!(
            "read by the {routers} router only; this Canary routes with {}{default}",
            self.name
        )
    }

    /// Why an HTTP route option does nothing here.
    fn no_http_routes(&self) -> String {
        match self.istio {
            true => "with appProtocol TCP the VirtualService routes TCP, which has no HTTP options".into(),
            false => format!(
                "read by the istio and gatewayapi routers only; this Canary routes with {}",
                self.name
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> CanarySpec {
        let mut base = json!({"targetRef": {"kind": "Deployment", "name": "podinfo"}, "service": {"port": 9898}});
        for (key, field) in value.as_object().unwrap() {
            base[key] = field.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn fields(lines: &[String]) -> Vec<&str> {
        lines.iter().map(|line| line.split(": ").next().unwrap()).collect()
    }

    #[test]
    fn a_canary_eddy_acts_on_whole_lists_nothing() {
        let honoured = spec(json!({
            "provider": "istio",
            "service": {
                "port": 9898,
                "targetPort": "http",
                "portDiscovery": true,
                "appProtocol": "http",
                "gateways": ["istio-system/public-gateway"],
                "hosts": ["app.example.com"],
                "trafficPolicy": {"tls": {"mode": "DISABLE"}},
                "retries": {"attempts": 3},
                "headers": {"request": {"set": {"x-version": "1"}}},
                "corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}]},
                "match": [{"uri": {"prefix": "/"}}],
                "rewrite": {"uri": "/"},
            },
            "analysis": {"primaryReadyThreshold": 50, "sessionAffinity": {"cookieName": "sticky"}},
        }));
        assert_eq!(ignored_fields(&honoured), Vec::<String>::new());
    }

    #[test]
    fn flagger_fields_without_an_eddy_counterpart_are_named_with_the_reason() {
        let flagger = spec(json!({
            "provider": "istio",
            "routeRef": {"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "podinfo"},
            "autoscalerRef": {
                "kind": "HorizontalPodAutoscaler",
                "name": "podinfo",
                "primaryScalerQueries": {"prom-trigger": "sum(rate(http_requests_total[30s]))"},
            },
            "service": {
                "port": 9898,
                "delegation": true,
                "meshName": "global",
                "unmanagedMetadata": {"annotations": ["team"]},
            },
            "analysis": {
                "alerts": [{"name": "on-call", "severity": "error", "providerRef": {"name": "slack"}}],
                "webhooks": [{"name": "gate", "type": "confirm-rollout", "url": "http://loadtester/gate/halt", "muteAlert": true}],
                "sessionAffinity": {"cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie", "secure": true},
            },
        }));
        let ignored = ignored_fields(&flagger);
        assert_eq!(
            fields(&ignored),
            [
                "routeRef",
                "autoscalerRef.primaryScalerQueries",
                "service.delegation",
                "service.meshName",
                "service.unmanagedMetadata",
                "analysis.alerts",
                "analysis.webhooks[gate].muteAlert",
                "analysis.sessionAffinity.primaryCookieName",
                "analysis.sessionAffinity.secure",
            ]
        );
        assert!(ignored[5].contains("notify-controller Alerts"), "{}", ignored[5]);
        assert!(
            ignored[8].contains("`flagger-cookie=canary; Max-Age=86400; Path=/`"),
            "{}",
            ignored[8]
        );
    }

    #[test]
    fn gateway_api_fields_under_the_default_provider_say_that_istio_routes() {
        let moved = spec(json!({
            "service": {
                "port": 9898,
                "hosts": ["www.example.com"],
                "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}],
                "backendTimeout": "5s",
            },
        }));
        assert_eq!(
            ignored_fields(&moved),
            [
                "service.gatewayRefs: read by the gatewayapi router only; this Canary routes with istio (also the \
                 provider of a Canary that names none)",
                "service.backendTimeout: read by the gatewayapi router only; this Canary routes with istio (also the \
                 provider of a Canary that names none)",
            ]
        );
        let explicit = spec(json!({
            "provider": "gatewayapi:v1",
            "service": {"port": 9898, "gatewayRefs": [{"name": "gateway"}], "backendTimeout": "5s"},
        }));
        assert_eq!(ignored_fields(&explicit), Vec::<String>::new());
    }

    #[test]
    fn route_options_depend_on_the_router() {
        let options = json!({
            "port": 9898,
            "retries": {"attempts": 3},
            "headers": {"response": {"remove": ["x-powered-by"]}},
            "rewrite": {"uri": "/v2", "type": "ReplacePrefixMatch"},
            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
            "gateways": ["mesh"],
        });
        let gateway = spec(json!({"provider": "gatewayapi", "service": options.clone()}));
        assert_eq!(
            fields(&ignored_fields(&gateway)),
            ["service.gateways", "service.trafficPolicy", "service.retries"]
        );
        assert!(ignored_fields(&gateway)[2].contains("standard channel has no retries"));

        let istio = spec(json!({"provider": "istio", "service": options.clone()}));
        assert_eq!(fields(&ignored_fields(&istio)), ["service.rewrite.type"]);

        let mut tcp_options = options.clone();
        tcp_options["appProtocol"] = json!("TCP");
        let tcp = spec(json!({"provider": "istio", "service": tcp_options}));
        assert_eq!(
            fields(&ignored_fields(&tcp)),
            ["service.rewrite", "service.headers", "service.retries"]
        );
        assert!(ignored_fields(&tcp)[0].contains("routes TCP"));

        let nginx = spec(json!({
            "provider": "nginx",
            "ingressRef": {"name": "podinfo"},
            "service": options,
            "analysis": {"match": [{"headers": {"x-canary": {"exact": "insider"}}, "queryParams": {"beta": {"exact": "1"}}}]},
        }));
        assert_eq!(
            fields(&ignored_fields(&nginx)),
            [
                "service.gateways",
                "service.trafficPolicy",
                "service.rewrite",
                "service.headers",
                "service.retries",
                "analysis.match[0].queryParams",
            ]
        );
    }

    #[test]
    fn an_ingress_ref_does_nothing_for_other_routers() {
        let gateway = spec(json!({"provider": "kubernetes", "ingressRef": {"name": "podinfo"}}));
        assert_eq!(
            ignored_fields(&gateway),
            ["ingressRef: read by the nginx router only; this Canary routes with kubernetes"]
        );
    }

    #[test]
    fn metric_template_headers_and_region_are_named() {
        let template: MetricTemplateSpec = serde_json::from_value(json!({
            "provider": {
                "type": "prometheus",
                "address": "http://prometheus:9090",
                "headers": {"X-Scope-OrgID": ["tenant-a"]},
                "region": "eu-west-1",
            },
            "query": "up",
        }))
        .unwrap();
        assert_eq!(
            fields(&ignored_template_fields(&template)),
            ["provider.headers", "provider.region"]
        );
        let plain: MetricTemplateSpec = serde_json::from_value(json!({
            "provider": {"type": "prometheus", "address": "http://prometheus:9090"},
            "query": "up",
        }))
        .unwrap();
        assert!(ignored_template_fields(&plain).is_empty());
    }
}
