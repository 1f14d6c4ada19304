//! Benchmark helper for `scripts/bench-source`.
//!
//! - `bench generate <dir> <files> <commits>`: a bare repository `<dir>/bench.git` with `<files>`
//!   files at its head and `<commits>` commits of history, written through `git fast-import`.
//! - `bench fetch <url> <storage>`: one cold fetch + packaging through source-controller's code
//!   path (ls-refs resolve, shallow checkout, reproducible tar.gz into the artifact store).
//! - `bench unchanged <url> <rounds>`: the cost of a reconcile when the remote is unchanged
//!   (the ls-refs resolve and the comparison), averaged over `<rounds>`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use eddy_api::source::GitRepositoryRef;
use eddy_source::artifact::{ArtifactOwner, ArtifactStore, pack};
use source_controller::git::{self, Credentials};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["generate", dir, files, commits] => generate(Path::new(dir), files.parse()?, commits.parse()?),
        ["fetch", url, storage] => fetch(url, Path::new(storage)),
        ["unchanged", url, rounds] => unchanged(url, rounds.parse()?),
        _ => anyhow::bail!(
            "usage: bench generate <dir> <files> <commits> | fetch <url> <storage> | unchanged <url> <rounds>"
        ),
    }
}

fn main_branch() -> GitRepositoryRef {
    GitRepositoryRef {
        branch: Some("main".into()),
        ..Default::default()
    }
}

fn generate(dir: &Path, files: usize, commits: usize) -> anyhow::Result<()> {
    let bare = dir.join("bench.git");
    std::fs::create_dir_all(&bare)?;
    let status = Command::new("git")
        .args(["init", "--quiet", "--bare", "--initial-branch=main"])
        .arg(&bare)
        .status()?;
    anyhow::ensure!(status.success(), "git init failed");
    let mut import = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&bare)
        .stdin(Stdio::piped())
        .spawn()?;
    let mut stream = std::io::BufWriter::new(import.stdin.take().expect("piped"));
    let manifest = |i: usize, revision: usize| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{i}\n  namespace: team-{}\ndata:\n  revision: \"{revision}\"\n  payload: |\n{}",
            i % 50,
            "    lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\n".repeat(8)
        )
    };
    let path = |i: usize| format!("apps/team-{}/service-{}/config-{i}.yaml", i % 50, i % 400);
    for commit in 0..commits {
        writeln!(stream, "commit refs/heads/main")?;
        writeln!(
            stream,
            "committer Bench <bench@eddy.dev> {} +0000",
            1_700_000_000 + commit
        )?;
        let message = format!("change {commit}");
        writeln!(stream, "data {}\n{message}", message.len())?;
        // The first commit writes every file; later ones rewrite a rolling slice of them.
        let touched: Box<dyn Iterator<Item = usize>> = if commit == 0 {
            Box::new(0..files)
        } else {
            Box::new((0..25).map(move |k| (commit * 25 + k) % files))
        };
        for i in touched {
            let content = manifest(i, commit);
            writeln!(stream, "M 100644 inline {}\ndata {}\n{content}", path(i), content.len())?;
        }
    }
    stream.flush()?;
    drop(stream);
    anyhow::ensure!(import.wait()?.success(), "git fast-import failed");
    let status = Command::new("git")
        .args(["gc", "--quiet", "--aggressive"])
        .current_dir(&bare)
        .status()?;
    anyhow::ensure!(status.success(), "git gc failed");
    println!("{}", bare.display());
    Ok(())
}

/// Peak resident memory of this process so far, from /proc (kB), for `BENCH_STAGES=1`.
fn peak_kb() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .unwrap_or_default()
}

fn stage(name: &str) {
    if std::env::var_os("BENCH_STAGES").is_some() {
        eprintln!("after {name}: peak {} kB", peak_kb());
    }
}

fn fetch(url: &str, storage: &Path) -> anyhow::Result<()> {
    let credentials = Credentials::default();
    stage("start");
    let head = git::resolve(url, &main_branch(), &credentials, 600)?;
    stage("resolve");
    let work = tempfile::tempdir()?;
    let tree = work.path().join("tree");
    let commit = git::checkout(url, &head, &credentials, 600, &tree, &AtomicBool::new(false))?;
    stage("checkout");
    let store = ArtifactStore::new(storage, "http://bench.invalid");
    let owner = ArtifactOwner::new("GitRepository", "bench", "bench");
    let (artifact, packed) = store.put(&owner, &head.revision.replace(&head.commit, &commit), |w| {
        pack(&tree, None, w)
    })?;
    stage("pack");
    println!(
        "{} files, {} bytes, artifact {} ({} bytes)",
        packed.files,
        packed.bytes,
        artifact.digest,
        artifact.size.unwrap_or_default()
    );
    Ok(())
}

fn unchanged(url: &str, rounds: u32) -> anyhow::Result<()> {
    let credentials = Credentials::default();
    let stored = git::resolve(url, &main_branch(), &credentials, 60)?.revision;
    let started = Instant::now();
    for _ in 0..rounds {
        let head = git::resolve(url, &main_branch(), &credentials, 60)?;
        anyhow::ensure!(head.revision == stored, "the remote changed during the benchmark");
    }
    let mean = started.elapsed() / rounds;
    println!("{:.2}", mean.as_secs_f64() * 1000.0);
    Ok(())
}
