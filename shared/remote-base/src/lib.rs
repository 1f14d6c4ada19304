//! eddy-remote-base: remote kustomize bases, the bridge between eddy-source's Git and the
//! kustomize engine's loader, kept apart so that source-controller links no kustomize and the
//! engine links no Git. A `resources` entry such as
//! `https://github.com/org/repo//deploy/base?ref=v1.2.0` names a directory in a Git repository at
//! a ref. [`GitRemoteBases`] fetches each one with a shallow clone of exactly that ref (the same
//! gitoxide code as source-controller, without credentials: remote bases are public) into a
//! temporary directory that lives as long as the loader, and the engine reads the base confined
//! to that checkout. Builds get a loader only when remote bases are enabled
//! (`apply-controller --no-remote-bases=false`, `eddy build --allow-remote-bases`): by default
//! they are refused, because a base fetched at build time is neither pinned by the source's
//! revision nor reviewed with it, and reaches wherever the URL points from the controller.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use eddy_api::source::GitRepositoryRef;
use eddy_kustomize::RemoteLoader;
use eddy_source::git::{self, Credentials};

/// A remote base, as written in `resources`, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteBase {
    /// The repository's clone URL.
    pub repo: String,
    /// The directory inside the repository, relative; empty for its root.
    pub path: String,
    /// The ref (`?ref=` or `?version=`): a branch, a tag or a commit; the remote's default
    /// branch when absent.
    pub reference: Option<String>,
}

impl RemoteBase {
    /// Parses the forms kustomize accepts: `https://host/org/repo//path?ref=v1`,
    /// `https://host/org/repo.git/path`, `github.com/org/repo/path` (https implied),
    /// `git@host:org/repo.git/path`, `ssh://git@host/org/repo.git//path`, `file:///srv/repo//path`,
    /// each optionally prefixed with `git::`. Between repository and path there must be `//` or a
    /// `.git` suffix, except on github.com and gitlab.com, where the repository is the first two
    /// segments.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let spec = entry.strip_prefix("git::").unwrap_or(entry);
        let (spec, query) = spec.split_once('?').unwrap_or((spec, ""));
        let mut reference = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("ref" | "version", value)) if !value.is_empty() => reference = Some(value.to_owned()),
                Some(("timeout" | "submodules", _)) => {}
                _ => {
                    return Err(format!(
                        "unsupported query parameter {pair:?} (ref, version, timeout and submodules are known)"
                    ));
                }
            }
        }

        // The scheme and host stay with the repository; the rest is split into repository
        // path and base path.
        let (prefix, rest) = if let Some(at) = spec.find("://") {
            let after = &spec[at + 3..];
            let host_end = if spec.starts_with("file://") {
                0
            } else {
                after
                    .find('/')
                    .ok_or_else(|| format!("{entry:?} names no repository"))?
            };
            spec.split_at(at + 3 + host_end)
        } else if let Some((user_host, path)) = spec.split_once(':').filter(|(h, _)| h.contains('@')) {
            // scp-like: git@host:org/repo
            let prefix = &spec[..user_host.len() + 1];
            (prefix, path)
        } else {
            // host/org/repo, https implied.
            let slash = spec.find('/').ok_or_else(|| format!("{entry:?} names no repository"))?;
            let (host, rest) = spec.split_at(slash);
            return Self::split(entry, &format!("https://{host}"), rest, host, reference);
        };
        let host = prefix
            .rsplit_once("://")
            .map(|(_, h)| h)
            .unwrap_or(prefix)
            .trim_end_matches(':')
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        Self::split(entry, prefix, rest, &host, reference)
    }

    /// Splits `rest` (what follows the scheme and host) into repository and base path.
    fn split(entry: &str, prefix: &str, rest: &str, host: &str, reference: Option<String>) -> Result<Self, String> {
        let leading = if rest.starts_with('/') && !prefix.ends_with(':') {
            "/"
        } else {
            ""
        };
        let body = rest.trim_start_matches('/');
        let (repo, path) = if let Some((repo, path)) = body.split_once("//") {
            (repo.to_owned(), path.to_owned())
        } else if let Some(at) = body
            .find(".git/")
            .map(|i| i + 4)
            .or_else(|| body.ends_with(".git").then_some(body.len()))
        {
            (body[..at].to_owned(), body[at..].trim_start_matches('/').to_owned())
        } else if matches!(host, "github.com" | "gitlab.com") {
            let mut segments = body.splitn(3, '/');
            let (org, name) = (segments.next().unwrap_or(""), segments.next().unwrap_or(""));
            if org.is_empty() || name.is_empty() {
                return Err(format!("{entry:?} names no repository (expected {host}/<org>/<repo>)"));
            }
            (format!("{org}/{name}"), segments.next().unwrap_or("").to_owned())
        } else {
            return Err(format!(
                "cannot tell the repository from the path in {entry:?}: put '//' between them, or end the repository with .git"
            ));
        };
        if repo.is_empty() {
            return Err(format!("{entry:?} names no repository"));
        }
        let path = path.trim_matches('/').to_owned();
        if path.split('/').any(|segment| segment == "..") {
            return Err(format!("the path of {entry:?} leaves its repository"));
        }
        Ok(Self {
            repo: format!("{prefix}{leading}{repo}"),
            path,
            reference,
        })
    }

    /// The Git reference to resolve: a 40-hex ref is a commit, anything else a branch or tag
    /// (tried as a tag first, as kustomize does by fetching the name).
    fn candidates(&self) -> Vec<GitRepositoryRef> {
        match &self.reference {
            None => vec![GitRepositoryRef {
                name: Some("HEAD".into()),
                ..Default::default()
            }],
            Some(r) if r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()) => vec![GitRepositoryRef {
                commit: Some(r.clone()),
                ..Default::default()
            }],
            Some(r) => vec![
                GitRepositoryRef {
                    tag: Some(r.clone()),
                    ..Default::default()
                },
                GitRepositoryRef {
                    branch: Some(r.clone()),
                    ..Default::default()
                },
            ],
        }
    }
}

