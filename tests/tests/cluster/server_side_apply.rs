//! The local control plane is a real one: a Deployment applied with kube's server-side apply gets
//! a ReplicaSet from kube-controller-manager, its pods are scheduled to the KWOK node and made
//! Ready, and field ownership conflicts behave as Kubernetes documents.

use std::time::Duration;

use eddy_tests::{cluster, delete_namespace, namespace};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};

fn deployment(name: &str, replicas: i32) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    })
}

async fn apply(
    api: &Api<Deployment>,
    name: &str,
    manager: &str,
    force: bool,
    replicas: i32,
) -> Result<Deployment, kube::Error> {
    let mut params = PatchParams::apply(manager);
    params.force = force;
    api.patch(name, &params, &Patch::Apply(deployment(name, replicas)))
        .await
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn applied_deployment_becomes_available_on_the_fake_node() {
    let client: Client = cluster().await;
    let ns = namespace(&client, "ssa-available").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);

    apply(&api, "web", "eddy-tests", false, 2).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(api.clone(), "web", conditions::is_deployment_completed()),
    )
    .await
    .expect("the Deployment completed its rollout within 60s")
    .unwrap();

    let available = api.get("web").await.unwrap();
    let status = available.status.unwrap();
    assert_eq!(status.available_replicas, Some(2));
    let condition = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(condition.status, "True");

    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let owned = replica_sets
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(owned.items.len(), 1, "kube-controller-manager created one ReplicaSet");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pods = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(pods.items.len(), 2);
    for pod in pods.items {
        let spec = pod.spec.unwrap();
        assert_eq!(
            spec.node_name.as_deref(),
            Some("kwok-node-0"),
            "scheduled by kube-scheduler"
        );
        assert_eq!(
            pod.status.unwrap().phase.as_deref(),
            Some("Running"),
            "made Running by KWOK"
        );
    }
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn second_manager_conflicts_until_it_forces_ownership() {
    let client = cluster().await;
    let ns = namespace(&client, "ssa-conflict").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);

    apply(&api, "web", "first-manager", false, 1).await.unwrap();

    let conflict = apply(&api, "web", "second-manager", false, 3).await.unwrap_err();
    let kube::Error::Api(status) = conflict else {
        panic!("expected an API error, got {conflict}");
    };
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert!(
        status.message.contains("conflict with \"first-manager\"") && status.message.contains(".spec.replicas"),
        "{}",
        status.message
    );
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(1),
        "a conflicting apply changes nothing"
    );

    let forced = apply(&api, "web", "second-manager", true, 3).await.unwrap();
    assert_eq!(forced.spec.as_ref().unwrap().replicas, Some(3));
    let managers = forced.metadata.managed_fields.unwrap();
    let owns_replicas = |manager: &str| {
        managers.iter().any(|entry| {
            entry.manager.as_deref() == Some(manager)
                && entry
                    .fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
    };
    assert!(
        owns_replicas("second-manager"),
        "the forced apply took ownership of .spec.replicas"
    );
    assert!(!owns_replicas("first-manager"), "the first manager lost .spec.replicas");
    delete_namespace(&client, &ns).await;
}
