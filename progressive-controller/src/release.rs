//! The names and marks of what a Canary generates: the primary Deployment, the three Services and
//! the router's objects, all derived from the Canary and its target.
//!
//! Every generated object carries an owner reference to the Canary (so it goes with it) and
//! `apply.eddy.dev/reconcile: disabled` plus Flux's equivalent (so no GitOps controller fights
//! the progressive controller over it).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use eddy_api::progressive::{Canary, CanaryService, RouterKind};

/// The annotation that makes apply-controller leave an object alone.
pub const RECONCILE_ANNOTATION: &str = "apply.eddy.dev/reconcile";
/// Flux's form of [`RECONCILE_ANNOTATION`], for clusters where Flux applies too.
pub const FLUX_RECONCILE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/reconcile";
/// Label on every generated object naming the Canary it belongs to.
pub const CANARY_LABEL: &str = "progressive.eddy.dev/canary";
/// Labels whose value selects a workload's pods, in the order they are looked for (Flagger's
/// `-selector-labels` default).
pub const SELECTOR_LABELS: [&str; 3] = ["app", "name", "app.kubernetes.io/name"];

/// One Canary's release: where it lives and what its generated objects are called.
#[derive(Clone, Debug, PartialEq)]
pub struct Release {
    /// Namespace of the Canary and of everything it generates.
    pub namespace: String,
    /// Name of the Canary.
    pub name: String,
    /// Name of the target Deployment (the canary workload).
    pub target: String,
    /// The apex Service, which clients call: `service.name` or the target's name.
    pub apex: String,
    /// `<apex>-primary`: the Service of the stable workload.
    pub primary_service: String,
    /// `<apex>-canary`: the Service of the canary workload.
    pub canary_service: String,
    /// `<target>-primary`: the stable workload.
    pub primary: String,
    /// The router chosen in the Canary.
    pub router: RouterKind,
    /// The Canary's `service` section.
    pub service: CanaryService,
    /// The owner reference that ties generated objects to the Canary.
    pub owner: OwnerReference,
    /// The label key and value that select the target's pods; the primary's pods have the
    /// value with `-primary` appended.
    pub selector: (String, String),
    /// Ports every generated Service has besides the Canary's own: the target's, under
    /// `service.portDiscovery` ([`Release::with_target_ports`]).
    pub discovered_ports: Vec<ServicePort>,
}

impl Release {
    /// The release of `canary`, whose target selects its pods with `selector`.
    pub fn new(canary: &Canary, selector: (String, String)) -> Self {
        let namespace = canary.namespace().unwrap_or_default();
        let target = canary.spec.target_ref.name.clone();
        let apex = canary.spec.service.name.clone().unwrap_or_else(|| target.clone());
        Self {
            primary_service: format!("{apex}-primary"),
            canary_service: format!("{apex}-canary"),
            primary: format!("{target}-primary"),
            apex,
            target,
            namespace,
            name: canary.name_any(),
            router: canary.spec.provider,
            service: canary.spec.service.clone(),
            owner: canary
                .controller_owner_ref(&())
                .expect("a Canary read from the API server has a name and uid"),
            selector,
            discovered_ports: Vec::new(),
        }
    }

    /// The release with the other ports of `target`'s first container on its Services, when
    /// the Canary asks for port discovery ([`discovered_ports`]); unchanged otherwise.
    pub fn with_target_ports(mut self, target: &Deployment) -> Self {
        if self.service.port_discovery {
            self.discovered_ports = discovered_ports(&self.service, target);
        }
        self
    }

    /// The pod labels that select the primary's pods.
    pub fn primary_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(self.selector.0.clone(), format!("{}-primary", self.selector.1))])
    }

    /// The pod labels that select the canary's (the target's) pods.
    pub fn canary_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(self.selector.0.clone(), self.selector.1.clone())])
    }

    /// The port clients call on every generated Service.
    pub fn port(&self) -> i32 {
        self.service.port
    }

    /// The container port the Services forward to, by number or name.
    pub fn target_port(&self) -> IntOrString {
        self.service
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(self.service.port))
    }

    /// `metadata` for a generated object named `name`: namespace, the Canary's label, the
    /// leave-alone annotations and the owner reference, merged with `labels` and `annotations`.
    pub fn metadata(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Value {
        let mut labels = labels.clone();
        labels.insert(CANARY_LABEL.into(), self.name.clone());
        let mut annotations = annotations.clone();
        annotations.insert(RECONCILE_ANNOTATION.into(), "disabled".into());
        annotations.insert(FLUX_RECONCILE_ANNOTATION.into(), "disabled".into());
        json!({
            "name": name,
            "namespace": self.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [self.owner],
        })
    }

    /// A ClusterIP Service named `name` that selects `selector`: on the Canary's port (with its
    /// `appProtocol`) and the discovered ports, headless and with a traffic distribution when
    /// the Canary asks.
    pub fn service_object(
        &self,
        name: &str,
        selector: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Value {
        let mut port = json!({
            "name": self.service.port_name,
            "port": self.port(),
            "targetPort": self.target_port(),
            "protocol": "TCP",
        });
        if let Some(protocol) = &self.service.app_protocol {
            port["appProtocol"] = json!(protocol);
        }
        let mut ports = vec![port];
        ports.extend(self.discovered_ports.iter().map(|port| json!(port)));
        let mut spec = json!({"type": "ClusterIP", "selector": selector, "ports": ports});
        if self.service.headless {
            spec["clusterIP"] = json!("None");
        }
        if let Some(distribution) = self.service.traffic_distribution {
            spec["trafficDistribution"] = json!(distribution);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(name, labels, annotations),
            "spec": spec,
        })
    }
}

