//! Harnesses shared by the fuzz targets in `kustomize/fuzz` and their replay test
//! (`tests/fuzz_regressions.rs`): raw fuzzer bytes in, the engine's own code paths exercised.
//! Not a stable API; it exists so a saved crash replays exactly as the fuzzer ran it.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::resource::{Gvk, Object};
use crate::{Limits, Options};

/// Splits fuzzer input into files and fields: a NUL byte is never part of YAML text, so it can
/// separate parts without taking anything away from what one part may contain.
pub const SEPARATOR: u8 = 0;

/// The files the `loader` harness writes, in the order the input's parts fill them.
pub const LOADER_FILES: [&str; 4] = [
    "kustomization.yaml",
    "resource.yaml",
    "patch.yaml",
    "base/kustomization.yaml",
];

/// Marks a file placed beside the confinement root: no build may ever print it.
pub const OUTSIDE_ROOT_CANARY: &str = "fuzz-outside-root-canary";

/// Limits small enough that one input costs milliseconds, and a runaway input is cut short
/// by the engine itself rather than by the fuzzer's timeout.
pub fn tight_limits() -> Limits {
    Limits {
        max_file_bytes: 64 << 10,
        max_total_bytes: 1 << 20,
        max_depth: 32,
        max_aliases: 64,
        max_documents: 256,
        max_nodes: 20_000,
        max_kustomization_depth: 8,
        timeout: Duration::from_secs(2),
    }
}

/// Writes the parts of `data` into `scratch/root` as [`LOADER_FILES`], canary files into
/// `scratch` (outside the root), and builds `scratch/root` confined to it with
/// [`tight_limits`]. Errors are fine; a panic, a hang, or output holding the canary is a bug.
pub fn loader(data: &[u8], scratch: &Path) {
    let root = scratch.join("root");
    fs::create_dir_all(root.join("base")).expect("creating the fuzz root");
    let canary = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {OUTSIDE_ROOT_CANARY}\n");
    // Both a file and a kustomization directory, so `../outside.yaml` and `../outside` tempt.
    fs::create_dir_all(scratch.join("outside")).expect("creating the canary directory");
    fs::write(scratch.join("outside.yaml"), &canary).expect("writing the canary");
    fs::write(scratch.join("outside/canary.yaml"), &canary).expect("writing the canary");
    fs::write(
        scratch.join("outside/kustomization.yaml"),
        "resources:\n- canary.yaml\n",
    )
    .expect("writing the canary");
    for (file, part) in LOADER_FILES.iter().zip(data.split(|b| *b == SEPARATOR)) {
        fs::write(root.join(file), part).expect("writing a fuzz input file");
    }
    let options = Options {
        root: Some(root.clone()),
        limits: tight_limits(),
        ..Options::default()
    };
    if let Ok(resources) = crate::build(&root, &options) {
        let yaml = resources.to_yaml();
        assert!(
            !yaml.contains(OUTSIDE_ROOT_CANARY),
            "the build read a file outside its root:\n{yaml}"
        );
    }
}

/// The kinds `strategic_merge` patches as: one with a built-in schema (merge keys, list
/// strategies) and one custom resource, which has none.
pub fn strategic_merge_kinds() -> [Gvk; 2] {
    [
        Gvk::new("apps", "v1", "Deployment"),
        Gvk::new("example.com", "v1alpha1", "Widget"),
    ]
}

/// Parses the two parts of `data` (target, then patch) as YAML objects and applies the patch
/// to the target as each of [`strategic_merge_kinds`]. Inputs that are not two objects are
/// skipped; errors are fine; a panic is a bug.
pub fn strategic_merge(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == SEPARATOR);
    let (Some(target), Some(patch)) = (parts.next(), parts.next()) else {
        return;
    };
    let limits = tight_limits();
    let (Some(target), Some(patch)) = (parse_object(target, &limits), parse_object(patch, &limits)) else {
        return;
    };
    for gvk in strategic_merge_kinds() {
        let _ = crate::smp::apply(&target, &patch, &gvk);
    }
}

fn parse_object(bytes: &[u8], limits: &Limits) -> Option<Object> {
    let text = std::str::from_utf8(bytes).ok()?;
    match crate::yaml::parse_document(text, limits).ok()? {
        serde_json::Value::Object(object) => Some(object),
        _ => None,
    }
}
