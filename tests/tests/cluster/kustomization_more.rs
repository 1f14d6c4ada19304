//! More Kustomization behaviour end to end, on the same harness as `kustomization.rs`: CRDs and
//! their objects in one revision, immutable fields and `force`, impersonation, Secret variables
//! that must not leak, `deletionPolicy`, and the overlay fields of the spec. Manifests are
//! written as JSON (which is YAML) so that each reads as the object it is.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::kustomization::{Setup, inventory_ids};

/// A manifest file's text: the object as JSON, which every YAML reader accepts.
fn manifest(object: Value) -> String {
    serde_json::to_string_pretty(&object).unwrap()
}

fn config_map(name: &str, data: Value) -> String {
    manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}))
}

/// A Deployment whose selector and pod labels are `labels`.
fn deployment(name: &str, labels: Value, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    })
}

/// Something no one would write by chance, to look for in status, events and logs.
fn distinctive(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}-{nanos:x}", std::process::id())
}

/// Creates a namespaced object of a built-in type in the test namespace.
pub(crate) async fn create_in<K>(setup: &Setup, object: Value) -> K
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let object: K = serde_json::from_value(object).unwrap();
    Api::<K>::namespaced(setup.client.clone(), &setup.ns)
        .create(&PostParams::default(), &object)
        .await
        .unwrap()
}

fn namespaced<K>(setup: &Setup) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(setup.client.clone(), &setup.ns)
}

/// Deletes `name` and waits until it is gone, its finalizer removed by the controller.
async fn delete_and_wait<K>(setup: &Setup, api: &Api<K>, name: &str)
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    api.delete(name, &DeleteParams::default()).await.unwrap();
    let what = format!("{name} to be deleted");
    setup
        .within(Duration::from_secs(60), &what, || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
}

async fn delete_kustomization(setup: &Setup, name: &str) {
    delete_and_wait(setup, &setup.kustomizations(), name).await;
}

/// A Kustomization spec reading `path` into the test namespace, with the `extra` fields.
fn spec_for(setup: &Setup, path: &str, extra: Value) -> Value {
    let mut spec = json!({"path": path, "targetNamespace": setup.ns});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    spec
}

/// Asks for reconciles of `name` every two seconds until `check` returns `Some`: a change made
/// by someone else reaches the controller's cache of live objects only some time after it is
/// made, and a reconcile that starts before then rightly finds nothing to do.
async fn reconcile_until<T, F, Fut>(setup: &Setup, name: &str, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let mut last = None::<Instant>;
    setup
        .within(Duration::from_secs(60), what, || {
            let nudge = last.is_none_or(|at| at.elapsed() > Duration::from_secs(2));
            if nudge {
                last = Some(Instant::now());
            }
            let checked = check();
            async move {
                if nudge {
                    setup.request_reconcile(name).await;
                }
                checked.await
            }
        })
        .await
}

