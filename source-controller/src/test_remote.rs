//! A Git remote for unit tests: a bare repository in a temporary directory, served at a `file://`
//! URL (gix runs `git upload-pack` for it), and a work tree that pushes to it with the `git` CLI.

use std::path::Path;
use std::process::Command;

/// A bare repository and a work tree beside it, on branch `main`.
pub struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    /// An empty remote.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        run_git(
            dir.path(),
            &["init", "--quiet", "--bare", "--initial-branch=main", "remote.git"],
        );
        run_git(dir.path(), &["clone", "--quiet", "remote.git", "work"]);
        run_git(&dir.path().join("work"), &["checkout", "--quiet", "-B", "main"]);
        Self { dir }
    }

    /// The URL GitRepositories use.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("remote.git").display())
    }

    /// Writes `files`, commits them on `main`, pushes, and returns the commit.
    pub fn commit(&self, files: &[(&str, &str)]) -> String {
        let work = self.dir.path().join("work");
        for (path, content) in files {
            std::fs::write(work.join(path), content).unwrap();
        }
        run_git(&work, &["add", "--all"]);
        run_git(&work, &["commit", "--quiet", "-m", "change"]);
        run_git(&work, &["push", "--quiet", "origin", "main"]);
        run_git(&work, &["rev-parse", "HEAD"])
    }
}

/// Runs `git` with a fixed identity and no user or system configuration.
fn run_git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Eddy Tests")
        .env("GIT_AUTHOR_EMAIL", "tests@eddy.dev")
        .env("GIT_COMMITTER_NAME", "Eddy Tests")
        .env("GIT_COMMITTER_EMAIL", "tests@eddy.dev")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