/// A [`RemoteLoader`] that clones remote bases, each repository and ref once per loader, into
/// temporary directories removed when the loader is dropped. Meant to live for one build, which
/// its deadline bounds as a whole: every Git operation gets the time left, and a checkout stops
/// when the interrupt flag is set (by a caller that stopped waiting).
pub struct GitRemoteBases {
    deadline: Instant,
    interrupt: Arc<AtomicBool>,
    checkouts: Mutex<HashMap<(String, Option<String>), PathBuf>>,
    dirs: Mutex<Vec<tempfile::TempDir>>,
    /// Whether a base was read at a branch (or the default branch), which can move without any
    /// change to the source that names it.
    floating: AtomicBool,
}

impl GitRemoteBases {
    /// A loader whose work ends within `timeout` from now, or once `interrupt` is set.
    pub fn new(timeout: Duration, interrupt: Arc<AtomicBool>) -> Self {
        Self {
            deadline: Instant::now() + timeout,
            interrupt,
            checkouts: Mutex::new(HashMap::new()),
            dirs: Mutex::new(Vec::new()),
            floating: AtomicBool::new(false),
        }
    }

    /// Whether any base this loader fetched was read at a branch rather than a tag or commit:
    /// rendering the same source again may then give other objects.
    pub fn read_a_branch(&self) -> bool {
        self.floating.load(Ordering::Relaxed)
    }

    /// The whole seconds left for the next Git operation; an error once none are left or the
    /// build was interrupted.
    fn time_left(&self, base: &RemoteBase) -> Result<u64, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || self.interrupt.load(Ordering::Relaxed) {
            return Err(format!(
                "{}: remote bases did not load within the timeout",
                git::redact_url(&base.repo)
            ));
        }
        Ok(left.as_secs().max(1))
    }

    fn clone_base(&self, base: &RemoteBase) -> Result<PathBuf, String> {
        let key = (base.repo.clone(), base.reference.clone());
        if let Some(dir) = self.checkouts.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(dir.clone());
        }
        let credentials = Credentials::default();
        let mut errors = Vec::new();
        let head = base.candidates().into_iter().find_map(|reference| {
            let timeout_secs = self.time_left(base).map_err(|e| errors.push(e)).ok()?;
            let resolved = git::resolve(&base.repo, &reference, &credentials, timeout_secs)
                .map_err(|e| errors.push(e.to_string()))
                .ok()?;
            let at_branch = reference.branch.is_some() || reference.name.is_some();
            Some((resolved, at_branch))
        });
        let (head, at_branch) = head.ok_or_else(|| errors.join("; "))?;
        if at_branch {
            self.floating.store(true, Ordering::Relaxed);
        }
        let dir = tempfile::Builder::new()
            .prefix("eddy-remote-base-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let tree = dir.path().join("tree");
        git::checkout(
            &base.repo,
            &head,
            &credentials,
            self.time_left(base)?,
            &tree,
            &self.interrupt,
        )
        .map_err(|e| e.to_string())?;
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner).push(dir);
        self.checkouts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, tree.clone());
        Ok(tree)
    }
}