/// The ports of `target`'s first container other than the Canary's own, as Service ports of the
/// same number and protocol, named as the container names them or `tcp-<container>-<index>`
/// (Flagger's `portDiscovery`). A port whose number is the Canary's `port`, or that is its
/// `targetPort` (by number or name), or whose name or number another port already has, is left
/// out: a Service refuses duplicate names and numbers.
pub fn discovered_ports(service: &CanaryService, target: &Deployment) -> Vec<ServicePort> {
    let Some(container) = target
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers.first())
    else {
        return Vec::new();
    };
    let mut names = vec![service.port_name.clone()];
    let mut numbers = vec![service.port];
    let mut found = Vec::new();
    for (index, port) in container.ports.iter().flatten().enumerate() {
        let is_target = match &service.target_port {
            Some(IntOrString::Int(number)) => *number == port.container_port,
            Some(IntOrString::String(name)) => port.name.as_deref() == Some(name.as_str()),
            None => false,
        };
        let name = port
            .name
            .clone()
            .unwrap_or_else(|| format!("tcp-{}-{index}", container.name));
        if is_target || numbers.contains(&port.container_port) || names.contains(&name) {
            continue;
        }
        names.push(name.clone());
        numbers.push(port.container_port);
        found.push(ServicePort {
            name: Some(name),
            port: port.container_port,
            target_port: Some(IntOrString::Int(port.container_port)),
            protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
            ..ServicePort::default()
        });
    }
    found
}

/// The label of `pod_labels` that selects a workload's pods, from [`SELECTOR_LABELS`].
pub fn selector_label(pod_labels: &BTreeMap<String, String>) -> Option<(String, String)> {
    SELECTOR_LABELS
        .iter()
        .find_map(|key| pod_labels.get(*key).map(|value| ((*key).to_owned(), value.clone())))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::router::fixtures::release;

    fn deployment(ports: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "selector": {},
                "template": {"spec": {"containers": [
                    {"name": "app", "ports": ports},
                    {"name": "istio-proxy", "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}]},
                ]}},
            },
        }))
        .unwrap()
    }

    fn port_names(service: &Value) -> Vec<(String, i64)> {
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["port"].as_i64().unwrap()))
            .collect()
    }

    #[test]
    fn port_discovery_adds_the_first_containers_other_ports_to_every_service() {
        let target = deployment(json!([
            {"containerPort": 9898, "name": "http"},
            {"containerPort": 9797, "name": "metrics"},
            {"containerPort": 9999},
            {"containerPort": 5353, "protocol": "UDP", "name": "dns"},
        ]));
        let release =
            release(json!({"port": 80, "targetPort": 9898, "portDiscovery": true})).with_target_ports(&target);
        let service = release.service_object("web", &release.primary_selector(), &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(
            port_names(&service),
            [
                ("http".to_owned(), 80),
                ("metrics".to_owned(), 9797),
                ("tcp-app-2".to_owned(), 9999),
                ("dns".to_owned(), 5353),
            ],
            "the target port is the Canary's own, the sidecar's ports are not the first container's"
        );
        assert_eq!(
            service["spec"]["ports"][3],
            json!({"name": "dns", "port": 5353, "targetPort": 5353, "protocol": "UDP"})
        );
    }

    #[test]
    fn without_port_discovery_the_services_have_the_canarys_port_only() {
        let target = deployment(json!([{"containerPort": 9797, "name": "metrics"}]));
        let release = release(json!({"port": 80})).with_target_ports(&target);
        assert!(release.discovered_ports.is_empty());
    }

    #[test]
    fn a_named_target_port_and_clashing_ports_are_left_out() {
        let target = deployment(json!([
            {"containerPort": 8080, "name": "web"},
            {"containerPort": 80, "name": "other"},
            {"containerPort": 9090, "name": "http"},
        ]));
        let service: CanaryService =
            serde_json::from_value(json!({"port": 80, "targetPort": "web", "portDiscovery": true})).unwrap();
        assert!(
            discovered_ports(&service, &target).is_empty(),
            "8080 is the target port, 80 the Canary's port, http its port name"
        );
    }

    #[test]
    fn app_protocol_headless_and_traffic_distribution_shape_every_service() {
        let shaped = release(json!({
            "port": 9898,
            "targetPort": "http",
            "appProtocol": "kubernetes.io/h2c",
            "headless": true,
            "trafficDistribution": "PreferSameZone",
        }));
        let service = shaped.service_object(
            "web-canary",
            &shaped.canary_selector(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(
            service["spec"],
            json!({
                "type": "ClusterIP",
                "clusterIP": "None",
                "trafficDistribution": "PreferSameZone",
                "selector": {"app": "web"},
                "ports": [{
                    "name": "http",
                    "port": 9898,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                }],
            })
        );
        let plain = release(json!({"port": 9898}));
        let service = plain.service_object("web", &plain.primary_selector(), &BTreeMap::new(), &BTreeMap::new());
        assert!(service["spec"].get("clusterIP").is_none());
        assert!(service["spec"].get("trafficDistribution").is_none());
        assert_eq!(service["spec"]["ports"][0]["targetPort"], 9898);
    }
}
