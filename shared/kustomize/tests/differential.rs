//! Differential test against the reference implementation: every case under `tests/cases/`
//! (see its README.md) and a seeded set of generated cases is built both by
//! `kubectl kustomize` and by [`eddy_kustomize::build`], and the two must agree: both fail, or
//! both print the same documents in the same order.
//!
//! `EDDY_CASE=<substring>` runs only the cases whose name contains it; `EDDY_ORACLE=<command>`
//! replaces `kubectl` (it must embed kustomize v5.5.x).

#[path = "differential/compare.rs"]
mod compare;
#[path = "differential/generated.rs"]
mod generated;
#[path = "differential/oracle.rs"]
mod oracle;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use compare::Outcome;
use eddy_kustomize::Options;
use oracle::Oracle;

/// How many random cases the generator writes, and from which seed. Changing either changes
/// the generated corpus; a failing generated case is reproduced by its name alone.
const GENERATED_CASES: usize = 60;
const GENERATED_SEED: u64 = 0x0edd_7c0f_fee5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    HandWritten,
    Generated,
}

struct Case {
    name: String,
    /// The confinement root handed to the engine: the case directory.
    root: PathBuf,
    /// The kustomization to build: the case directory, or the directory its `BUILD` names.
    build_dir: PathBuf,
    origin: Origin,
}

impl Case {
    /// Hand-written cases say by name what the oracle must do: `error-*` cases must fail and
    /// all others must succeed. This catches a case that no longer checks what it claims.
    fn oracle_should_fail(&self) -> bool {
        self.origin == Origin::HandWritten && self.name.starts_with("error-")
    }
}

enum Verdict {
    Agree,
    Disagree(String),
    /// The case or the harness is wrong, whatever the engine does.
    CorpusProblem(String),
}

#[test]
fn kustomize_build_matches_kubectl_kustomize() {
    let oracle = Oracle::from_env().unwrap_or_else(|e| panic!("differential: {e}"));
    let filter = std::env::var("EDDY_CASE").ok().filter(|f| !f.is_empty());

    let generated_dir = tempfile::tempdir().expect("create a temporary directory");
    let mut cases = hand_written_cases(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases"));
    cases.extend(
        generated::write_cases(generated_dir.path(), GENERATED_CASES, GENERATED_SEED)
            .into_iter()
            .map(|case| Case {
                name: case.name,
                root: case.root,
                build_dir: case.build_dir,
                origin: Origin::Generated,
            }),
    );
    if let Some(filter) = &filter {
        cases.retain(|case| case.name.contains(filter.as_str()));
    }
    assert!(!cases.is_empty(), "differential: no case matches EDDY_CASE={filter:?}");

    let verdicts = run_all(&oracle, &cases);
    let known = known_differences(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/KNOWN-DIFFERENCES"));

    let mut agree = 0;
    let mut disagree = 0;
    let mut known_seen = 0;
    let mut problems = 0;
    for (case, verdict) in cases.iter().zip(&verdicts) {
        let listed = known.iter().find(|(name, _)| *name == case.name);
        match (verdict, listed) {
            (Verdict::Agree, None) => agree += 1,
            (Verdict::Agree, Some(_)) => {
                problems += 1;
                println!(
                    "CORPUS PROBLEM {}: listed in KNOWN-DIFFERENCES but now agrees; remove it",
                    case.name
                );
            }
            (Verdict::Disagree(text), Some((_, reason))) => {
                known_seen += 1;
                println!("KNOWN DIFFERENCE {} ({reason}): {text}", case.name);
            }
            (Verdict::Disagree(text), None) => {
                disagree += 1;
                println!("DISAGREE {}: {text}", case.name);
            }
            (Verdict::CorpusProblem(text), _) => {
                problems += 1;
                println!("CORPUS PROBLEM {}: {text}", case.name);
            }
        }
    }
    let hand_written = cases.iter().filter(|c| c.origin == Origin::HandWritten).count();
    let mut summary = format!(
        "differential: compared {} cases ({hand_written} hand-written, {} generated): {agree} agree",
        cases.len(),
        cases.len() - hand_written
    );
    if known_seen > 0 {
        summary.push_str(&format!(
            ", {known_seen} known differences (tests/cases/KNOWN-DIFFERENCES)"
        ));
    }
    if disagree > 0 {
        summary.push_str(&format!(", {disagree} disagree"));
    }
    if problems > 0 {
        summary.push_str(&format!(", {problems} corpus problems"));
    }
    println!("{summary}");
    assert!(disagree == 0 && problems == 0, "{summary}");
}

/// `<case>: <reason>` lines: cases where Eddy deliberately or knowingly differs. Each must still
/// disagree, so the list cannot go stale.
fn known_differences(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, reason) = line.split_once(':').unwrap_or((line, ""));
            (name.trim().to_owned(), reason.trim().to_owned())
        })
        .collect()
}