impl RemoteLoader for GitRemoteBases {
    fn fetch(&self, url: &str) -> Result<(PathBuf, PathBuf), String> {
        let base = RemoteBase::parse(url)?;
        let root = self.clone_base(&base)?;
        let dir = root.join(&base.path);
        if !dir.is_dir() {
            return Err(format!(
                "{:?} is not a directory of {}",
                base.path,
                git::redact_url(&base.repo)
            ));
        }
        Ok((root, dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(entry: &str) -> (String, String, Option<String>) {
        let base = RemoteBase::parse(entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
        (base.repo, base.path, base.reference)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn the_forms_kustomize_accepts() {
        let cases = [
            (
                "https://github.com/org/repo//deploy/base?ref=v1.2.0",
                ("https://github.com/org/repo", "deploy/base", some("v1.2.0")),
            ),
            (
                "https://example.com/org/repo.git/deploy?version=main",
                ("https://example.com/org/repo.git", "deploy", some("main")),
            ),
            (
                "github.com/org/repo/deploy/base?ref=v1",
                ("https://github.com/org/repo", "deploy/base", some("v1")),
            ),
            ("github.com/org/repo", ("https://github.com/org/repo", "", None)),
            (
                "git@github.com:org/repo.git/deploy?ref=main",
                ("git@github.com:org/repo.git", "deploy", some("main")),
            ),
            (
                "ssh://git@example.com/org/repo.git//deploy",
                ("ssh://git@example.com/org/repo.git", "deploy", None),
            ),
            (
                "git::https://example.com/org/repo//base?ref=main&timeout=2m",
                ("https://example.com/org/repo", "base", some("main")),
            ),
            (
                "file:///srv/git/app.git//base?ref=main",
                ("file:///srv/git/app.git", "base", some("main")),
            ),
            (
                "http://127.0.0.1:8080/app.git//base/?ref=main",
                ("http://127.0.0.1:8080/app.git", "base", some("main")),
            ),
        ];
        for (entry, (repo, path, reference)) in cases {
            assert_eq!(parsed(entry), (repo.to_owned(), path.to_owned(), reference), "{entry}");
        }
    }

    #[test]
    fn ambiguous_or_escaping_entries_are_refused_with_a_reason() {
        let err = RemoteBase::parse("https://example.com/org/repo/deploy").unwrap_err();
        assert!(err.contains("put '//' between them"), "{err}");
        let err = RemoteBase::parse("https://example.com/org/repo//../../etc").unwrap_err();
        assert!(err.contains("leaves its repository"), "{err}");
        let err = RemoteBase::parse("https://example.com/repo//base?depth=1").unwrap_err();
        assert!(err.contains("unsupported query parameter"), "{err}");
        assert!(RemoteBase::parse("github.com/org").is_err());
    }

    #[test]
    fn a_full_commit_id_is_a_commit_and_a_name_a_tag_or_branch() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let base = RemoteBase::parse(&format!("github.com/org/repo?ref={commit}")).unwrap();
        assert_eq!(base.candidates()[0].commit.as_deref(), Some(commit));
        let base = RemoteBase::parse("github.com/org/repo?ref=v1").unwrap();
        let candidates = base.candidates();
        assert_eq!(candidates[0].tag.as_deref(), Some("v1"));
        assert_eq!(candidates[1].branch.as_deref(), Some("v1"));
    }
}
