//! `eddy install` and `eddy uninstall`, and the steps `eddy bootstrap git` shares with them:
//! checking the cluster, applying the components, waiting for the controllers.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use eddy_api::apply::Kustomization;
use eddy_apply::ssa::{Action, Applier, ApplyOptions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::components::{self, Selection};

/// The field manager of everything the CLI applies.
pub const FIELD_MANAGER: &str = "eddy-cli";
/// The oldest Kubernetes minor version Eddy supports.
const MIN_MINOR: u32 = 30;

/// Prints progress unless quiet.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    started: Instant,
}

impl Progress {
    /// Starts the clock.
    pub fn new() -> Self {
        Progress {
            started: Instant::now(),
        }
    }

    /// A step begins.
    pub fn step(&self, text: &str) {
        println!("► {text}");
    }

    /// A step ended well.
    pub fn done(&self, text: &str) {
        println!("✔ {text} ({:.1}s)", self.started.elapsed().as_secs_f64());
    }

    /// Something to know.
    pub fn note(&self, text: &str) {
        println!("  {text}");
    }
}

/// Flags of `eddy install`.
#[derive(Args, Debug)]
pub struct Install {
    #[command(flatten)]
    selection: Selection,
    /// Print the components' YAML instead of installing.
    #[arg(long)]
    export: bool,
    /// Take over an Eddy installed by something else (another tool's field manager).
    #[arg(long)]
    force: bool,
    /// How long to wait for the controllers.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
}

/// Parses `30s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    eddy_api::meta::Duration::parse(text)
        .and_then(|d| d.to_std())
        .map_err(|e| e.to_string())
}

impl Install {
    /// The objects to install, for `--export` (no cluster needed).
    pub fn export(&self, namespace: &str) -> Option<anyhow::Result<String>> {
        self.export.then(|| {
            let objects = components::objects(&self.selection, namespace)?;
            components::to_yaml(&objects, &header())
        })
    }

    /// Installs and waits.
    pub async fn run(&self, client: &Client, namespace: &str) -> anyhow::Result<()> {
        let progress = Progress::new();
        let objects = components::objects(&self.selection, namespace)?;
        preflight(client, namespace, self.force, &progress).await?;
        apply(client, objects, &progress).await?;
        wait_available(client, namespace, &self.selection.components, self.timeout, &progress).await?;
        progress.done("Eddy is installed");
        Ok(())
    }
}

/// The comment at the top of a components file.
pub fn header() -> String {
    format!(
        "# Eddy's components, written by eddy {}: `eddy bootstrap git` (or `eddy install --export`)\n\
         # rewrites this file: the cluster's own changes belong in kustomization.yaml (patches), which it\n\
         # keeps. To upgrade, run it again with --version.\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Checks that the cluster is reachable, new enough, that we may install, and that the Eddy
/// there (if any) was installed by Eddy unless `force`.
pub async fn preflight(client: &Client, namespace: &str, force: bool, progress: &Progress) -> anyhow::Result<()> {
    progress.step("checking the cluster");
    let version = client
        .apiserver_version()
        .await
        .map_err(|err| anyhow::anyhow!("the Kubernetes API server is not reachable: {err}"))?;
    let minor: u32 = version.minor.trim_end_matches('+').parse().unwrap_or(0);
    if version.major != "1" || minor < MIN_MINOR {
        bail!(
            "Kubernetes {} is too old: Eddy needs 1.{MIN_MINOR} or newer",
            version.git_version
        );
    }
    // Granting apply-controller its rights needs them all (RBAC refuses escalation).
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": {"resourceAttributes": {"verb": "*", "group": "*", "resource": "*"}}
    }))?;
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    if !answer.status.is_some_and(|s| s.allowed) {
        bail!(
            "installing Eddy needs cluster-admin rights (it creates CRDs and grants apply-controller its role); the current user lacks them"
        );
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for name in components::CONTROLLERS {
        let Some(existing) = deployments.get_opt(name).await? else {
            continue;
        };
        let managers: Vec<String> = existing
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect();
        let ours = managers
            .iter()
            .any(|m| m == FIELD_MANAGER || m == eddy_apply::ssa::FIELD_MANAGER);
        if !ours && !force {
            bail!(
                "Deployment {namespace}/{name} exists and was installed by something else (field managers: {}); \
                 rerun with --force to take it over",
                managers.join(", ")
            );
        }
    }
    progress.done(&format!(
        "Kubernetes {} is reachable and may be installed to",
        version.git_version
    ));
    Ok(())
}

