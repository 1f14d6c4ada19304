//! OCIRepository end to end: artifacts pushed with `eddy push artifact` to a real registry
//! (Debian's docker-registry), pulled by source-controller by tag, semver range and digest, and
//! a corrupted blob refused while the previous artifact stays served.

use std::process::Command;
use std::time::Duration;

use eddy_api::conditions::{self, READY};
use eddy_api::meta::Artifact;
use eddy_api::source::OCIRepository;
use eddy_tests::registry::Registry;
use eddy_tests::{cluster_namespace, delete_namespace, eventually, set_suspend, workspace_binary};
use kube::Api;
use kube::api::PostParams;

use crate::gitrepository::{download, start_source_controller};

/// Pushes `files` with the `eddy` CLI and returns the manifest digest it printed.
fn push(registry: &Registry, tag: &str, files: &[(&str, &str)]) -> String {
    push_as(registry, tag, files, None)
}

/// [`push`] with registry credentials `user:password`.
fn push_as(registry: &Registry, tag: &str, files: &[(&str, &str)], creds: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let output = Command::new(workspace_binary("eddy"))
        .args(["push", "artifact", &format!("oci://{}/eddy/app:{tag}", registry.host)])
        .arg("--path")
        .arg(dir.path())
        .args([
            "--source",
            "https://git.example.test/app.git",
            "--revision",
            &format!("main@sha1:{tag}"),
            "--insecure-registry",
        ])
        .args(creds.map(|c| format!("--creds={c}")))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "eddy push failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .split('@')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn oci_repository(name: &str, registry: &Registry, reference: serde_json::Value) -> OCIRepository {
    oci_repository_with(name, registry, serde_json::json!({"ref": reference}))
}

