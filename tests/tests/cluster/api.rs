//! The generated CRDs against the real apiserver: they install, accept the examples, and reject
//! invalid objects with the apiserver's own readable messages.

use eddy_api::{apply, notify, progressive, source};
use eddy_tests::{cluster, cluster_namespace, create, delete_namespace, install_crds, repo_root};
use kube::Resource;
use kube::api::DynamicObject;

fn rejection(outcome: Result<DynamicObject, kube::Error>) -> String {
    match outcome {
        Ok(object) => panic!("the apiserver accepted an invalid object: {object:?}"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "invalid objects are Unprocessable: {status:?}");
            status.message
        }
        Err(other) => panic!("expected a validation error, got {other}"),
    }
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn all_eight_crds_install_and_become_established() {
    let client = cluster().await;
    let names = install_crds(&client).await.unwrap();
    assert_eq!(
        names,
        [
            "gitrepositories.source.eddy.dev",
            "ocirepositories.source.eddy.dev",
            "kustomizations.apply.eddy.dev",
            "providers.notify.eddy.dev",
            "alerts.notify.eddy.dev",
            "receivers.notify.eddy.dev",
            "canaries.progressive.eddy.dev",
            "metrictemplates.progressive.eddy.dev",
        ]
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn every_example_is_accepted_and_reads_back_as_its_rust_type() {
    let (client, ns) = cluster_namespace("examples").await;
    let dir = repo_root().join("examples/api");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let created = create(&client, &ns, value)
            .await
            .unwrap_or_else(|err| panic!("{} was rejected: {err}", path.display()));
        let kind = created.types.as_ref().unwrap().kind.clone();
        // The stored object, defaults included, must deserialize into the typed API.
        let stored = serde_json::to_value(&created).unwrap();
        let typed = match kind.as_str() {
            "GitRepository" => serde_json::from_value::<source::GitRepository>(stored).map(|_| ()),
            "OCIRepository" => serde_json::from_value::<source::OCIRepository>(stored).map(|_| ()),
            "Kustomization" => serde_json::from_value::<apply::Kustomization>(stored).map(|_| ()),
            "Provider" => serde_json::from_value::<notify::Provider>(stored).map(|_| ()),
            "Alert" => serde_json::from_value::<notify::Alert>(stored).map(|_| ()),
            "Receiver" => serde_json::from_value::<notify::Receiver>(stored).map(|_| ()),
            "Canary" => serde_json::from_value::<progressive::Canary>(stored).map(|_| ()),
            "MetricTemplate" => serde_json::from_value::<progressive::MetricTemplate>(stored).map(|_| ()),
            other => panic!("unexpected kind {other}"),
        };
        typed.unwrap_or_else(|err| panic!("{kind} from {} does not read back: {err}", path.display()));
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Alert",
            "Canary",
            "GitRepository",
            "Kustomization",
            "MetricTemplate",
            "OCIRepository",
            "Provider",
            "Receiver"
        ]
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn schema_defaults_are_filled_in_by_the_apiserver() {
    let (client, ns) = cluster_namespace("defaults").await;
    let created = create(
        &client,
        &ns,
        serde_json::json!({
            "apiVersion": source::GitRepository::api_version(&()),
            "kind": "GitRepository",
            "metadata": {"name": "minimal"},
            "spec": {"url": "https://example.test/repo.git", "interval": "5m"},
        }),
    )
    .await
    .unwrap();
    let repo: source::GitRepository = serde_json::from_value(serde_json::to_value(created).unwrap()).unwrap();
    assert_eq!(repo.spec.timeout.as_str(), "60s");
    assert!(!repo.spec.suspend);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn invalid_objects_are_rejected_with_readable_messages() {
    let (client, ns) = cluster_namespace("invalid").await;

    let bad_duration = rejection(
        create(
            &client,
            &ns,
            serde_json::json!({
                "apiVersion": "source.eddy.dev/v1alpha1", "kind": "GitRepository",
                "metadata": {"name": "bad-duration"},
                "spec": {"url": "https://example.test/repo.git", "interval": "abc"},
            }),
        )
        .await,
    );
    assert!(bad_duration.contains("spec.interval"), "{bad_duration}");
    assert!(bad_duration.contains("should match"), "{bad_duration}");

    let unknown_provider = rejection(
        create(
            &client,
            &ns,
            serde_json::json!({
                "apiVersion": "notify.eddy.dev/v1alpha1", "kind": "Provider",
                "metadata": {"name": "pigeon"},
                "spec": {"type": "carrier-pigeon"},
            }),
        )
        .await,
    );
    assert!(
        unknown_provider.contains("spec.type: Unsupported value: \"carrier-pigeon\""),
        "{unknown_provider}"
    );
    assert!(
        unknown_provider.contains("\"slack\""),
        "the message lists the supported values: {unknown_provider}"
    );

    let missing_url = rejection(
        create(
            &client,
            &ns,
            serde_json::json!({
                "apiVersion": "source.eddy.dev/v1alpha1", "kind": "GitRepository",
                "metadata": {"name": "no-url"},
                "spec": {"interval": "1m"},
            }),
        )
        .await,
    );
    assert!(missing_url.contains("spec.url: Required value"), "{missing_url}");

    let unknown_router = rejection(
        create(
            &client,
            &ns,
            serde_json::json!({
                "apiVersion": "progressive.eddy.dev/v1alpha1", "kind": "Canary",
                "metadata": {"name": "web"},
                "spec": {
                    "targetRef": {"kind": "Deployment", "name": "web"},
                    "provider": "linkerd-ish",
                    "service": {"port": 80},
                    "analysis": {"stepWeight": 150},
                },
            }),
        )
        .await,
    );
    assert!(
        unknown_router.contains("spec.provider: Unsupported value"),
        "{unknown_router}"
    );
    assert!(
        unknown_router.contains("spec.analysis.stepWeight"),
        "the out-of-range weight is named too: {unknown_router}"
    );

    delete_namespace(&client, &ns).await;
}
