//! What the engine refuses to read, and the limits on what a build may cost.

use std::fs;
use std::path::Path;
use std::time::Duration;

use eddy_kustomize::{Limits, Options, build};

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n";

fn with_limits(root: &Path, limits: Limits) -> Options {
    Options {
        limits,
        ..options(root)
    }
}

fn options(root: &Path) -> Options {
    Options {
        root: Some(root.to_path_buf()),
        ..Options::default()
    }
}

#[test]
fn a_base_elsewhere_in_the_root_is_allowed_like_in_real_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "apps/base/kustomization.yaml", "resources: [cm.yaml]\n");
    write(tmp.path(), "apps/base/cm.yaml", CM);
    write(
        tmp.path(),
        "clusters/prod/kustomization.yaml",
        "resources: [../../apps/base]\nnamePrefix: prod-\n",
    );
    let rm = build(&tmp.path().join("clusters/prod"), &options(tmp.path())).unwrap();
    assert_eq!(rm.resources()[0].name(), "prod-cm");
}

#[test]
fn a_base_outside_the_root_is_refused_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "outside/kustomization.yaml", "resources: [cm.yaml]\n");
    write(tmp.path(), "outside/cm.yaml", CM);
    write(
        tmp.path(),
        "repo/app/kustomization.yaml",
        "resources: [../../outside]\n",
    );
    let err = build(&tmp.path().join("repo/app"), &options(&tmp.path().join("repo"))).unwrap_err();
    assert_eq!(err.file.as_deref(), Some("app/kustomization.yaml"), "{err}");
    assert!(err.to_string().contains("outside the root"), "{err}");
}

#[test]
fn a_symlink_pointing_out_of_the_root_is_resolved_before_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "secret.yaml", CM);
    write(tmp.path(), "repo/kustomization.yaml", "resources: [cm.yaml]\n");
    std::os::unix::fs::symlink(tmp.path().join("secret.yaml"), tmp.path().join("repo/cm.yaml")).unwrap();
    let err = build(&tmp.path().join("repo"), &options(&tmp.path().join("repo"))).unwrap_err();
    assert!(err.to_string().contains("outside the root"), "{err}");
}

#[test]
fn a_file_above_its_kustomization_is_refused_as_kustomize_does() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "cm.yaml", CM);
    write(tmp.path(), "app/kustomization.yaml", "resources: [../cm.yaml]\n");
    let err = build(&tmp.path().join("app"), &options(tmp.path())).unwrap_err();
    assert!(err.to_string().contains("not in or below"), "{err}");
    assert_eq!(err.field.as_deref(), Some("resources[0] '../cm.yaml'"));
}

#[test]
fn remote_bases_are_refused_without_a_loader() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "kustomization.yaml",
        "resources:\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.5.0\n",
    );
    let err = build(tmp.path(), &options(tmp.path())).unwrap_err();
    assert!(err.to_string().contains("remote bases are not allowed"), "{err}");
}

#[test]
fn a_cycle_between_bases_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a/kustomization.yaml", "resources: [../b]\n");
    write(tmp.path(), "b/kustomization.yaml", "resources: [../a]\n");
    let err = build(&tmp.path().join("a"), &options(tmp.path())).unwrap_err();
    assert!(err.to_string().contains("cycle"), "{err}");
}

#[test]
fn an_alias_bomb_is_stopped_by_the_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\nx0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "x{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    write(tmp.path(), "kustomization.yaml", "resources: [bomb.yaml]\n");
    write(tmp.path(), "bomb.yaml", &bomb);
    let err = build(tmp.path(), &options(tmp.path())).unwrap_err();
    assert_eq!(err.file.as_deref(), Some("bomb.yaml"), "{err}");
}

#[test]
fn deep_nesting_and_large_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\ndata: {}1{}\n",
        "[".repeat(500),
        "]".repeat(500)
    );
    write(tmp.path(), "kustomization.yaml", "resources: [deep.yaml]\n");
    write(tmp.path(), "deep.yaml", &deep);
    assert!(build(tmp.path(), &options(tmp.path())).is_err());

    write(tmp.path(), "deep.yaml", CM);
    let limits = Limits {
        max_file_bytes: 16,
        ..Limits::default()
    };
    let err = build(tmp.path(), &with_limits(tmp.path(), limits)).unwrap_err();
    assert!(err.to_string().contains("larger than the limit"), "{err}");
}

#[test]
fn the_time_limit_stops_a_build() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "kustomization.yaml", "resources: [cm.yaml]\n");
    write(tmp.path(), "cm.yaml", CM);
    let limits = Limits {
        timeout: Duration::ZERO,
        ..Limits::default()
    };
    let err = build(tmp.path(), &with_limits(tmp.path(), limits)).unwrap_err();
    assert!(err.to_string().contains("longer than the limit"), "{err}");
}

#[test]
fn an_unknown_field_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "kustomization.yaml", "resources: []\nnamePrefx: a-\n");
    let err = build(tmp.path(), &options(tmp.path())).unwrap_err();
    assert_eq!(err.file.as_deref(), Some("kustomization.yaml"));
    assert!(err.to_string().contains("namePrefx"), "{err}");
}

#[test]
fn plugins_are_never_run() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "kustomization.yaml",
        "resources: [cm.yaml]\ntransformers: [plugin.yaml]\n",
    );
    write(tmp.path(), "cm.yaml", CM);
    write(
        tmp.path(),
        "plugin.yaml",
        "apiVersion: someteam.example.com/v1\nkind: ChartInflator\nmetadata:\n  name: x\n",
    );
    let err = build(tmp.path(), &options(tmp.path())).unwrap_err();
    assert!(err.to_string().contains("is a plugin"), "{err}");
}

#[test]
fn without_a_kustomization_every_manifest_is_rendered_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "b/cm.yaml", &CM.replace("name: cm", "name: two"));
    write(tmp.path(), "a.yaml", CM);
    write(
        tmp.path(),
        "base/kustomization.yaml",
        "resources: [cm.yaml]\nnamePrefix: base-\n",
    );
    write(tmp.path(), "base/cm.yaml", CM);
    write(tmp.path(), "README.md", "not yaml");

    let err = build(tmp.path(), &options(tmp.path())).unwrap_err();
    assert!(err.to_string().contains("unable to find one of"), "{err}");

    let implicit = Options {
        implicit_kustomization: true,
        ..options(tmp.path())
    };
    let rm = build(tmp.path(), &implicit).unwrap();
    let names: Vec<_> = rm.iter().map(|r| r.name().to_owned()).collect();
    assert_eq!(names, ["base-cm", "cm", "two"]);
}
