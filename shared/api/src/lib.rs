//! eddy-api: the CRD types of every Eddy API group, the types they share ([`meta`]: durations,
//! references, Artifact) and the kstatus-compatible [`conditions`], with the
//! CustomResourceDefinitions generated from the types. `manifests/crds/` holds the output of
//! [`crd_manifests`]; a check in CI keeps the two equal.
//!
//! May depend on: kube's core types, k8s-openapi, schemars, serde. Never on a client, a runtime,
//! Git, OCI or the engines: every crate of Eddy depends on this one.

pub mod conditions;
pub mod meta;

// kube's `printcolumn(name = .., type_ = .., json_path = ..)` repeats the same keys once per
// column by design; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
pub mod apply;
#[allow(clippy::duplicated_attributes)]
pub mod notify;
#[allow(clippy::duplicated_attributes)]
pub mod progressive;
#[allow(clippy::duplicated_attributes)]
pub mod source;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CustomResourceDefinition of Eddy, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        source::GitRepository::crd(),
        source::OCIRepository::crd(),
        apply::Kustomization::crd(),
        notify::Provider::crd(),
        notify::Alert::crd(),
        notify::Receiver::crd(),
        progressive::Canary::crd(),
        progressive::MetricTemplate::crd(),
    ]
}

/// One YAML manifest per CRD, named `<group>_<plural>.yaml`, plus the `kustomization.yaml` that
/// lists them.
pub fn crd_manifests() -> Result<Vec<(String, String)>, serde_saphyr::SerializeError> {
    const HEADER: &str = "# Generated from shared::api by `cargo xtask crds`. Do not edit.\n";
    let mut files = Vec::new();
    let mut names = Vec::new();
    for crd in crds() {
        let file = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
        files.push((file.clone(), format!("{HEADER}{}", serde_saphyr::to_string(&crd)?)));
        names.push(file);
    }
    let mut kustomization = String::from(HEADER);
    kustomization.push_str("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n");
    for name in &names {
        kustomization.push_str(&format!("  - {name}\n"));
    }
    files.push(("kustomization.yaml".to_owned(), kustomization));
    Ok(files)
}
