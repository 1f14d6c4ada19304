//! The workloads of a release as the controller reads and writes them: the target Deployment
//! (the canary), its `-primary` copy, and the ConfigMaps and Secrets the target uses.
//!
//! Reads come from the API server on every tick; writes are server-side applies with the
//! controller's field manager. The user's Deployment is only ever scaled (its `replicas`), never
//! otherwise edited.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::decide::{Revision, Workload};
use crate::release::Release;

/// Annotation on the primary naming the target revision it was copied from.
pub const REVISION_ANNOTATION: &str = "progressive.eddy.dev/revision";
/// Annotation on a ConfigMap or Secret that keeps it out of the revision (and uncopied).
pub const CONFIG_TRACKING: &str = "progressive.eddy.dev/config-tracking";
/// Flagger's form of [`CONFIG_TRACKING`].
pub const FLAGGER_CONFIG_TRACKING: &str = "flagger.app/config-tracking";

/// Why reading or writing a workload failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("target Deployment/{namespace}/{name} not found")]
    TargetMissing { namespace: String, name: String },
    #[error(
        "target Deployment/{namespace}/{name} has no pod label among app, name, app.kubernetes.io/name to select its pods by"
    )]
    NoSelectorLabel { namespace: String, name: String },
    #[error("reading {object}: {source}")]
    Read {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing {object}: {source}")]
    Write {
        object: String,
        #[source]
        source: kube::Error,
    },
}

/// A ConfigMap or Secret the target uses, tracked in its revision and copied for the primary.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackedConfig {
    /// `ConfigMap` or `Secret`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Checksum of its data.
    pub checksum: String,
    /// Its data (`data`, `binaryData` or `stringData`-free `data` of a Secret), as read.
    pub data: Value,
}

/// The target as read: the Deployment, the configs it uses and the revision they make.
#[derive(Clone, Debug)]
pub struct Target {
    pub deployment: Deployment,
    pub configs: Vec<TrackedConfig>,
    pub revision: Revision,
}

/// Reads the target Deployment of `release` and the ConfigMaps and Secrets its pods use.
pub async fn read_target(client: &Client, namespace: &str, name: &str) -> Result<Target, WorkloadError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments
        .get_opt(name)
        .await
        .map_err(|source| WorkloadError::Read {
            object: format!("Deployment/{namespace}/{name}"),
            source,
        })?
        .ok_or_else(|| WorkloadError::TargetMissing {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    let template = serde_json::to_value(deployment.spec.as_ref().map(|s| &s.template)).unwrap_or_default();
    let mut configs = Vec::new();
    for (kind, config) in referenced_configs(&template) {
        if let Some(tracked) = read_config(client, namespace, kind, &config).await? {
            configs.push(tracked);
        }
    }
    let revision = Revision {
        spec: hash(&template),
        configs: configs
            .iter()
            .map(|c| (format!("{}/{}", c.kind, c.name), c.checksum.clone()))
            .collect(),
    };
    Ok(Target {
        deployment,
        configs,
        revision,
    })
}

async fn read_config(
    client: &Client,
    namespace: &str,
    kind: &'static str,
    name: &str,
) -> Result<Option<TrackedConfig>, WorkloadError> {
    let object = format!("{kind}/{namespace}/{name}");
    let read = |source| WorkloadError::Read {
        object: object.clone(),
        source,
    };
    let (annotations, data) = match kind {
        "ConfigMap" => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let Some(map) = api.get_opt(name).await.map_err(read)? else {
                return Ok(None);
            };
            (
                map.annotations().clone(),
                json!({"data": map.data, "binaryData": map.binary_data}),
            )
        }
        _ => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let Some(secret) = api.get_opt(name).await.map_err(read)? else {
                return Ok(None);
            };
            (
                secret.annotations().clone(),
                json!({"data": secret.data, "type": secret.type_}),
            )
        }
    };
    let disabled = [CONFIG_TRACKING, FLAGGER_CONFIG_TRACKING]
        .iter()
        .any(|key| annotations.get(*key).is_some_and(|v| v == "disabled"));
    if disabled {
        return Ok(None);
    }
    Ok(Some(TrackedConfig {
        kind,
        name: name.into(),
        checksum: hash(&data),
        data,
    }))
}

