//! The live cache (`shared::ssa::cache`) against the local control plane: its fingerprints match
//! those of the objects read back, follow edits of the applied fields by other managers and
//! ignore everything else, deletions show as absent, and a kind that cannot be watched stays
//! unknown.

use std::time::Duration;

use eddy_apply::inventory::ObjectRef;
use eddy_apply::ssa::cache::{LiveCache, LiveEntry, Lookup, fingerprint};
use eddy_apply::ssa::{Applier, ApplyOptions, FIELD_MANAGER, Owner};
use eddy_apply::status::State;
use eddy_tests::{cluster_namespace, delete_namespace, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::{Value, json};

const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(30);

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a Kubernetes object")
}

fn present(lookup: Lookup) -> Option<LiveEntry> {
    match lookup {
        Lookup::Present(entry) => Some(entry),
        Lookup::Absent | Lookup::Unknown => None,
    }
}

/// The cache's entry once it has caught up with the object as a GET returns it now, and that
/// object.
async fn caught_up(cache: &LiveCache, api: &Api<DynamicObject>, object: &ObjectRef) -> (LiveEntry, DynamicObject) {
    eventually(SETTLE, &format!("the cache to catch up with {object}"), || async {
        let live = api.get(&object.name).await.ok()?;
        let entry = present(cache.lookup(object))?;
        (Some(&entry.resource_version) == live.metadata.resource_version.as_ref()).then_some((entry, live))
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn the_live_cache_follows_applied_fields_only() {
    let (client, ns): (Client, String) = cluster_namespace("live-cache").await;
    let owner = Owner::new("live", &ns);
    let options = ApplyOptions {
        owner: Some(owner.clone()),
        ..ApplyOptions::default()
    };
    let applier = Applier::new(client.clone());
    let settings = object(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": ns},
        "data": {"mode": "a"},
    }));
    let web = object(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }));
    applier
        .apply_all(vec![settings, web], &options)
        .await
        .expect("the ConfigMap and the Deployment apply");

    let cache = LiveCache::new(client.clone(), FIELD_MANAGER);
    let config_maps = ApiResource::erase::<ConfigMap>(&());
    let deployments = ApiResource::erase::<Deployment>(&());
    cache.watch_kind(&config_maps, true);
    cache.watch_kind(&deployments, true);
    cache.watch_kind(&deployments, true);
    for resource in [&config_maps, &deployments] {
        let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
        assert!(cache.wait_synced(&gvk, SYNC_TIMEOUT).await, "{} synced", resource.kind);
    }

    let settings = ObjectRef::new("v1", "ConfigMap", &ns, "settings");
    let web = ObjectRef::new("apps/v1", "Deployment", &ns, "web");
    let settings_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &config_maps);
    let web_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &deployments);

    let (settings_entry, live) = caught_up(&cache, &settings_api, &settings).await;
    assert_eq!(settings_entry.fingerprint, fingerprint(&live, FIELD_MANAGER));
    assert_eq!(settings_entry.health.state, State::Current);
    let (web_entry, live) = caught_up(&cache, &web_api, &web).await;
    let web_fingerprint = fingerprint(&live, FIELD_MANAGER);
    assert_eq!(web_entry.fingerprint, web_fingerprint);
    assert_eq!(
        cache.lookup(&ObjectRef::new("v1", "Secret", &ns, "settings")),
        Lookup::Unknown,
        "a kind not watched"
    );

    // What `kubectl edit` does: an update under the field manager `kubectl-edit`, which takes the
    // field from eddy-apply.
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    settings_api
        .patch("settings", &edit, &Patch::Merge(json!({"data": {"mode": "edited"}})))
        .await
        .unwrap();
    let (edited, live) = caught_up(&cache, &settings_api, &settings).await;
    assert_ne!(
        edited.fingerprint, settings_entry.fingerprint,
        "the edit changes the fingerprint"
    );
    assert_eq!(edited.fingerprint, fingerprint(&live, FIELD_MANAGER));

    // Another controller's annotation, and the controller manager's status updates meanwhile.
    let other = PatchParams {
        field_manager: Some("other-controller".into()),
        ..PatchParams::default()
    };
    web_api
        .patch(
            "web",
            &other,
            &Patch::Merge(json!({"metadata": {"annotations": {"other.example/seen": "yes"}}})),
        )
        .await
        .unwrap();
    let (annotated, live) = caught_up(&cache, &web_api, &web).await;
    assert_ne!(annotated.resource_version, web_entry.resource_version);
    assert_eq!(live.metadata.annotations.unwrap()["other.example/seen"], "yes");
    assert_eq!(
        annotated.fingerprint, web_fingerprint,
        "fields of other managers leave the fingerprint alone"
    );

    let healthy = eventually(SETTLE, "the Deployment to become Current", || async {
        present(cache.lookup(&web)).filter(|e| e.health.state == State::Current)
    })
    .await;
    assert_eq!(healthy.health.message, "1 of 1 replicas available");
    assert_eq!(healthy.fingerprint, web_fingerprint);

    settings_api.delete("settings", &DeleteParams::default()).await.unwrap();
    eventually(SETTLE, "the deleted ConfigMap to be absent", || async {
        (cache.lookup(&settings) == Lookup::Absent).then_some(())
    })
    .await;

    cache.shutdown();
    assert_eq!(cache.lookup(&web), Lookup::Unknown, "nothing is known after shutdown");
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_kind_that_cannot_be_listed_stays_unknown() {
    let (client, ns): (Client, String) = cluster_namespace("live-cache-unknown").await;
    let cache = LiveCache::new(client.clone(), FIELD_MANAGER);
    // A kind the cluster does not serve: listing it fails as a forbidden one would.
    let missing = ApiResource::from_gvk(&GroupVersionKind::gvk("missing.eddy.test", "v1", "Widget"));
    cache.watch_kind(&missing, true);
    let gvk = GroupVersionKind::gvk("missing.eddy.test", "v1", "Widget");
    assert!(!cache.wait_synced(&gvk, SYNC_TIMEOUT).await);
    assert!(!cache.synced(&gvk));
    assert_eq!(
        cache.lookup(&ObjectRef::new("missing.eddy.test/v1", "Widget", &ns, "gear")),
        Lookup::Unknown
    );

    // The failing kind does not hold up the others.
    let secrets = ApiResource::erase::<Secret>(&());
    cache.watch_kind(&secrets, true);
    let secrets_gvk = GroupVersionKind::gvk("", "v1", "Secret");
    assert!(cache.wait_synced(&secrets_gvk, SYNC_TIMEOUT).await);
    assert_eq!(
        cache.lookup(&ObjectRef::new("v1", "Secret", &ns, "none")),
        Lookup::Absent
    );
    delete_namespace(&client, &ns).await;
}
