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
        // Whole numbers are written as integers (`minimum: 1`, not `1.0`), as the API server and
        // kustomize print them, so that a rendering of the CRDs reads the same everywhere.
        let mut value =
            serde_json::to_value(&crd).map_err(<serde_saphyr::SerializeError as serde::ser::Error>::custom)?;
        integral_numbers_as_integers(&mut value);
        files.push((file.clone(), format!("{HEADER}{}", serde_saphyr::to_string(&value)?)));
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

/// Rewrites every floating-point number with no fraction (`1.0`) as an integer (`1`).
fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) => {
            if let Some(float) = number.as_f64()
                && !number.is_i64()
                && !number.is_u64()
                && float.fract() == 0.0
                && float.abs() < 9.0e15
            {
                *number = serde_json::Number::from(float as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}