/// The ConfigMaps and Secrets a pod template refers to (volumes, projected volumes, envFrom,
/// env valueFrom), each once, in a stable order.
pub fn referenced_configs(template: &Value) -> BTreeSet<(&'static str, String)> {
    let mut found = BTreeSet::new();
    let spec = &template["spec"];
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(name) = volume["configMap"]["name"].as_str() {
            found.insert(("ConfigMap", name.to_owned()));
        }
        if let Some(name) = volume["secret"]["secretName"].as_str() {
            found.insert(("Secret", name.to_owned()));
        }
        for source in volume["projected"]["sources"].as_array().into_iter().flatten() {
            if let Some(name) = source["configMap"]["name"].as_str() {
                found.insert(("ConfigMap", name.to_owned()));
            }
            if let Some(name) = source["secret"]["name"].as_str() {
                found.insert(("Secret", name.to_owned()));
            }
        }
    }
    for container in containers(spec) {
        for from in container["envFrom"].as_array().into_iter().flatten() {
            if let Some(name) = from["configMapRef"]["name"].as_str() {
                found.insert(("ConfigMap", name.to_owned()));
            }
            if let Some(name) = from["secretRef"]["name"].as_str() {
                found.insert(("Secret", name.to_owned()));
            }
        }
        for env in container["env"].as_array().into_iter().flatten() {
            if let Some(name) = env["valueFrom"]["configMapKeyRef"]["name"].as_str() {
                found.insert(("ConfigMap", name.to_owned()));
            }
            if let Some(name) = env["valueFrom"]["secretKeyRef"]["name"].as_str() {
                found.insert(("Secret", name.to_owned()));
            }
        }
    }
    found
}

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(move |key| spec[key].as_array().into_iter().flatten())
}

fn containers_mut(spec: &mut Value) -> Vec<&mut Value> {
    let mut all = Vec::new();
    if let Some(map) = spec.as_object_mut() {
        for (key, list) in map.iter_mut() {
            if key == "initContainers" || key == "containers" {
                all.extend(list.as_array_mut().into_iter().flatten());
            }
        }
    }
    all
}

/// Renames references to the tracked configs in a pod template to their `-primary` copies.
pub fn rename_configs(template: &mut Value, tracked: &BTreeSet<(&'static str, String)>) {
    let renamed = |kind: &'static str, slot: &mut Value| {
        if let Some(name) = slot.as_str()
            && tracked.contains(&(kind, name.to_owned()))
        {
            *slot = Value::String(format!("{name}-primary"));
        }
    };
    let spec = &mut template["spec"];
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for volume in volumes {
            if volume.get("configMap").is_some() {
                renamed("ConfigMap", &mut volume["configMap"]["name"]);
            }
            if volume.get("secret").is_some() {
                renamed("Secret", &mut volume["secret"]["secretName"]);
            }
            if let Some(sources) = volume
                .get_mut("projected")
                .and_then(|p| p.get_mut("sources"))
                .and_then(Value::as_array_mut)
            {
                for source in sources {
                    if source.get("configMap").is_some() {
                        renamed("ConfigMap", &mut source["configMap"]["name"]);
                    }
                    if source.get("secret").is_some() {
                        renamed("Secret", &mut source["secret"]["name"]);
                    }
                }
            }
        }
    }
    for container in containers_mut(spec) {
        if let Some(froms) = container.get_mut("envFrom").and_then(Value::as_array_mut) {
            for from in froms {
                if from.get("configMapRef").is_some() {
                    renamed("ConfigMap", &mut from["configMapRef"]["name"]);
                }
                if from.get("secretRef").is_some() {
                    renamed("Secret", &mut from["secretRef"]["name"]);
                }
            }
        }
        if let Some(envs) = container.get_mut("env").and_then(Value::as_array_mut) {
            for env in envs {
                let Some(from) = env.get_mut("valueFrom") else { continue };
                if from.get("configMapKeyRef").is_some() {
                    renamed("ConfigMap", &mut from["configMapKeyRef"]["name"]);
                }
                if from.get("secretKeyRef").is_some() {
                    renamed("Secret", &mut from["secretKeyRef"]["name"]);
                }
            }
        }
    }
}