/// Sets `spec` fields of Kustomization `name` with a merge patch.
async fn patch_spec(setup: &Setup, name: &str, spec: Value) {
    setup
        .kustomizations()
        .patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": spec})))
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn crd_and_custom_resources_apply_in_one_revision() {
    let setup = Setup::start("ks-crd", &[("placeholder/a.yaml", &config_map("a", json!({})))], &[]).await;
    let group = format!("{}.eddy.test", setup.ns);
    let crd_name = format!("widgets.{group}");
    let api_version = format!("{group}/v1");
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                }}},
            }],
        },
    });
    let widget = |name: &str, size: i64| {
        manifest(json!({
            "apiVersion": api_version,
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"size": size},
        }))
    };
    let revision = setup.commit(
        &[
            ("widgets/crd.yaml", &manifest(crd)),
            ("widgets/small.yaml", &widget("small", 1)),
            ("widgets/large.yaml", &widget("large", 9)),
        ],
        "a CRD and its objects",
    );
    setup
        .create_kustomization("widgets", spec_for(&setup, "./widgets", json!({})))
        .await;
    let ks = setup.ready("widgets", Some(&revision)).await;

    let gvk = GroupVersionKind::gvk(&group, "v1", "Widget");
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        setup.client.clone(),
        &setup.ns,
        &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    );
    for (name, size) in [("small", 1), ("large", 9)] {
        let live = widgets.get(name).await.unwrap();
        assert_eq!(live.data["spec"]["size"], size, "{name}");
    }
    let inventory = inventory_ids(&ks);
    assert!(
        inventory.contains(&format!("_{crd_name}_apiextensions.k8s.io_CustomResourceDefinition")),
        "{inventory:?}"
    );
    assert!(
        inventory.contains(&format!("{}_small_{group}_Widget", setup.ns)),
        "{inventory:?}"
    );

    // The CRD outlives the namespace: deleting the Kustomization prunes it, and it is deleted
    // here again in case that did not happen.
    delete_kustomization(&setup, "widgets").await;
    let crds: Api<CustomResourceDefinition> = Api::all(setup.client.clone());
    let _ = crds.delete(&crd_name, &DeleteParams::default()).await;
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn immutable_field_changes_need_force() {
    let setup = Setup::start(
        "ks-force",
        &[(
            "app/web.yaml",
            &manifest(deployment("web", json!({"app": "web"}), "nginx:1.27")),
        )],
        &[],
    )
    .await;
    setup
        .create_kustomization("app", spec_for(&setup, "./app", json!({})))
        .await;
    setup.ready("app", None).await;
    let deployments: Api<Deployment> = namespaced(&setup);
    let selector = |d: &Deployment| d.spec.as_ref().unwrap().selector.match_labels.clone().unwrap();
    let old = deployments.get("web").await.unwrap();

    let new_labels = json!({"app": "web", "track": "v2"});
    let revision = setup.commit(
        &[(
            "app/web.yaml",
            &manifest(deployment("web", new_labels.clone(), "nginx:1.27")),
        )],
        "a new selector",
    );
    let message = setup.failed("app", "ReconciliationFailed").await;
    assert!(message.contains(&format!("Deployment/{}/web", setup.ns)), "{message}");
    assert!(message.contains("spec.selector"), "{message}");
    let live = deployments.get("web").await.unwrap();
    assert_eq!(live.metadata.uid, old.metadata.uid, "the old Deployment stays");
    assert_eq!(selector(&live), selector(&old));

    patch_spec(&setup, "app", json!({"force": true})).await;
    setup.ready("app", Some(&revision)).await;
    let live = deployments.get("web").await.unwrap();
    assert_ne!(live.metadata.uid, old.metadata.uid, "recreated");
    assert_eq!(serde_json::to_value(selector(&live)).unwrap(), new_labels);
    setup.finish().await;
}

/// Service account `name` that may do anything with ConfigMaps in the namespace, and nothing else.
async fn config_maps_only_account(setup: &Setup, name: &str) {
    config_maps_account(
        setup,
        name,
        &["get", "list", "watch", "create", "update", "patch", "delete"],
    )
    .await;
}

/// Service account `name` that may use `verbs` on ConfigMaps in the namespace, and nothing else.
pub(crate) async fn config_maps_account(setup: &Setup, name: &str, verbs: &[&str]) {
    create_in::<ServiceAccount>(setup, json!({"metadata": {"name": name}})).await;
    create_in::<Role>(
        setup,
        json!({
            "metadata": {"name": name},
            "rules": [{
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": verbs,
            }],
        }),
    )
    .await;
    create_in::<RoleBinding>(
        setup,
        json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": setup.ns}],
        }),
    )
    .await;
}

