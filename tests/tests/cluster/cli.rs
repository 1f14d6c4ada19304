//! The `eddy` command against the local control plane.

use std::process::Command;
use std::time::Duration;

use eddy_tests::{ControllerProcess, cluster_namespace, delete_namespace, kubeconfig_path, workspace_binary};

fn eddy(args: &[&str]) -> (bool, String) {
    let output = Command::new(workspace_binary("eddy"))
        .args(args)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .expect("running eddy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn check_passes_with_crds_and_leaders_and_names_what_is_missing() {
    let (client, ns) = cluster_namespace("check").await;
    let lease_ns = format!("--leader-election-namespace={ns}");
    let mut controllers: Vec<ControllerProcess> = [
        "source-controller",
        "apply-controller",
        "notify-controller",
        "progressive-controller",
    ]
    .into_iter()
    .map(|name| ControllerProcess::start(name, &[&lease_ns, &format!("--watch-namespace={ns}")]).unwrap())
    .collect();

    // Four debug builds starting at once on a busy machine: give them a minute, and say what
    // the check said last if it never passes.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let output = loop {
        let (ok, output) = eddy(&["check", "-n", &ns]);
        if ok {
            break output;
        }
        if std::time::Instant::now() > deadline {
            let logs: Vec<String> = controllers
                .iter()
                .map(|c| format!("--- {}:\n{}", c.name, c.logs()))
                .collect();
            panic!(
                "eddy check did not pass within 60 s; last output:\n{output}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(output.matches("is established").count(), 8, "{output}");
    assert_eq!(output.matches("is leading").count(), 4, "{output}");

    let mut apply = controllers.remove(1);
    apply.signal("TERM").unwrap();
    apply.wait_for_exit(Duration::from_secs(10)).await.unwrap();
    let (ok, output) = eddy(&["check", "-n", &ns]);
    assert!(!ok, "a controller without its Lease fails the check");
    assert!(
        output.contains(&format!("✗ apply-controller holds no Lease {ns}/apply-controller")),
        "{output}"
    );
    delete_namespace(&client, &ns).await;
}

#[test]
fn check_without_a_cluster_says_so() {
    let output = Command::new(workspace_binary("eddy"))
        .args(["check"])
        .env("KUBECONFIG", "/nonexistent/eddy-kubeconfig")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("✗ no kubeconfig (KUBECONFIG or ~/.kube/config) and not running in a cluster"),
        "{stderr}"
    );
}

#[test]
fn version_prints_the_client_version() {
    let (ok, output) = eddy(&["version"]);
    assert!(ok);
    assert!(
        output.contains(&format!("client: {}", env!("CARGO_PKG_VERSION"))),
        "{output}"
    );
}

#[test]
fn build_refuses_remote_bases_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let bases = eddy_tests::git::GitRepo::create(dir.path(), "bases").unwrap();
    bases
        .commit(
            &[
                ("base/kustomization.yaml", "resources:\n  - cm.yaml\n"),
                (
                    "base/cm.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-remote\ndata:\n  at: head\n",
                ),
            ],
            "base",
        )
        .unwrap();
    let overlay = dir.path().join("overlay");
    std::fs::create_dir(&overlay).unwrap();
    // No ?ref=: the remote's default branch.
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "namePrefix: prod-\nresources:\n  - file://{}//base\n",
            bases.bare.display()
        ),
    )
    .unwrap();
    let overlay = overlay.to_str().unwrap();

    let (ok, text) = eddy(&["build", overlay]);
    assert!(!ok, "{text}");
    assert!(text.contains("remote bases are not allowed"), "{text}");

    let (ok, text) = eddy(&["build", overlay, "--allow-remote-bases"]);
    assert!(ok, "{text}");
    assert!(text.contains("name: prod-from-remote"), "{text}");
    assert!(text.contains("at: head"), "{text}");
}
