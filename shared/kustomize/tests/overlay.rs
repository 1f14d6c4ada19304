//! A caller's overlay (Flux's Kustomization fields) on the top-level kustomization: the namespace
//! and affixes replace the file's, patches, images and components are added to it, and a
//! directory without a kustomization gets the same treatment.

use std::fs;
use std::path::Path;

use eddy_kustomize::kustfile::Selector;
use eddy_kustomize::{Options, Overlay, OverlayImage, OverlayPatch, build};
use serde_json::Value;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: nginx:1.25
";

fn overlay() -> Overlay {
    Overlay {
        namespace: Some("shop".into()),
        name_prefix: Some("eu-".into()),
        name_suffix: None,
        patches: vec![OverlayPatch {
            patch: "- op: add\n  path: /spec/replicas\n  value: 3\n".into(),
            target: Some(Selector {
                kind: "Deployment".into(),
                ..Default::default()
            }),
        }],
        images: vec![OverlayImage {
            name: "nginx".into(),
            new_tag: Some("1.27".into()),
            ..Default::default()
        }],
        components: vec!["../team".into()],
    }
}

fn render(dir: &Path, root: &Path) -> Vec<Value> {
    let options = Options {
        root: Some(root.to_path_buf()),
        implicit_kustomization: true,
        overlay: Some(overlay()),
        ..Options::default()
    };
    build(dir, &options).unwrap().to_values()
}

fn check(objects: &[Value]) {
    let web = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        web["metadata"]["name"], "eu-web",
        "the overlay's prefix replaces the file's"
    );
    assert_eq!(web["metadata"]["namespace"], "shop");
    assert_eq!(web["spec"]["replicas"], 3);
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(web["metadata"]["labels"]["team"], "shop", "the component was added");
}

const COMPONENT: &str =
    "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nlabels:\n  - pairs:\n      team: shop\n";

#[test]
fn the_overlay_amends_a_kustomization_file() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "app/kustomization.yaml",
        "namePrefix: us-\nresources: [web.yaml]\n",
    );
    write(tmp.path(), "app/web.yaml", DEPLOYMENT);
    write(tmp.path(), "team/kustomization.yaml", COMPONENT);
    check(&render(&tmp.path().join("app"), tmp.path()));
}

#[test]
fn the_overlay_applies_to_an_implicit_kustomization() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "app/web.yaml", DEPLOYMENT);
    write(tmp.path(), "team/kustomization.yaml", COMPONENT);
    check(&render(&tmp.path().join("app"), tmp.path()));
}
