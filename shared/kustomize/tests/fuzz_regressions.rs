//! Replays every input the fuzzers in `shared/kustomize/fuzz` once crashed on, through the same
//! harnesses (`eddy_kustomize::fuzzing`), so a fixed crash stays fixed under plain `cargo test`.
//! Inputs live in `tests/fuzz_regressions/<target>/`, one file each, as `cargo fuzz tmin` left them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use eddy_kustomize::fuzzing;

fn saved_inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<PathBuf> = entries
        .map(|e| e.expect("listing saved fuzz inputs").path())
        .filter(|p| p.is_file())
        .collect();
    inputs.sort();
    inputs
}

/// Runs `harness` on every saved input of `target` and fails naming each input that panics,
/// rather than stopping at the first.
fn replay(target: &str, harness: impl Fn(&[u8])) {
    let mut panicked = Vec::new();
    for input in saved_inputs(target) {
        let data = std::fs::read(&input).expect("reading a saved fuzz input");
        if catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err() {
            panicked.push(input.file_name().unwrap_or_default().to_string_lossy().into_owned());
        }
    }
    assert!(
        panicked.is_empty(),
        "{target}: these saved inputs still panic: {panicked:?}"
    );
}

#[test]
fn loader_survives_every_saved_crash_input() {
    replay("loader", |data| {
        let scratch = tempfile::tempdir().expect("creating a temporary directory");
        fuzzing::loader(data, scratch.path());
    });
}

#[test]
fn strategic_merge_survives_every_saved_crash_input() {
    replay("strategic_merge", fuzzing::strategic_merge);
}