/// An OCIRepository for the test repository with `extra` merged into its spec.
fn oci_repository_with(name: &str, registry: &Registry, extra: serde_json::Value) -> OCIRepository {
    let mut spec =
        serde_json::json!({"url": format!("oci://{}/eddy/app", registry.host), "interval": "1s", "insecure": true});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(serde_json::json!({
        "apiVersion": "source.eddy.dev/v1alpha1",
        "kind": "OCIRepository",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

async fn ready_revision(repos: &Api<OCIRepository>, name: &str, revision: &str, logs: impl Fn() -> String) -> Artifact {
    let what = format!("OCIRepository {name} Ready with revision {revision}");
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        eventually(Duration::from_secs(60), &what, || async {
            let status = repos.get(name).await.ok()?.status?;
            let ready = conditions::get(&status.conditions, READY)?;
            let artifact = status.artifact?;
            (ready.status == "True" && artifact.revision == revision).then_some(artifact)
        }),
    )
    .await;
    waited.unwrap_or_else(|_| panic!("{what}; controller logs:\n{}", logs()))
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn pushed_artifacts_are_pulled_by_tag_semver_range_and_digest() {
    let (client, ns) = cluster_namespace("oci").await;
    let registry = Registry::start().await.unwrap();
    let first = push(&registry, "1.0.0", &[("deploy/app.yaml", "version: 1.0.0\n")]);
    let second = push(&registry, "1.1.0", &[("deploy/app.yaml", "version: 1.1.0\n")]);
    push(&registry, "2.0.0", &[("deploy/app.yaml", "version: 2.0.0\n")]);

    let controller = start_source_controller(&ns);
    let logs = || controller.process.logs();
    let repos: Api<OCIRepository> = Api::namespaced(client.clone(), &ns);
    for (name, reference) in [
        ("by-tag", serde_json::json!({"tag": "1.0.0"})),
        ("by-semver", serde_json::json!({"semver": ">=1.0.0 <2.0.0"})),
        ("by-digest", serde_json::json!({"digest": first})),
    ] {
        repos
            .create(&PostParams::default(), &oci_repository(name, &registry, reference))
            .await
            .unwrap();
    }

    let by_tag = ready_revision(&repos, "by-tag", &format!("1.0.0@{first}"), logs).await;
    let tree = download(&by_tag).await;
    assert_eq!(
        std::fs::read_to_string(tree.path().join("deploy/app.yaml")).unwrap(),
        "version: 1.0.0\n"
    );
    assert_eq!(
        by_tag
            .metadata
            .get("org.opencontainers.image.revision")
            .map(String::as_str),
        Some("main@sha1:1.0.0")
    );
    assert_eq!(
        by_tag
            .metadata
            .get("org.opencontainers.image.source")
            .map(String::as_str),
        Some("https://git.example.test/app.git")
    );

    let by_semver = ready_revision(&repos, "by-semver", &format!("1.1.0@{second}"), logs).await;
    let tree = download(&by_semver).await;
    assert_eq!(
        std::fs::read_to_string(tree.path().join("deploy/app.yaml")).unwrap(),
        "version: 1.1.0\n"
    );

    let by_digest = ready_revision(&repos, "by-digest", &first, logs).await;
    assert_eq!(
        by_digest.digest, by_tag.digest,
        "the same content gives the same artifact"
    );

    let third = push(&registry, "1.2.0", &[("deploy/app.yaml", "version: 1.2.0\n")]);
    ready_revision(&repos, "by-semver", &format!("1.2.0@{third}"), logs).await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn a_corrupted_blob_is_rejected_and_the_previous_artifact_stays_served() {
    let (client, ns) = cluster_namespace("ocibad").await;
    let registry = Registry::start().await.unwrap();
    let good = push(&registry, "current", &[("app.yaml", "good: true\n")]);
    let controller = start_source_controller(&ns);
    let logs = || controller.process.logs();
    let repos: Api<OCIRepository> = Api::namespaced(client.clone(), &ns);
    repos
        .create(
            &PostParams::default(),
            &oci_repository("app", &registry, serde_json::json!({"tag": "current"})),
        )
        .await
        .unwrap();
    let artifact = ready_revision(&repos, "app", &format!("current@{good}"), logs).await;

    // A new push whose layer blob is then corrupted on the registry's disk, size unchanged. The
    // object is suspended meanwhile so that it cannot pull the blob before it is corrupted.
    set_suspend(&repos, "app", true, |r| r.status.as_ref()?.observed_generation).await;
    let bad = push(&registry, "current", &[("app.yaml", "good: false, tampered later\n")]);
    let oci = eddy_source::oci::client(true);
    let repository = eddy_source::oci::Repository::parse(&format!("oci://{}/eddy/app", registry.host)).unwrap();
    let (manifest, _) = oci
        .pull_image_manifest(
            &repository.digest(&bad).unwrap(),
            &oci_client::secrets::RegistryAuth::Anonymous,
        )
        .await
        .unwrap();
    let blob = registry.blob_path(&manifest.layers[0].digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    set_suspend(&repos, "app", false, |r| r.status.as_ref()?.observed_generation).await;

    let ready = eventually(
        Duration::from_secs(30),
        "Ready=False for the corrupted blob",
        || async {
            let status = repos.get("app").await.ok()?.status?;
            conditions::get(&status.conditions, READY)
                .filter(|r| r.status == "False")
                .cloned()
        },
    )
    .await;
    assert!(ready.message.contains("digest"), "{}", ready.message);
    let status = repos.get("app").await.unwrap().status.unwrap();
    assert_eq!(
        status.artifact.as_ref(),
        Some(&artifact),
        "the previous artifact stays in status"
    );
    let tree = download(&artifact).await;
    assert_eq!(
        std::fs::read_to_string(tree.path().join("app.yaml")).unwrap(),
        "good: true\n"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn registry_credentials_come_from_a_docker_config_secret_and_copy_keeps_the_layer_as_is() {
    let (client, ns) = cluster_namespace("ociauth").await;
    let registry = Registry::start_with(Some(("robot", "s3cr3t-pw"))).await.unwrap();
    let digest = push_as(&registry, "1.0.0", &[("app.yaml", "a: 1\n")], Some("robot:s3cr3t-pw"));

    // "robot:s3cr3t-pw" in base64, as `kubectl create secret docker-registry` writes it.
    let docker_config = format!(
        r#"{{"auths":{{"{}":{{"auth":"cm9ib3Q6czNjcjN0LXB3"}}}}}}"#,
        registry.host
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "registry"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": docker_config},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();

    let controller = start_source_controller(&ns);
    let logs = || controller.process.logs();
    let repos: Api<OCIRepository> = Api::namespaced(client.clone(), &ns);
    let copy = serde_json::json!({
        "ref": {"tag": "1.0.0"}, "secretRef": {"name": "registry"},
        "layerSelector": {"mediaType": eddy_source::oci::CONTENT_MEDIA_TYPE, "operation": "copy"},
    });
    repos
        .create(&PostParams::default(), &oci_repository_with("copied", &registry, copy))
        .await
        .unwrap();
    let artifact = ready_revision(&repos, "copied", &format!("1.0.0@{digest}"), logs).await;

    // Copied as it is: the artifact is the layer blob itself, so their digests are the same.
    let oci = eddy_source::oci::client(true);
    let repository = eddy_source::oci::Repository::parse(&format!("oci://{}/eddy/app", registry.host)).unwrap();
    let auth = oci_client::secrets::RegistryAuth::Basic("robot".into(), "s3cr3t-pw".into());
    let (manifest, _) = oci
        .pull_image_manifest(&repository.digest(&digest).unwrap(), &auth)
        .await
        .unwrap();
    assert_eq!(artifact.digest, manifest.layers[0].digest);

    // Without the Secret the registry refuses, and the status says so without any credential.
    repos
        .create(
            &PostParams::default(),
            &oci_repository("anonymous", &registry, serde_json::json!({"tag": "1.0.0"})),
        )
        .await
        .unwrap();
    let ready = eventually(Duration::from_secs(30), "Ready=False without credentials", || async {
        let status = repos.get("anonymous").await.ok()?.status?;
        conditions::get(&status.conditions, READY)
            .filter(|r| r.status == "False")
            .cloned()
    })
    .await;
    assert_eq!(ready.reason, "AuthenticationFailed", "{}", ready.message);
    assert!(!ready.message.contains("s3cr3t-pw"));
    delete_namespace(&client, &ns).await;
}
