//! What apply-controller must leave alone: objects it did not create and was told not to
//! overwrite, objects that left Git long ago, Flux's per-object protections after a migration,
//! and a namespace being deleted. Each test reproduces a way the apply path used to harm them.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_api::apply::Kustomization;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::kustomization::{Setup, config_map, inventory_ids};
use crate::kustomization_more::{config_maps_account, create_in};

/// A manifest file's text: the object as JSON, which every YAML reader accepts.
fn yaml(object: Value) -> String {
    serde_json::to_string_pretty(&object).unwrap()
}

fn annotated_config_map(name: &str, data: Value, annotations: Value) -> String {
    yaml(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "annotations": annotations},
        "data": data,
    }))
}

/// Creates `object` in the test namespace as a person would with kubectl: no owner labels.
async fn create_by_hand<K>(setup: &Setup, object: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(setup.client.clone(), &setup.ns);
    let object: K = serde_json::from_value(object).unwrap();
    let params = PostParams {
        field_manager: Some("kubectl-create".into()),
        ..PostParams::default()
    };
    api.create(&params, &object).await.unwrap()
}

fn secret_value(secret: &Secret, key: &str) -> String {
    let data = secret.data.clone().unwrap_or_default();
    String::from_utf8(data.get(key).cloned().unwrap_or(ByteString(Vec::new())).0).unwrap()
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn objects_made_by_others_stay_untouched_across_commits_and_a_restart() {
    let secret = yaml(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "annotations": {"apply.eddy.dev/ssa": "IfNotPresent"}},
        "stringData": {"token": "from-git"},
    }));
    let disabled = config_map("disabled", "from-git");
    let flux_ignored = config_map("flux-ignored", "from-git");
    let files = [
        ("deploy/creds.yaml", secret.as_str()),
        ("deploy/disabled.yaml", disabled.as_str()),
        ("deploy/flux-ignored.yaml", flux_ignored.as_str()),
        ("deploy/app.yaml", &config_map("app", "one")),
    ];
    let mut setup = Setup::start("leave-others", &files, &[]).await;
    let ns = setup.ns.clone();
    // Made before Eddy ever ran, by a person: no owner labels.
    create_by_hand::<Secret>(
        &setup,
        json!({"metadata": {"name": "creds", "namespace": ns}, "stringData": {"token": "by-hand"}}),
    )
    .await;
    create_by_hand::<ConfigMap>(
        &setup,
        json!({
            "metadata": {"name": "disabled", "namespace": ns, "annotations": {"apply.eddy.dev/reconcile": "disabled"}},
            "data": {"value": "by-hand"},
        }),
    )
    .await;
    create_by_hand::<ConfigMap>(
        &setup,
        json!({
            "metadata": {"name": "flux-ignored", "namespace": ns, "annotations": {"kustomize.toolkit.fluxcd.io/ssa": "Ignore"}},
            "data": {"value": "by-hand"},
        }),
    )
    .await;
    setup
        .create_kustomization("app", json!({"path": "./deploy", "targetNamespace": ns}))
        .await;
    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), &ns);
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &ns);
    let untouched = || async {
        let creds = secrets.get("creds").await.unwrap();
        assert_eq!(secret_value(&creds, "token"), "by-hand", "the Secret was overwritten");
        assert!(
            !creds.labels().contains_key("apply.eddy.dev/name"),
            "the Secret was labelled as Eddy's"
        );
        for name in ["disabled", "flux-ignored"] {
            let map = maps.get(name).await.unwrap();
            assert_eq!(map.data.unwrap()["value"], "by-hand", "{name} was overwritten");
        }
    };

    setup.ready("app", None).await;
    untouched().await;
    // Once the live cache watches Secrets and ConfigMaps, these objects are absent from it (they
    // carry no owner labels): that must not read as "does not exist".
    for (n, value) in ["two", "three"].into_iter().enumerate() {
        let revision = setup.commit(
            &[("deploy/app.yaml", &config_map("app", value))],
            &format!("commit {n}"),
        );
        setup.ready("app", Some(&revision)).await;
        assert_eq!(maps.get("app").await.unwrap().data.unwrap()["value"], value);
        untouched().await;
    }
    setup.restart_apply().await;
    let revision = setup.commit(&[("deploy/app.yaml", &config_map("app", "four"))], "after a restart");
    setup.ready("app", Some(&revision)).await;
    untouched().await;
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn kubectl_fields_are_taken_over_for_objects_made_by_others() {
    let setup = Setup::start(
        "leave-takeover",
        &[("deploy/settings.yaml", &config_map("settings", "from-git"))],
        &[],
    )
    .await;
    let ns = setup.ns.clone();
    // `kubectl apply` made it first, with a key Git does not have.
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &ns);
    let by_kubectl: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings", "namespace": ns},
        "data": {"value": "by-hand", "extra": "kubectl's"},
    }))
    .unwrap();
    maps.create(
        &PostParams {
            field_manager: Some("kubectl-client-side-apply".into()),
            ..PostParams::default()
        },
        &by_kubectl,
    )
    .await
    .unwrap();
    setup
        .create_kustomization("app", json!({"path": "./deploy", "targetNamespace": ns}))
        .await;
    setup.ready("app", None).await;
    let data = maps.get("settings").await.unwrap().data.unwrap();
    assert_eq!(data.get("value").map(String::as_str), Some("from-git"));
    assert!(
        !data.contains_key("extra"),
        "kubectl's field was taken over and removed: {data:?}"
    );
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn the_inventory_follows_git_so_nothing_that_left_long_ago_is_deleted() {
    let setup = Setup::start(
        "leave-orphans",
        &[
            ("deploy/a.yaml", &config_map("a", "one")),
            ("deploy/b.yaml", &config_map("b", "one")),
        ],
        &[],
    )
    .await;
    let ns = setup.ns.clone();
    setup
        .create_kustomization(
            "app",
            json!({"path": "./deploy", "targetNamespace": ns, "prune": false, "deletionPolicy": "Delete"}),
        )
        .await;
    setup.ready("app", None).await;
    std::fs::remove_file(setup.repo.work().join("deploy/b.yaml")).unwrap();
    let revision = setup.commit(&[("deploy/a.yaml", &config_map("a", "two"))], "b leaves Git");
    let ks = setup.ready("app", Some(&revision)).await;
    assert_eq!(
        inventory_ids(&ks),
        [format!("{ns}_a__ConfigMap")],
        "b left Git, so it left the inventory"
    );
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &ns);
    assert!(maps.get_opt("b").await.unwrap().is_some(), "without prune, b stays");

    // Turning prune on later prunes only what leaves Git from now on.
    let patch = json!({"spec": {"prune": true}});
    let patched = setup
        .kustomizations()
        .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let generation = patched.metadata.generation;
    setup
        .within(Duration::from_secs(60), "the prune change to be applied", || async {
            let ks = setup.kustomizations().get("app").await.ok()?;
            let status = ks.status?;
            (status.observed_generation == generation && eddy_api::conditions::is_ready(&status.conditions, generation))
                .then_some(())
        })
        .await;
    assert!(maps.get_opt("b").await.unwrap().is_some(), "turning prune on deleted b");

    // Deleting the Kustomization deletes its inventory, which no longer holds b.
    setup
        .kustomizations()
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    setup
        .within(
            Duration::from_secs(60),
            "the Kustomization and a to be gone",
            || async {
                let gone = setup.kustomizations().get_opt("app").await.ok()?.is_none();
                let a_gone = maps.get_opt("a").await.ok()?.is_none();
                (gone && a_gone).then_some(())
            },
        )
        .await;
    assert!(
        maps.get_opt("b").await.unwrap().is_some(),
        "deleting the Kustomization deleted b, which left Git long ago"
    );
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_repository_migrated_from_flux_keeps_its_protections_and_loses_removed_fields() {
    let kept = annotated_config_map(
        "kept",
        json!({"value": "one"}),
        json!({"kustomize.toolkit.fluxcd.io/prune": "disabled"}),
    );
    let migrated = config_map("migrated", "one");
    let files = [
        ("deploy/kept.yaml", kept.as_str()),
        ("deploy/migrated.yaml", migrated.as_str()),
    ];
    let setup = Setup::start("leave-flux", &files, &[]).await;
    let ns = setup.ns.clone();
    // What Flux's kustomize-controller left: its server-side apply, with a field Git has since
    // dropped.
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &ns);
    let by_flux = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "migrated", "namespace": ns, "labels": {"kustomize.toolkit.fluxcd.io/name": "app"}},
        "data": {"value": "one", "dropped": "in Git no longer"},
    });
    maps.patch(
        "migrated",
        &PatchParams::apply("kustomize-controller").force(),
        &Patch::Apply(&by_flux),
    )
    .await
    .unwrap();
    setup
        .create_kustomization("app", json!({"path": "./deploy", "targetNamespace": ns}))
        .await;
    setup.ready("app", None).await;
    let data: BTreeMap<String, String> = maps.get("migrated").await.unwrap().data.unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["value"],
        "the field kustomize-controller owned was taken over and removed"
    );

    std::fs::remove_file(setup.repo.work().join("deploy/kept.yaml")).unwrap();
    let revision = setup.commit(
        &[("deploy/migrated.yaml", &config_map("migrated", "two"))],
        "kept leaves Git",
    );
    setup.ready("app", Some(&revision)).await;
    assert!(
        maps.get_opt("kept").await.unwrap().is_some(),
        "Flux's prune: disabled was not honoured"
    );
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_failed_read_of_the_live_object_applies_nothing_to_it() {
    let settings = config_map("settings", "from-git");
    let setup = Setup::start("leave-failed-read", &[("deploy/settings.yaml", &settings)], &[]).await;
    let ns = setup.ns.clone();
    // The live object, with the ignored field set by someone else.
    create_by_hand::<ConfigMap>(
        &setup,
        json!({"metadata": {"name": "settings", "namespace": ns}, "data": {"value": "kept-live"}}),
    )
    .await;
    // An account that may write ConfigMaps but not read one: every read of the live object fails
    // with 403.
    config_maps_account(&setup, "blind", &["list", "watch", "create", "update", "patch"]).await;
    setup
        .create_kustomization(
            "app",
            json!({
                "path": "./deploy", "targetNamespace": ns, "serviceAccountName": "blind",
                "ignore": [{"paths": ["/data/value"], "target": {"kind": "ConfigMap"}}],
            }),
        )
        .await;
    let message = setup.failed("app", "ReconciliationFailed").await;
    assert!(
        message.contains(&format!("ConfigMap/{ns}/settings")) && message.contains("ignored fields"),
        "{message}"
    );
    assert!(message.contains("nothing applied"), "{message}");
    let maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &ns);
    assert_eq!(maps.get("settings").await.unwrap().data.unwrap()["value"], "kept-live");
    setup.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn deleting_the_namespace_of_a_kustomization_is_never_blocked() {
    let setup = Setup::start_without_leases(
        "leave-ns",
        &[("deploy/settings.yaml", &config_map("settings", "one"))],
        &[],
    )
    .await;
    let ns = setup.ns.clone();
    create_in::<ServiceAccount>(&setup, json!({"metadata": {"name": "deployer"}})).await;
    create_in::<RoleBinding>(
        &setup,
        json!({
            "metadata": {"name": "deployer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns}],
        }),
    )
    .await;
    setup
        .create_kustomization(
            "app",
            json!({"path": "./deploy", "targetNamespace": ns, "serviceAccountName": "deployer", "deletionPolicy": "Delete"}),
        )
        .await;
    setup.ready("app", None).await;

    let namespaces: Api<Namespace> = Api::all(setup.client.clone());
    namespaces.delete(&ns, &DeleteParams::background()).await.unwrap();
    setup
        .within(Duration::from_secs(90), "the namespace to be deleted", || async {
            namespaces.get_opt(&ns).await.ok()?.is_none().then_some(())
        })
        .await;
    let logs = setup.apply.logs();
    // Which way deletion went depends on whether the namespace controller removed the account
    // first; either way the finalizer went without waiting.
    assert!(
        logs.contains("namespace is being deleted; its own objects are left to the namespace controller")
            || logs.contains("garbage collection skipped"),
        "{logs}"
    );
    let remaining: Api<Kustomization> = Api::namespaced(setup.client.clone(), &ns);
    assert!(remaining.get_opt("app").await.unwrap().is_none());
}