/// Every directory under `cases/`, in name order.
fn hand_written_cases(cases_dir: &Path) -> Vec<Case> {
    let entries = std::fs::read_dir(cases_dir).unwrap_or_else(|e| panic!("read {}: {e}", cases_dir.display()));
    let mut cases: Vec<Case> = entries
        .map(|entry| entry.expect("read a case directory entry").path())
        .filter(|path| path.is_dir())
        .map(|root| {
            let name = root.file_name().unwrap().to_string_lossy().into_owned();
            let build_dir = match std::fs::read_to_string(root.join("BUILD")) {
                Ok(relative) => root.join(relative.trim()),
                Err(_) => root.clone(),
            };
            Case {
                name,
                root,
                build_dir,
                origin: Origin::HandWritten,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Judges every case, on as many threads as there are cores: the oracle is a subprocess, so
/// the cases are independent.
fn run_all(oracle: &Oracle, cases: &[Case]) -> Vec<Verdict> {
    let next = AtomicUsize::new(0);
    let verdicts: Vec<Mutex<Option<Verdict>>> = cases.iter().map(|_| Mutex::new(None)).collect();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(cases.len());
    let quiet = QuietEnginePanics::install();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    *verdicts[i].lock().unwrap() = Some(judge(oracle, case));
                }
            });
        }
    });
    drop(quiet);
    verdicts
        .into_iter()
        .map(|v| v.into_inner().unwrap().expect("every case judged"))
        .collect()
}

fn judge(oracle: &Oracle, case: &Case) -> Verdict {
    let expected = match oracle.build(&case.build_dir) {
        Ok(outcome) => outcome,
        Err(e) => return Verdict::CorpusProblem(e),
    };
    match (&expected, case.oracle_should_fail()) {
        (Outcome::Built(_), true) => {
            return Verdict::CorpusProblem("named error-* but kubectl builds it".to_string());
        }
        (Outcome::Failed(message), false) => {
            return Verdict::CorpusProblem(format!("kubectl fails on it: {message}"));
        }
        _ => {}
    }
    let actual = build_with_engine(case);
    match compare::disagreement(&expected, &actual) {
        None => Verdict::Agree,
        Some(text) => Verdict::Disagree(text),
    }
}

fn build_with_engine(case: &Case) -> Outcome {
    let options = Options {
        root: Some(case.root.clone()),
        ..Options::default()
    };
    IN_ENGINE.with(|flag| flag.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| eddy_kustomize::build(&case.build_dir, &options)));
    IN_ENGINE.with(|flag| flag.set(false));
    match result {
        Ok(Ok(resmap)) => Outcome::Built(resmap.to_values()),
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Outcome::Failed(format!("eddy panicked: {message}"))
        }
    }
}

thread_local! {
    static IN_ENGINE: Cell<bool> = const { Cell::new(false) };
}

/// While alive, panics inside the engine are reported as that case's failure rather than
/// printed by the default hook; any other panic still reaches the hook that was installed.
struct QuietEnginePanics;

impl QuietEnginePanics {
    fn install() -> Self {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_ENGINE.with(Cell::get) {
                previous(info);
            }
        }));
        Self
    }
}

impl Drop for QuietEnginePanics {
    fn drop(&mut self) {
        // Dropping the quiet hook puts the default one back.
        let _ = panic::take_hook();
    }
}
