//! The apply engine (`shared::ssa`), health (`shared::status`) and inventories
//! (`shared::inventory`) against the local control plane: what a user of apply-controller would
//! notice in the cluster and in the reports.

use std::time::Duration;

use eddy_apply::inventory::{self, Inventory, ObjectRef};
use eddy_apply::ssa::{
    Action, Applier, ApplyOptions, FORCE_ANNOTATION, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, Owner, PRUNE_ANNOTATION,
    PruneOptions, RECONCILE_ANNOTATION, SSA_ANNOTATION,
};
use eddy_apply::status::{State, WaitError, WaitOptions};
use eddy_tests::{cluster, delete_namespace, eventually, namespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a Kubernetes object")
}

fn config_map(ns: &str, name: &str, data: Value, annotations: Value) -> DynamicObject {
    object(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "data": data,
    }))
}

fn deployment(ns: &str, name: &str, replicas: i32, app: &str, node_selector: Option<Value>) -> DynamicObject {
    let mut pod_spec = json!({"containers": [{"name": "web", "image": "nginx:1.27"}]});
    if let Some(selector) = node_selector {
        pod_spec["nodeSelector"] = selector;
    }
    object(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": pod_spec},
        },
    }))
}

fn options(owner: &Owner) -> ApplyOptions {
    ApplyOptions {
        owner: Some(owner.clone()),
        ..ApplyOptions::default()
    }
}

