//! Eddy's own components: the install manifests embedded in this binary (`manifests/` of the
//! commit it was built from), rendered with the kustomize engine for a namespace, a registry, a
//! version and a selection of controllers.

use std::collections::BTreeSet;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/manifests.rs"));
}

/// Every controller, in install order.
pub const CONTROLLERS: [&str; 4] = [
    "source-controller",
    "apply-controller",
    "notify-controller",
    "progressive-controller",
];

/// Controllers Eddy cannot manage itself without.
pub const REQUIRED: [&str; 2] = ["source-controller", "apply-controller"];

/// The registry the manifests name.
pub const DEFAULT_REGISTRY: &str = "ghcr.io/eddy-dev";

/// This binary's version, as image tags spell it.
pub fn default_version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// What to install.
#[derive(Clone, Debug, clap::Args)]
pub struct Selection {
    /// Controllers to install, comma-separated; source-controller and apply-controller are
    /// always needed.
    #[arg(long, value_delimiter = ',', default_values_t = CONTROLLERS.map(String::from))]
    pub components: Vec<String>,
    /// Registry (and path) the images are pulled from: `<registry>/<controller>:<version>`.
    #[arg(long, default_value = DEFAULT_REGISTRY)]
    pub registry: String,
    /// Image tag of the controllers.
    #[arg(long, default_value_t = default_version())]
    pub version: String,
}

impl Selection {
    /// Refuses unknown or missing controllers.
    pub fn check(&self) -> anyhow::Result<()> {
        for name in &self.components {
            if !CONTROLLERS.contains(&name.as_str()) {
                bail!(
                    "--components: {name} is not a controller (one of {})",
                    CONTROLLERS.join(", ")
                );
            }
        }
        for required in REQUIRED {
            if !self.components.iter().any(|c| c == required) {
                bail!("--components must include {required}: Eddy cannot install or update itself without it");
            }
        }
        if self.registry.is_empty() || self.registry.contains(char::is_whitespace) {
            bail!("--registry {:?} is not a registry", self.registry);
        }
        if self.version.is_empty()
            || self.version.contains(['/', ':', '@'])
            || self.version.contains(char::is_whitespace)
        {
            bail!("--version {:?} is not an image tag", self.version);
        }
        Ok(())
    }
}

/// The components as objects: the embedded manifests for `namespace`, with the images of
/// `selection`, and only the selected controllers.
pub fn objects(selection: &Selection, namespace: &str) -> anyhow::Result<Vec<Value>> {
    selection.check()?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let manifests = dir.path().join("manifests");
    for (relative, content) in embedded::FILES {
        let path = manifests.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
    }
    let images: Vec<Value> = CONTROLLERS
        .iter()
        .map(|name| {
            json!({
                "name": format!("{DEFAULT_REGISTRY}/{name}"),
                "newName": format!("{}/{name}", selection.registry.trim_end_matches('/')),
                "newTag": selection.version,
            })
        })
        .collect();
    let overlay = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": ["manifests"],
        "images": images,
    });
    std::fs::write(dir.path().join("kustomization.yaml"), serde_json::to_string(&overlay)?)?;
    let options = eddy_kustomize::Options {
        root: Some(dir.path().to_owned()),
        ..eddy_kustomize::Options::default()
    };
    let yaml = eddy_kustomize::render(dir.path(), &options).context("rendering the embedded install manifests")?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&yaml).context("reading the rendered manifests")?;
    let selected: BTreeSet<&str> = selection.components.iter().map(String::as_str).collect();
    let mut objects = Vec::new();
    for mut object in documents.into_iter().filter(|d| d.is_object()) {
        if let Some(controller) = controller_of(&object)
            && !selected.contains(controller.as_str())
        {
            continue;
        }
        // Without notify-controller, the others have nowhere to send events.
        if !selected.contains("notify-controller")
            && let Some(args) = object
                .pointer_mut("/spec/template/spec/containers/0/args")
                .and_then(Value::as_array_mut)
        {
            args.retain(|a| a.as_str().is_none_or(|a| !a.starts_with("--events-addr=")));
        }
        // Bindings name the ServiceAccounts in the install namespace.
        if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
            for subject in subjects {
                if subject["kind"] == "ServiceAccount" {
                    subject["namespace"] = json!(namespace);
                }
            }
            if let Some(list) = object.get_mut("subjects").and_then(Value::as_array_mut) {
                list.retain(|s| {
                    s["kind"] != "ServiceAccount"
                        || s["name"]
                            .as_str()
                            .is_none_or(|n| !CONTROLLERS.contains(&n) || selected.contains(n))
                });
            }
        }
        objects.push(object);
    }
    Ok(objects)
}

