//! The names and marks of what a Canary generates: the primary Deployment, the three Services and
//! the router's objects, all derived from the Canary and its target.
//!
//! Every generated object carries an owner reference to the Canary (so it goes with it) and
//! `apply.eddy.dev/reconcile: disabled` plus Flux's equivalent (so no GitOps controller fights
//! the progressive controller over it).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
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
        }
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

    /// The container port the Services forward to.
    pub fn target_port(&self) -> i32 {
        self.service.target_port.unwrap_or(self.service.port)
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

    /// A ClusterIP Service named `name` that selects `selector`, on the Canary's port.
    pub fn service_object(
        &self,
        name: &str,
        selector: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(name, labels, annotations),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{
                    "name": self.service.port_name,
                    "port": self.port(),
                    "targetPort": self.target_port(),
                    "protocol": "TCP",
                }],
            },
        })
    }
}

/// The label of `pod_labels` that selects a workload's pods, from [`SELECTOR_LABELS`].
pub fn selector_label(pod_labels: &BTreeMap<String, String>) -> Option<(String, String)> {
    SELECTOR_LABELS
        .iter()
        .find_map(|key| pod_labels.get(*key).map(|value| ((*key).to_owned(), value.clone())))
}