/// Kustomization `app` with `spec` applies a ConfigMap, then is refused a Secret.
async fn assert_config_maps_applied_and_secrets_refused(setup: &Setup, spec: Value) {
    setup
        .create_kustomization("app", spec_for(setup, "./deploy", spec))
        .await;
    setup.ready("app", None).await;
    let maps: Api<ConfigMap> = namespaced(setup);
    assert!(maps.get_opt("settings").await.unwrap().is_some());

    let secret = manifest(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "stringData": {"token": "abc"},
    }));
    setup.commit(&[("deploy/token.yaml", &secret)], "a Secret");
    let message = setup.failed("app", "ReconciliationFailed").await;
    assert!(message.contains(&format!("Secret/{}/token", setup.ns)), "{message}");
    assert!(message.to_lowercase().contains("forbidden"), "{message}");
    let secrets: Api<Secret> = namespaced(setup);
    assert!(secrets.get_opt("token").await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn impersonation_denies_what_the_service_account_may_not_do() {
    let settings = config_map("settings", json!({"mode": "on"}));
    let setup = Setup::start("ks-sa", &[("deploy/settings.yaml", &settings)], &[]).await;
    config_maps_only_account(&setup, "deployer").await;
    assert_config_maps_applied_and_secrets_refused(&setup, json!({"serviceAccountName": "deployer"})).await;
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_delete_that_fails_keeps_the_object_in_the_inventory() {
    let files = [
        ("deploy/a.yaml", config_map("a", json!({"k": "v"}))),
        ("deploy/b.yaml", config_map("b", json!({"k": "v"}))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let setup = Setup::start("ks-keep-failed", &files, &[]).await;
    config_maps_account(
        &setup,
        "no-delete",
        &["get", "list", "watch", "create", "update", "patch"],
    )
    .await;
    setup
        .create_kustomization(
            "app",
            spec_for(&setup, "./deploy", json!({"serviceAccountName": "no-delete"})),
        )
        .await;
    setup.ready("app", None).await;

    std::fs::remove_file(setup.repo.work().join("deploy/b.yaml")).unwrap();
    setup.commit(&[("deploy/a.yaml", &config_map("a", json!({"k": "w"})))], "b leaves");
    let message = setup.failed("app", "PruneFailed").await;
    assert!(message.contains(&format!("ConfigMap/{}/b", setup.ns)), "{message}");
    assert!(message.to_lowercase().contains("forbidden"), "{message}");
    let maps: Api<ConfigMap> = namespaced(&setup);
    assert!(maps.get_opt("b").await.unwrap().is_some());
    let ks = setup.kustomizations().get("app").await.unwrap();
    let ids = inventory_ids(&ks);
    assert!(
        ids.contains(&format!("{}_b__ConfigMap", setup.ns)),
        "b stays in the inventory: {ids:?}"
    );
    assert_eq!(
        maps.get("a").await.unwrap().data.unwrap()["k"],
        "w",
        "the apply itself went through"
    );
    // The account cannot delete what deletion would prune either.
    patch_spec(&setup, "app", json!({"deletionPolicy": "Orphan"})).await;
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn default_service_account_denies_what_it_may_not_do() {
    let settings = config_map("settings", json!({"mode": "on"}));
    let setup = Setup::start(
        "ks-default-sa",
        &[("deploy/settings.yaml", &settings)],
        &["--default-service-account=deployer"],
    )
    .await;
    config_maps_only_account(&setup, "deployer").await;
    assert_config_maps_applied_and_secrets_refused(&setup, json!({})).await;
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn post_build_secret_values_leak_nowhere() {
    let password = distinctive("s3cr3t");
    let app = config_map("app", json!({"password": "${password}"}));
    // Debug logs: the most apply-controller ever writes is searched for the value.
    let setup = Setup::start("ks-secret-vars", &[("deploy/app.yaml", &app)], &["--log-level=debug"]).await;
    create_in::<Secret>(
        &setup,
        json!({"metadata": {"name": "vars"}, "stringData": {"password": password}}),
    )
    .await;
    setup
        .create_kustomization(
            "app",
            spec_for(
                &setup,
                "./deploy",
                json!({"postBuild": {"substituteFrom": [{"kind": "Secret", "name": "vars"}]}}),
            ),
        )
        .await;
    setup.ready("app", None).await;
    let maps: Api<ConfigMap> = namespaced(&setup);
    let data = |map: ConfigMap| map.data.unwrap_or_default()["password"].clone();
    assert_eq!(
        data(maps.get("app").await.unwrap()),
        password,
        "substituted, as intended"
    );

    // Drift on the substituted field is reported and corrected without quoting it.
    let edit = json!({"data": {"password": "edited"}});
    let params = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    maps.patch("app", &params, &Patch::Merge(&edit)).await.unwrap();
    reconcile_until(&setup, "app", "the edited value to be put back", || async {
        (data(maps.get("app").await.ok()?) == password).then_some(())
    })
    .await;
    setup
        .event("app", |reason, note| {
            reason == "DriftDetected" && note.contains("/data/password")
        })
        .await;

    setup.commit(
        &[(
            "deploy/other.yaml",
            &config_map("other", json!({"value": "${missing}"})),
        )],
        "an undefined variable",
    );
    let message = setup.failed("app", "BuildFailed").await;
    assert!(message.contains("missing"), "{message}");
    setup
        .event("app", |reason, note| {
            reason == "BuildFailed" && note.contains("missing")
        })
        .await;

    let ks = setup.kustomizations().get("app").await.unwrap();
    let status = serde_json::to_string(&ks.status).unwrap();
    assert!(!status.contains(&password), "status: {status}");
    let events: Api<Event> = namespaced(&setup);
    for event in events.list(&ListParams::default()).await.unwrap() {
        let text = serde_json::to_string(&event).unwrap();
        assert!(!text.contains(&password), "event: {text}");
    }
    let logs = setup.apply.logs();
    assert!(!logs.is_empty(), "apply-controller logged something");
    assert!(!logs.contains(&password), "apply-controller logs:\n{logs}");
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn deletion_honours_deletion_policy() {
    // (Kustomization, its spec, whether its ConfigMap goes with it)
    let cases = [
        ("delete", json!({"deletionPolicy": "Delete", "prune": false}), true),
        ("orphan", json!({"deletionPolicy": "Orphan", "prune": true}), false),
        ("mirror", json!({"prune": false}), false),
    ];
    let files: Vec<(String, String)> = cases
        .iter()
        .map(|(name, _, _)| (format!("{name}/map.yaml"), config_map(name, json!({"owner": name}))))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let setup = Setup::start("ks-deletion", &files, &[]).await;
    for (name, spec, _) in &cases {
        setup
            .create_kustomization(name, spec_for(&setup, &format!("./{name}"), spec.clone()))
            .await;
    }
    let maps: Api<ConfigMap> = namespaced(&setup);
    for (name, _, _) in &cases {
        setup.ready(name, None).await;
        assert!(maps.get_opt(name).await.unwrap().is_some(), "{name} applied");
    }
    for (name, _, deleted) in &cases {
        delete_kustomization(&setup, name).await;
        let exists = maps.get_opt(name).await.unwrap().is_some();
        assert_eq!(exists, !deleted, "ConfigMap {name} after its Kustomization was deleted");
    }
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn inline_post_build_and_overlay_fields() {
    let mut web = deployment("web", json!({"app": "web"}), "nginx:1.25");
    web["spec"]["replicas"] = json!("${replicas}");
    let setup = Setup::start("ks-overlay", &[("app/web.yaml", &manifest(web))], &[]).await;
    let patch = manifest(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "MODE", "value": "patched"}]}]}}},
    }));
    let overlay = json!({
        "namePrefix": "shop-",
        "commonMetadata": {"labels": {"team": "shop"}},
        "images": [{"name": "nginx", "newTag": "1.27"}],
        "patches": [{"patch": patch}],
        "postBuild": {"substitute": {"replicas": "3"}},
    });
    setup
        .create_kustomization("app", spec_for(&setup, "./app", overlay))
        .await;
    setup.ready("app", None).await;
    let deployments: Api<Deployment> = namespaced(&setup);
    let web = deployments.get("shop-web").await.unwrap();
    assert_eq!(web.metadata.labels.unwrap()["team"], "shop");
    let spec = web.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    let container = &spec.template.spec.unwrap().containers[0];
    assert_eq!(container.image.as_deref(), Some("nginx:1.27"));
    let env = container.env.clone().unwrap_or_default();
    assert!(
        env.iter()
            .any(|e| e.name == "MODE" && e.value.as_deref() == Some("patched")),
        "{env:?}"
    );
    assert!(
        deployments.get_opt("web").await.unwrap().is_none(),
        "only the prefixed name exists"
    );
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn remote_bases_are_refused_by_default_and_cloned_when_enabled() {
    let overlay = |url: &str| format!("resources:\n  - {url}//base?ref=v1\n");
    let files = [("app/placeholder.yaml", config_map("placeholder", json!({"a": "b"})))];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let refusing = Setup::start("ks-remote-off", &files, &[]).await;
    let enabled = Setup::start("ks-remote-on", &files, &["--no-remote-bases=false"]).await;
    let mut revisions = Vec::new();
    for setup in [&refusing, &enabled] {
        let server = setup.server.as_ref().unwrap();
        let bases = server.create_repo("bases").unwrap();
        bases
            .commit(
                &[
                    ("base/kustomization.yaml", "resources:\n  - cm.yaml\n"),
                    ("base/cm.yaml", &config_map("from-remote", json!({"tag": "v1"}))),
                ],
                "base",
            )
            .unwrap();
        bases.tag("v1").unwrap();
        // main moves on after the tag: the base is read at the tag, not at main.
        bases
            .commit(
                &[("base/cm.yaml", &config_map("from-remote", json!({"tag": "main"})))],
                "later",
            )
            .unwrap();
        revisions.push(setup.commit(&[("app/kustomization.yaml", &overlay(&server.url("bases")))], "remote"));
        setup
            .create_kustomization("app", json!({"path": "./app", "targetNamespace": setup.ns}))
            .await;
    }

    let message = refusing.failed("app", "BuildFailed").await;
    assert!(message.contains("remote bases are not allowed"), "{message}");
    let maps: Api<ConfigMap> = Api::namespaced(refusing.client.clone(), &refusing.ns);
    assert!(maps.get_opt("from-remote").await.unwrap().is_none());

    enabled.ready("app", Some(&revisions[1])).await;
    let maps: Api<ConfigMap> = Api::namespaced(enabled.client.clone(), &enabled.ns);
    let applied = maps.get("from-remote").await.unwrap();
    assert_eq!(applied.data.unwrap()["tag"], "v1");

    refusing.finish().await;
    enabled.finish().await;
}
