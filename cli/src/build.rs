//! `eddy build`: the kustomize engine apply-controller uses, on a local directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use eddy_kustomize::{self as kustomize, Options};
use eddy_remote_base::GitRemoteBases;

/// How long all remote bases of one build may take to load.
const REMOTE_BASES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Args, Debug)]
pub struct Build {
    /// The kustomization directory to render.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Nothing outside this directory is read. Defaults to the Git work tree holding DIR, or
    /// DIR itself outside one.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Clone remote bases (Git URLs in `resources`, shallow, at their `?ref=`) instead of
    /// refusing them.
    #[arg(long)]
    allow_remote_bases: bool,
}

impl Build {
    pub fn run(&self) -> ExitCode {
        let root = self.root.clone().unwrap_or_else(|| default_root(&self.dir));
        let options = Options {
            root: Some(root),
            remote: self.allow_remote_bases.then(|| {
                Arc::new(GitRemoteBases::new(REMOTE_BASES_TIMEOUT, Arc::default())) as Arc<dyn kustomize::RemoteLoader>
            }),
            ..Options::default()
        };
        match kustomize::render(&self.dir, &options) {
            Ok(yaml) => {
                let mut out = std::io::stdout().lock();
                if out.write_all(yaml.as_bytes()).and_then(|()| out.flush()).is_err() {
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("✗ {}: {err}", self.dir.display());
                ExitCode::FAILURE
            }
        }
    }
}

/// The nearest enclosing directory with a `.git` entry, or `dir` itself.
fn default_root(dir: &Path) -> PathBuf {
    let start = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    start
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
        .unwrap_or(start)
}