/// Applies the components (CRDs first, each stage settled before the next).
pub async fn apply(client: &Client, objects: Vec<Value>, progress: &Progress) -> anyhow::Result<()> {
    progress.step(&format!("applying {} objects", objects.len()));
    let objects = eddy_apply::ssa::objects_from_values(objects).context("reading the components")?;
    let applier = Applier::new(client.clone()).with_field_manager(FIELD_MANAGER);
    let options = ApplyOptions {
        force: true,
        wait_timeout: Duration::from_secs(60),
        ..ApplyOptions::default()
    };
    let changes = applier
        .apply_all_staged(objects, &options)
        .await
        .context("applying Eddy's components")?;
    let count = |action: Action| changes.entries.iter().filter(|e| e.action == action).count();
    progress.done(&format!(
        "applied: {} created, {} configured, {} unchanged",
        count(Action::Created),
        count(Action::Configured),
        count(Action::Unchanged)
    ));
    Ok(())
}

/// Waits until every selected controller's Deployment has rolled out.
pub async fn wait_available(
    client: &Client,
    namespace: &str,
    controllers: &[String],
    timeout: Duration,
    progress: &Progress,
) -> anyhow::Result<()> {
    progress.step(&format!(
        "waiting for {} controllers (up to {}s)",
        controllers.len(),
        timeout.as_secs()
    ));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    let mut reported = Vec::new();
    loop {
        let mut waiting = Vec::new();
        for name in controllers {
            let ready = match deployments.get_opt(name).await? {
                Some(deployment) => rolled_out(&deployment),
                None => Err("not found".to_owned()),
            };
            match ready {
                Ok(()) if !reported.contains(name) => {
                    progress.done(&format!("{name} is available"));
                    reported.push(name.clone());
                }
                Ok(()) => {}
                Err(why) => waiting.push(format!("{name}: {why}")),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the controllers are not available after {}s: {}",
                timeout.as_secs(),
                waiting.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Whether a Deployment has rolled out its current generation, or why not.
fn rolled_out(deployment: &Deployment) -> Result<(), String> {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if status.observed_generation.unwrap_or(0) < generation {
        return Err("the new spec is not observed yet".into());
    }
    if status.updated_replicas.unwrap_or(0) < wanted {
        return Err(format!(
            "{} of {wanted} replicas updated",
            status.updated_replicas.unwrap_or(0)
        ));
    }
    if status.available_replicas.unwrap_or(0) < wanted {
        return Err(format!(
            "{} of {wanted} replicas available",
            status.available_replicas.unwrap_or(0)
        ));
    }
    Ok(())
}

/// Flags of `eddy uninstall`.
#[derive(Args, Debug)]
pub struct Uninstall {
    /// Also delete Eddy's CRDs, and with them every Eddy object (sources, Kustomizations,
    /// alerts, canaries). What they applied stays.
    #[arg(long)]
    crds: bool,
    /// Keep the namespace (and what else lives in it).
    #[arg(long)]
    keep_namespace: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    silent: bool,
}

impl Uninstall {
    /// Removes the controllers, releases Eddy's finalizers everywhere, and removes CRDs and the
    /// namespace as asked.
    pub async fn run(&self, client: &Client, namespace: &str) -> anyhow::Result<()> {
        if !self.silent && !confirm(&format!("Remove Eddy from namespace {namespace}?"))? {
            bail!("cancelled");
        }
        let progress = Progress::new();
        let objects = components::objects(
            &Selection {
                components: components::CONTROLLERS.map(String::from).into(),
                registry: components::DEFAULT_REGISTRY.into(),
                version: components::default_version(),
            },
            namespace,
        )?;
        // The controllers first, so that nothing adds a finalizer back. A Kustomization that
        // applies them (bootstrap's, managing Eddy from Git) is suspended before, or
        // apply-controller would put its own Deployment back as drift.
        progress.step("stopping the controllers");
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        for (owner_namespace, owner) in managing_kustomizations(&deployments).await? {
            let kustomizations: Api<Kustomization> = Api::namespaced(client.clone(), &owner_namespace);
            let patch = json!({"spec": {"suspend": true}});
            match kustomizations
                .patch(&owner, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => progress.done(&format!(
                    "Kustomization {owner_namespace}/{owner} suspended (it applies Eddy itself)"
                )),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("suspending Kustomization {owner_namespace}/{owner}"));
                }
            }
        }
        for name in components::CONTROLLERS {
            delete_if_present(&deployments, name).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deployments.list(&ListParams::default()).await?.items;
            if !left
                .iter()
                .any(|d| components::CONTROLLERS.contains(&d.name_any().as_str()))
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the controllers' Deployments are still there after 60s");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        progress.done("controllers' Deployments removed");
        // Their pods may still be finishing a reconcile (and adding a finalizer back): each
        // releases its leader Lease when it has stopped, or the Lease expires.
        progress.step("waiting for the controllers to stop (their leader Leases released or expired)");
        let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut held = Vec::new();
            for name in components::CONTROLLERS {
                if let Some(lease) = leases.get_opt(name).await?
                    && lease_held(&lease, k8s_openapi::jiff::Timestamp::now())
                {
                    held.push(name);
                }
            }
            if held.is_empty() {
                progress.done("controllers stopped");
                break;
            }
            if Instant::now() > deadline {
                progress.note(&format!(
                    "still holding their Leases after 90s: {}; going on",
                    held.join(", ")
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        progress.step("releasing Eddy's finalizers");
        let released = release_finalizers(client).await?;
        progress.done(&format!("finalizers released on {released} objects"));

        for object in objects.iter().rev() {
            let kind = object["kind"].as_str().unwrap_or_default();
            if kind == "CustomResourceDefinition" && !self.crds {
                continue;
            }
            if kind == "Namespace" || kind == "Deployment" {
                continue;
            }
            delete_object(client, object).await?;
        }
        progress.done(if self.crds {
            "RBAC, Services, NetworkPolicies and CRDs removed"
        } else {
            "RBAC, Services and NetworkPolicies removed (CRDs kept; --crds removes them)"
        });
        if !self.keep_namespace {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            delete_if_present(&namespaces, namespace).await?;
            let deadline = Instant::now() + Duration::from_secs(120);
            while namespaces.get_opt(namespace).await?.is_some() {
                if Instant::now() > deadline {
                    bail!(
                        "namespace {namespace} is still terminating after 120s: `kubectl get namespace {namespace} -o yaml` shows what holds it"
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            progress.done(&format!("namespace {namespace} removed"));
        }
        progress.done("Eddy is uninstalled");
        Ok(())
    }
}

/// The Kustomizations (namespace, name) that applied the controllers' Deployments, read from the
/// owner labels apply-controller puts on what it applies.
async fn managing_kustomizations(deployments: &Api<Deployment>) -> anyhow::Result<Vec<(String, String)>> {
    let mut owners: Vec<(String, String)> = Vec::new();
    for deployment in deployments.list(&ListParams::default()).await?.items {
        if !components::CONTROLLERS.contains(&deployment.name_any().as_str()) {
            continue;
        }
        let labels = deployment.labels();
        if let (Some(name), Some(namespace)) = (
            labels.get(eddy_apply::ssa::OWNER_NAME_LABEL),
            labels.get(eddy_apply::ssa::OWNER_NAMESPACE_LABEL),
        ) {
            let owner = (namespace.clone(), name.clone());
            if !owners.contains(&owner) {
                owners.push(owner);
            }
        }
    }
    Ok(owners)
}

/// Whether a controller still holds `lease` at `now`: a holder, and a renewal within its
/// duration.
fn lease_held(lease: &Lease, now: k8s_openapi::jiff::Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return false;
    }
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    renewed.0 + k8s_openapi::jiff::SignedDuration::from_secs(i64::from(seconds)) > now
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::Write as _;
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

async fn delete_if_present<K>(api: &Api<K>, name: &str) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err).with_context(|| format!("deleting {name}")),
    }
}

/// Deletes one rendered object by apiVersion, kind and name.
async fn delete_object(client: &Client, object: &Value) -> anyhow::Result<()> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("finding the API of {kind}"))?;
    let api: Api<DynamicObject> = match (capabilities.scope, object["metadata"]["namespace"].as_str()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    };
    delete_if_present(&api, name)
        .await
        .with_context(|| format!("deleting {kind} {name}"))
}

/// Removes Eddy's finalizers (`*.eddy.dev/…`) from every object of every Eddy kind, so that no
/// namespace waits for a controller that is gone. Returns how many objects changed.
async fn release_finalizers(client: &Client) -> anyhow::Result<usize> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut released = 0;
    for crd in crds.list(&ListParams::default()).await?.items {
        if !crd.spec.group.ends_with(".eddy.dev") {
            continue;
        }
        let Some(version) = crd.spec.versions.iter().find(|v| v.storage) else {
            continue;
        };
        let resource = ApiResource {
            group: crd.spec.group.clone(),
            version: version.name.clone(),
            api_version: format!("{}/{}", crd.spec.group, version.name),
            kind: crd.spec.names.kind.clone(),
            plural: crd.spec.names.plural.clone(),
        };
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        for object in all.list(&ListParams::default()).await?.items {
            let finalizers = object.finalizers();
            let kept: Vec<&String> = finalizers.iter().filter(|f| !is_eddy_finalizer(f)).collect();
            if kept.len() == finalizers.len() {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &object.namespace().unwrap_or_default(), &resource);
            let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": object.resource_version()}});
            api.patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("releasing the finalizer of {} {}", resource.kind, object.name_any()))?;
            released += 1;
        }
    }
    Ok(released)
}

fn is_eddy_finalizer(finalizer: &str) -> bool {
    finalizer
        .split_once('/')
        .is_some_and(|(domain, _)| domain == "eddy.dev" || domain.ends_with(".eddy.dev"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_eddys_finalizers_are_released() {
        assert!(is_eddy_finalizer("apply.eddy.dev/finalizer"));
        assert!(is_eddy_finalizer("source.eddy.dev/finalizer"));
        assert!(!is_eddy_finalizer("kubernetes"));
        assert!(!is_eddy_finalizer("finalizers.fluxcd.io"));
        assert!(!is_eddy_finalizer("example.com/eddy.dev"));
        assert!(!is_eddy_finalizer("noteddy.dev/x"));
    }

    #[test]
    fn a_lease_is_held_until_released_or_expired() {
        let lease = |holder: Option<&str>, renewed: &str| -> Lease {
            serde_json::from_value(json!({
                "metadata": {"name": "apply-controller"},
                "spec": {"holderIdentity": holder, "renewTime": renewed, "leaseDurationSeconds": 15}
            }))
            .unwrap()
        };
        let now: k8s_openapi::jiff::Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        assert!(lease_held(&lease(Some("pod-a"), "2026-12-03T09:59:50.000000Z"), now));
        assert!(!lease_held(&lease(Some("pod-a"), "2026-12-03T09:59:40.000000Z"), now));
        assert!(!lease_held(&lease(None, "2026-12-03T09:59:59.000000Z"), now));
        assert!(!lease_held(&lease(Some(""), "2026-12-03T09:59:59.000000Z"), now));
    }

    #[test]
    fn a_deployment_is_rolled_out_when_its_generation_is_available() {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "x", "generation": 2},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1}
        }))
        .unwrap();
        assert!(rolled_out(&deployment).unwrap_err().contains("not observed"));
        let mut done = deployment.clone();
        done.status.as_mut().unwrap().observed_generation = Some(2);
        assert!(rolled_out(&done).is_ok());
    }
}