fn actions(change_set: &eddy_apply::ssa::ChangeSet) -> Vec<(String, Action)> {
    change_set
        .entries
        .iter()
        .map(|e| (e.object.to_string(), e.action))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn staged_apply_installs_a_crd_and_its_custom_resource_in_one_call() {
    let client: Client = cluster().await;
    let ns = namespace(&client, "ssa-crd").await;
    // CRDs are cluster-wide: a group unique to this run keeps parallel runs apart.
    let group = format!("{ns}.eddy.test");
    let crd_name = format!("widgets.{group}");
    let target_ns = format!("{ns}-target");
    let crd = object(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}},
            }],
        },
    }));
    let widget = object(json!({
        "apiVersion": format!("{group}/v1"),
        "kind": "Widget",
        "metadata": {"name": "gear", "namespace": target_ns},
        "spec": {"size": 3},
    }));
    let namespace_object = object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target_ns}}));
    let owner = Owner::new("crd-test", &ns);
    let applier = Applier::new(client.clone());
    // Listed in the worst order: the custom resource first, its namespace and CRD last.
    let manifests = vec![widget.clone(), namespace_object.clone(), crd.clone()];

    let applied = applier
        .apply_all_staged(manifests.clone(), &options(&owner))
        .await
        .expect("the CRD, the namespace and the custom resource apply in one call");
    assert_eq!(
        actions(&applied),
        [
            (format!("CustomResourceDefinition/{crd_name}"), Action::Created),
            (format!("Namespace/{target_ns}"), Action::Created),
            (format!("Widget/{target_ns}/gear"), Action::Created),
        ]
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &target_ns,
        &kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(&group, "v1", "Widget")),
    );
    let live = widgets.get("gear").await.unwrap();
    assert_eq!(live.data["spec"]["size"], 3);
    assert_eq!(live.metadata.labels.as_ref().unwrap()[OWNER_NAME_LABEL], "crd-test");

    let again = applier.apply_all_staged(manifests, &options(&owner)).await.unwrap();
    assert!(
        again.entries.iter().all(|e| e.action == Action::Unchanged),
        "nothing changed on the second apply: {:?}",
        actions(&again)
    );
    let recorded = again.to_inventory();
    assert!(
        recorded
            .entries
            .iter()
            .any(|e| e.id == format!("{target_ns}_gear_{group}_Widget") && e.v == "v1")
    );
    assert!(
        recorded
            .entries
            .iter()
            .any(|e| e.id == format!("_{crd_name}_apiextensions.k8s.io_CustomResourceDefinition"))
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let _ = crds.delete(&crd_name, &DeleteParams::background()).await;
    delete_namespace(&client, &target_ns).await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn reapplying_reports_unchanged_until_the_manifest_changes() {
    let client = cluster().await;
    let ns = namespace(&client, "ssa-changes").await;
    let owner = Owner::new("changes", &ns);
    let applier = Applier::new(client.clone());
    let manifests = |value: &str| {
        vec![
            deployment(&ns, "web", 1, "web", None),
            config_map(&ns, "settings", json!({"mode": value}), json!({})),
        ]
    };

    let first = applier
        .apply_all_staged(manifests("a"), &options(&owner))
        .await
        .unwrap();
    assert_eq!(
        actions(&first),
        [
            (format!("ConfigMap/{ns}/settings"), Action::Created),
            (format!("Deployment/{ns}/web"), Action::Created),
        ],
        "ConfigMaps are applied before workloads"
    );
    let second = applier
        .apply_all_staged(manifests("a"), &options(&owner))
        .await
        .unwrap();
    assert_eq!(
        actions(&second),
        [
            (format!("ConfigMap/{ns}/settings"), Action::Unchanged),
            (format!("Deployment/{ns}/web"), Action::Unchanged),
        ],
        "the Deployment's status moving does not make it configured"
    );
    assert_eq!(second.change_log(), "");
    let third = applier
        .apply_all_staged(manifests("b"), &options(&owner))
        .await
        .unwrap();
    assert_eq!(
        actions(&third),
        [
            (format!("ConfigMap/{ns}/settings"), Action::Configured),
            (format!("Deployment/{ns}/web"), Action::Unchanged),
        ]
    );
    assert_eq!(third.change_log(), format!("ConfigMap/{ns}/settings configured"));
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let live = config_maps.get("settings").await.unwrap();
    assert_eq!(live.data.unwrap()["mode"], "b");
    assert_eq!(
        third.to_inventory().entries,
        vec![
            ObjectRef::new("v1", "ConfigMap", &ns, "settings").to_entry(),
            ObjectRef::new("apps/v1", "Deployment", &ns, "web").to_entry(),
        ]
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn kubectl_edit_is_reported_as_drift_and_taken_back() {
    let client = cluster().await;
    let ns = namespace(&client, "ssa-takeover").await;
    let owner = Owner::new("takeover", &ns);
    let applier = Applier::new(client.clone());
    let manifest = deployment(&ns, "web", 2, "web", None);
    applier.apply(manifest.clone(), &options(&owner)).await.unwrap();

    // What `kubectl edit` does: an update under the field manager `kubectl-edit`.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    deployments
        .patch(
            "web",
            &edit,
            &Patch::Merge(json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:edited"}]}}}})),
        )
        .await
        .unwrap();

    let drift = applier.diff(manifest.clone(), &options(&owner)).await.unwrap();
    assert!(drift.is_drifted());
    let paths: Vec<&str> = drift.fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/spec/replicas", "/spec/template/spec/containers/0/image"],
        "only the edited fields drifted"
    );
    assert_eq!(drift.managers(), ["kubectl-edit"], "the report names who changed them");
    let report = drift.to_report(
        false,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    assert_eq!(report.object, format!("Deployment/{ns}/web"));

    let entry = applier.apply(manifest.clone(), &options(&owner)).await.unwrap();
    assert_eq!(entry.action, Action::Configured);
    let live = deployments.get("web").await.unwrap();
    let spec = live.spec.unwrap();
    assert_eq!(spec.replicas, Some(2), "the edited field is back");
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.27")
    );
    let managers: Vec<String> = live
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        !managers.iter().any(|m| m == "kubectl-edit"),
        "kubectl-edit no longer owns fields: {managers:?}"
    );
    assert!(
        !applier
            .diff(manifest.clone(), &options(&owner))
            .await
            .unwrap()
            .is_drifted()
    );
    assert_eq!(
        applier.apply(manifest, &options(&owner)).await.unwrap().action,
        Action::Unchanged,
        "taking over does not repeat on the next apply"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn if_not_present_ignore_and_disabled_reconcile_leave_objects_alone() {
    let client = cluster().await;
    let ns = namespace(&client, "ssa-policies").await;
    let owner = Owner::new("policies", &ns);
    let applier = Applier::new(client.clone());
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let once = |v: &str| config_map(&ns, "once", json!({"v": v}), json!({SSA_ANNOTATION: "IfNotPresent"}));
    let ignored = config_map(&ns, "ignored", json!({"v": "1"}), json!({SSA_ANNOTATION: "Ignore"}));
    let frozen = |v: &str| {
        config_map(
            &ns,
            "frozen",
            json!({"v": v}),
            json!({RECONCILE_ANNOTATION: "disabled"}),
        )
    };

    let first = applier
        .apply_all_staged(vec![once("1"), ignored.clone(), frozen("1")], &options(&owner))
        .await
        .unwrap();
    assert_eq!(
        first.action_of(&ObjectRef::new("v1", "ConfigMap", &ns, "once")),
        Some(Action::Created)
    );
    assert_eq!(
        first.action_of(&ObjectRef::new("v1", "ConfigMap", &ns, "ignored")),
        Some(Action::Skipped)
    );
    assert_eq!(
        first.action_of(&ObjectRef::new("v1", "ConfigMap", &ns, "frozen")),
        Some(Action::Created)
    );
    assert!(
        config_maps.get_opt("ignored").await.unwrap().is_none(),
        "Ignore never applies"
    );

    let second = applier
        .apply_all_staged(vec![once("2"), ignored, frozen("2")], &options(&owner))
        .await
        .unwrap();
    assert!(
        second.entries.iter().all(|e| e.action == Action::Skipped),
        "{:?}",
        actions(&second)
    );
    for name in ["once", "frozen"] {
        let live = config_maps.get(name).await.unwrap();
        assert_eq!(live.data.unwrap()["v"], "1", "{name} kept its first value");
    }
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn immutable_selector_fails_clearly_without_force_and_is_recreated_with_force() {
    let client = cluster().await;
    let ns = namespace(&client, "ssa-immutable").await;
    let owner = Owner::new("immutable", &ns);
    let applier = Applier::new(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    applier
        .apply(deployment(&ns, "web", 1, "a", None), &options(&owner))
        .await
        .unwrap();
    let before = deployments.get("web").await.unwrap().metadata.uid;

    let changed = deployment(&ns, "web", 1, "b", None);
    let err = applier.apply(changed.clone(), &options(&owner)).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("Deployment/{ns}/web: immutable field spec.selector")),
        "{message}"
    );
    assert!(
        message.contains(FORCE_ANNOTATION),
        "the message says how to recreate: {message}"
    );
    assert_eq!(
        deployments.get("web").await.unwrap().metadata.uid,
        before,
        "nothing was deleted"
    );

    let mut annotated = changed.clone();
    annotated
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(FORCE_ANNOTATION.into(), "enabled".into());
    let entry = applier.apply(annotated, &options(&owner)).await.unwrap();
    assert_eq!(entry.action, Action::Created, "recreated through the annotation");
    let live = deployments.get("web").await.unwrap();
    assert_ne!(live.metadata.uid, before);
    assert_eq!(live.spec.unwrap().selector.match_labels.unwrap()["app"], "b");

    let forced = ApplyOptions {
        force: true,
        ..options(&owner)
    };
    let entry = applier
        .apply(deployment(&ns, "web", 1, "c", None), &forced)
        .await
        .unwrap();
    assert_eq!(entry.action, Action::Created, "recreated through the force option");
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn prune_deletes_only_owned_objects_and_never_protected_namespaces() {
    let client = cluster().await;
    let ns = namespace(&client, "ssa-prune").await;
    let owner = Owner::new("prune", &ns);
    let applier = Applier::new(client.clone());
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let applied = applier
        .apply_all_staged(
            vec![
                config_map(&ns, "keep", json!({}), json!({})),
                config_map(&ns, "stale", json!({}), json!({})),
                config_map(&ns, "opted-out", json!({}), json!({PRUNE_ANNOTATION: "disabled"})),
            ],
            &options(&owner),
        )
        .await
        .unwrap();
    // Labelled by someone else: in the old inventory, but not ours any more.
    applier
        .apply(
            config_map(&ns, "foreign", json!({}), json!({})),
            &options(&Owner::new("other", &ns)),
        )
        .await
        .unwrap();
    // kube-system carries our labels (as a copied manifest might) while pruning runs.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labels = |name: Value, namespace: Value| {
        Patch::Merge(json!({"metadata": {"labels": {OWNER_NAME_LABEL: name, OWNER_NAMESPACE_LABEL: namespace}}}))
    };
    namespaces
        .patch(
            "kube-system",
            &PatchParams::default(),
            &labels(json!("prune"), json!(ns)),
        )
        .await
        .unwrap();

    let mut old = applied.to_inventory();
    old = inventory::merge(
        &old,
        &[
            ObjectRef::new("v1", "ConfigMap", &ns, "foreign").to_entry(),
            ObjectRef::new("v1", "ConfigMap", &ns, "already-gone").to_entry(),
            ObjectRef::new("v1", "Namespace", "", "kube-system").to_entry(),
            ObjectRef::new("v1", "Namespace", "", &ns).to_entry(),
        ],
    );
    let new = Inventory {
        entries: vec![ObjectRef::new("v1", "ConfigMap", &ns, "keep").to_entry()],
    };
    let report = applier.prune(&old, &new, &PruneOptions::new(owner.clone(), &ns)).await;
    namespaces
        .patch(
            "kube-system",
            &PatchParams::default(),
            &labels(Value::Null, Value::Null),
        )
        .await
        .unwrap();

    assert!(report.is_success(), "{:?}", report.errors);
    let mut got = actions(&report.change_set);
    got.sort();
    let mut expected = vec![
        (format!("ConfigMap/{ns}/already-gone"), Action::Deleted),
        (format!("ConfigMap/{ns}/foreign"), Action::Skipped),
        (format!("ConfigMap/{ns}/opted-out"), Action::Skipped),
        (format!("ConfigMap/{ns}/stale"), Action::Deleted),
        ("Namespace/kube-system".to_owned(), Action::Skipped),
        (format!("Namespace/{ns}"), Action::Skipped),
    ];
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(report.inventory, new);
    assert!(
        report
            .change_set
            .entries
            .last()
            .is_some_and(|e| e.object.kind == "Namespace"),
        "deletes run in reverse apply order: namespaces, applied first, come last"
    );
    eventually(Duration::from_secs(10), "the stale ConfigMap to be gone", || async {
        config_maps.get_opt("stale").await.unwrap().is_none().then_some(())
    })
    .await;
    for name in ["keep", "opted-out", "foreign"] {
        assert!(config_maps.get_opt(name).await.unwrap().is_some(), "{name} survived");
    }
    assert!(namespaces.get_opt("kube-system").await.unwrap().is_some());
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn wait_passes_once_a_deployment_is_available() {
    let client = cluster().await;
    let ns = namespace(&client, "ssa-healthy").await;
    let owner = Owner::new("healthy", &ns);
    let applier = Applier::new(client.clone());
    let applied = applier
        .apply_all_staged(
            vec![
                deployment(&ns, "web", 2, "web", None),
                config_map(&ns, "settings", json!({}), json!({})),
            ],
            &options(&owner),
        )
        .await
        .unwrap();
    let health = applier
        .wait(
            &applied.applied_objects(),
            &WaitOptions {
                timeout: Duration::from_secs(60),
                interval: Duration::from_millis(500),
                fail_fast: true,
            },
        )
        .await
        .expect("the Deployment becomes Available on the fake node");
    assert!(health.iter().all(|h| h.health.state == State::Current));
    let web = health.iter().find(|h| h.object.kind == "Deployment").unwrap();
    assert_eq!(web.health.message, "2 of 2 replicas available");
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn wait_times_out_naming_only_the_deployment_that_cannot_run() {
    let client = cluster().await;
    let ns = namespace(&client, "ssa-stuck").await;
    let owner = Owner::new("stuck", &ns);
    let applier = Applier::new(client.clone());
    let applied = applier
        .apply_all_staged(
            vec![
                // No node carries this label: the pods stay Pending forever.
                deployment(&ns, "stuck", 2, "stuck", Some(json!({"eddy.dev/no-such-node": "true"}))),
                config_map(&ns, "settings", json!({}), json!({})),
            ],
            &options(&owner),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = applier
        .wait(
            &applied.applied_objects(),
            &WaitOptions {
                timeout: Duration::from_secs(5),
                interval: Duration::from_millis(500),
                fail_fast: true,
            },
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15));
    let WaitError::Timeout { unhealthy, .. } = &err else {
        panic!("expected a timeout, got {err}");
    };
    assert_eq!(unhealthy.len(), 1, "{err}");
    assert_eq!(
        err.to_string(),
        format!("timeout after 5s waiting for 1 object: Deployment/{ns}/stuck: 0 of 2 replicas available")
    );
    delete_namespace(&client, &ns).await;
}