/// The primary Deployment: the target's spec with its pods relabelled `<value>-primary`, its
/// tracked configs renamed to their copies, `replicas` replicas, and the revision it holds.
pub fn primary_object(release: &Release, target: &Target, replicas: i32) -> Value {
    let deployment = serde_json::to_value(&target.deployment).unwrap_or_default();
    let mut spec = deployment["spec"].clone();
    let (key, value) = &release.selector;
    let primary_value = Value::String(format!("{value}-primary"));
    spec["replicas"] = replicas.into();
    spec["selector"] = json!({"matchLabels": release.primary_selector()});
    if let Some(labels) = spec["template"]["metadata"]["labels"].as_object_mut() {
        labels.insert(key.clone(), primary_value);
    }
    let tracked: BTreeSet<(&'static str, String)> = target.configs.iter().map(|c| (c.kind, c.name.clone())).collect();
    rename_configs(&mut spec["template"], &tracked);
    if let Some(spec) = spec.as_object_mut() {
        spec.remove("paused");
    }
    let labels: BTreeMap<String, String> = target.deployment.labels().clone();
    let annotations = BTreeMap::from([(REVISION_ANNOTATION.to_owned(), target.revision.spec.clone())]);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": release.metadata(&release.primary, &labels, &annotations),
        "spec": spec,
    })
}

/// The `-primary` copies of the target's tracked configs.
pub fn config_copies(release: &Release, target: &Target) -> Vec<Value> {
    target
        .configs
        .iter()
        .map(|config| {
            let mut object = json!({
                "apiVersion": "v1",
                "kind": config.kind,
                "metadata": release.metadata(&format!("{}-primary", config.name), &BTreeMap::new(), &BTreeMap::new()),
            });
            for (key, value) in config.data.as_object().into_iter().flatten() {
                if !value.is_null() {
                    object[key] = value.clone();
                }
            }
            object
        })
        .collect()
}

/// Writes the primary and its config copies.
pub async fn write_primary(
    client: &Client,
    field_manager: &str,
    release: &Release,
    target: &Target,
    replicas: i32,
) -> Result<(), WorkloadError> {
    let params = PatchParams::apply(field_manager).force();
    for copy in config_copies(release, target) {
        let name = copy["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let kind = copy["kind"].as_str().unwrap_or_default();
        let object = format!("{kind}/{}/{name}", release.namespace);
        let written = match kind {
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), &release.namespace)
                .patch(&name, &params, &Patch::Apply(&copy))
                .await
                .map(|_| ()),
            _ => Api::<Secret>::namespaced(client.clone(), &release.namespace)
                .patch(&name, &params, &Patch::Apply(&copy))
                .await
                .map(|_| ()),
        };
        written.map_err(|source| WorkloadError::Write { object, source })?;
    }
    let primary = primary_object(release, target, replicas);
    Api::<Deployment>::namespaced(client.clone(), &release.namespace)
        .patch(&release.primary, &params, &Patch::Apply(&primary))
        .await
        .map_err(|source| WorkloadError::Write {
            object: format!("Deployment/{}/{}", release.namespace, release.primary),
            source,
        })?;
    Ok(())
}

/// Reads the primary Deployment, if it exists.
pub async fn read_primary(client: &Client, release: &Release) -> Result<Option<Deployment>, WorkloadError> {
    Api::<Deployment>::namespaced(client.clone(), &release.namespace)
        .get_opt(&release.primary)
        .await
        .map_err(|source| WorkloadError::Read {
            object: format!("Deployment/{}/{}", release.namespace, release.primary),
            source,
        })
}

/// Sets the replicas of Deployment `name` (the scale subresource: nothing else of the user's
/// Deployment is touched).
pub async fn scale(client: &Client, namespace: &str, name: &str, replicas: i32) -> Result<(), WorkloadError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    api.patch_scale(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .map(|_| ())
    .map_err(|source| WorkloadError::Write {
        object: format!("Deployment/{namespace}/{name} (scale)"),
        source,
    })
}

/// What the release needs of a Deployment: ready means every desired replica runs the current
/// template, no old one is left, `ready_threshold` percent of them (rounded down, as Flagger's
/// `primaryReadyThreshold` and `canaryReadyThreshold`) are available, and the controller has
/// seen the current generation. A Deployment scaled to zero is not ready (it serves nothing).
pub fn workload(deployment: &Deployment, ready_threshold: i32) -> Workload {
    let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
    let available_needed = i64::from(desired) * i64::from(ready_threshold.clamp(0, 100)) / 100;
    let ready = desired > 0
        && observed
        && status.updated_replicas.unwrap_or(0) >= desired
        && i64::from(status.available_replicas.unwrap_or(0)) >= available_needed
        && status.replicas.unwrap_or(0) <= desired;
    Workload {
        ready,
        revision: deployment.annotations().get(REVISION_ANNOTATION).cloned(),
    }
}