/// The controller an object belongs to, when it belongs to one: its Deployment, Service,
/// ServiceAccount, ClusterRole, ClusterRoleBinding and the NetworkPolicies for its pods.
fn controller_of(object: &Value) -> Option<String> {
    let kind = object["kind"].as_str()?;
    let name = object["metadata"]["name"].as_str()?;
    let by_label = object["metadata"]["labels"]["app.kubernetes.io/name"].as_str();
    let controller = match kind {
        "Deployment" | "ServiceAccount" => Some(name),
        "Service" => by_label,
        "ClusterRole" | "ClusterRoleBinding" => name.strip_prefix("eddy-"),
        "NetworkPolicy" => object["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
        _ => None,
    }?;
    CONTROLLERS.contains(&controller).then(|| controller.to_owned())
}

/// `objects` as one YAML stream.
pub fn to_yaml(objects: &[Value], header: &str) -> anyhow::Result<String> {
    let mut out = String::from(header);
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(object).context("writing YAML")?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(components: &[&str]) -> Selection {
        Selection {
            components: components.iter().map(|c| (*c).to_owned()).collect(),
            registry: "registry.example.com/eddy".into(),
            version: "v9.9.9".into(),
        }
    }

    #[test]
    fn the_embedded_manifests_render_with_the_selected_images() {
        let objects = objects(&selection(&CONTROLLERS), "eddy-system").unwrap();
        let deployments: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Deployment").collect();
        assert_eq!(deployments.len(), 4);
        for deployment in deployments {
            let name = deployment["metadata"]["name"].as_str().unwrap();
            assert_eq!(
                deployment["spec"]["template"]["spec"]["containers"][0]["image"],
                format!("registry.example.com/eddy/{name}:v9.9.9")
            );
        }
        assert!(objects.iter().any(|o| o["kind"] == "CustomResourceDefinition"));
        assert!(objects.iter().any(|o| o["kind"] == "Namespace"));
    }

    #[test]
    fn a_selection_leaves_out_the_other_controllers_everywhere() {
        let objects = objects(&selection(&REQUIRED), "eddy-system").unwrap();
        // The CRDs all stay (their descriptions name the controllers); nothing else may.
        let rest: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] != "CustomResourceDefinition")
            .collect();
        let text = serde_json::to_string(&rest).unwrap();
        assert!(
            !text.contains("notify-controller"),
            "notify-controller is left out: {text}"
        );
        assert!(
            !text.contains("progressive-controller"),
            "progressive-controller is left out"
        );
        assert!(objects.iter().any(|o| o["metadata"]["name"] == "apply-controller"));
        assert_eq!(
            objects
                .iter()
                .filter(|o| o["kind"] == "CustomResourceDefinition")
                .count(),
            8
        );
    }

    #[test]
    fn another_namespace_moves_everything_and_the_bindings() {
        let objects = objects(&selection(&CONTROLLERS), "platform").unwrap();
        for object in &objects {
            if let Some(ns) = object["metadata"]["namespace"].as_str() {
                assert_eq!(ns, "platform", "{}", object["metadata"]["name"]);
            }
            for subject in object["subjects"].as_array().into_iter().flatten() {
                assert_eq!(subject["namespace"], "platform");
            }
        }
        assert!(
            objects
                .iter()
                .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "platform")
        );
    }

    #[test]
    fn bad_selections_are_refused_with_the_reason() {
        let err = selection(&["apply-controller"]).check().unwrap_err();
        assert!(err.to_string().contains("must include source-controller"), "{err}");
        let err = selection(&["source-controller", "apply-controller", "helm-controller"])
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("helm-controller is not a controller"), "{err}");
        let mut bad = selection(&CONTROLLERS);
        bad.version = "v1:latest".into();
        assert!(bad.check().is_err());
    }
}