/// The replicas a Deployment asks for.
pub fn replicas(deployment: &Deployment) -> i32 {
    deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// SHA-256 of a JSON value with its object keys sorted, so that equal objects hash equally
/// whatever order they were read in.
pub fn hash(value: &Value) -> String {
    let mut text = String::new();
    canonical(value, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "volumes": [
                    {"name": "c", "configMap": {"name": "settings"}},
                    {"name": "s", "secret": {"secretName": "keys"}},
                    {"name": "p", "projected": {"sources": [{"configMap": {"name": "extra"}}]}}
                ],
                "containers": [{
                    "name": "web",
                    "envFrom": [{"secretRef": {"name": "env"}}],
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}}]
                }]
            }
        })
    }

    #[test]
    fn every_reference_to_a_config_is_found_once() {
        let found: Vec<(&str, String)> = referenced_configs(&template()).into_iter().collect();
        assert_eq!(
            found,
            vec![
                ("ConfigMap", "extra".into()),
                ("ConfigMap", "settings".into()),
                ("Secret", "env".into()),
                ("Secret", "keys".into()),
            ]
        );
    }

    #[test]
    fn tracked_references_point_at_the_primary_copies() {
        let mut template = template();
        let tracked = BTreeSet::from([("ConfigMap", "settings".to_owned()), ("Secret", "keys".to_owned())]);
        rename_configs(&mut template, &tracked);
        assert_eq!(template["spec"]["volumes"][0]["configMap"]["name"], "settings-primary");
        assert_eq!(template["spec"]["volumes"][1]["secret"]["secretName"], "keys-primary");
        assert_eq!(
            template["spec"]["volumes"][2]["projected"]["sources"][0]["configMap"]["name"],
            "extra"
        );
        assert_eq!(
            template["spec"]["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
            "settings-primary"
        );
        assert_eq!(
            template["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
            "env"
        );
    }

    #[test]
    fn the_hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"a": 1, "b": {"c": [1, 2], "d": "x"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b": {"d": "x", "c": [1, 2]}, "a": 1}"#).unwrap();
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&json!({"a": 2})));
    }

    #[test]
    fn a_deployment_is_ready_when_every_replica_runs_the_current_template() {
        let mut deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }))
        .unwrap();
        assert!(workload(&deployment, 100).ready);
        deployment.status.as_mut().unwrap().observed_generation = Some(1);
        assert!(
            !workload(&deployment, 100).ready,
            "the rollout of generation 2 is not seen yet"
        );
        deployment.status.as_mut().unwrap().observed_generation = Some(2);
        deployment.status.as_mut().unwrap().replicas = Some(3);
        assert!(!workload(&deployment, 100).ready, "an old replica still runs");
        deployment.spec.as_mut().unwrap().replicas = Some(0);
        assert!(!workload(&deployment, 100).ready, "scaled to zero serves nothing");
    }

    fn rolled_out(replicas: i32, available: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": available,
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_ready_threshold_is_the_percentage_of_replicas_that_must_be_available() {
        assert!(
            !workload(&rolled_out(4, 3), 100).ready,
            "all four are needed by default"
        );
        assert!(workload(&rolled_out(4, 4), 100).ready);
        assert!(workload(&rolled_out(4, 3), 75).ready);
        assert!(!workload(&rolled_out(4, 2), 75).ready);
        assert!(
            workload(&rolled_out(3, 1), 50).ready,
            "half of three rounds down to one, as in Flagger"
        );
        assert!(workload(&rolled_out(2, 0), 0).ready, "0% waits for the rollout only");
    }

    #[test]
    fn a_low_ready_threshold_still_waits_for_every_replica_to_be_updated() {
        let mut deployment = rolled_out(4, 4);
        deployment.status.as_mut().unwrap().updated_replicas = Some(3);
        assert!(
            !workload(&deployment, 50).ready,
            "one replica still runs the old template"
        );
        let mut deployment = rolled_out(4, 4);
        deployment.status.as_mut().unwrap().replicas = Some(5);
        assert!(!workload(&deployment, 50).ready, "an old replica is still terminating");
    }
}
