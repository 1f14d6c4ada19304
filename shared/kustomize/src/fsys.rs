//! Reading files without leaving the confinement root.
//!
//! Two rules, both checked after symlinks are resolved:
//! - nothing is read outside the build's root (the artifact root in the controller, the Git
//!   work tree for `eddy build`);
//! - a file a kustomization loads (a resource file, a patch, a generator input) stays under
//!   that kustomization's directory, as kustomize requires; only directories (bases,
//!   components) may be elsewhere in the root.

use std::cell::Cell;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use crate::Limits;
use crate::error::{Error, Result, bail};

/// What every loader of one build shares.
struct Budget {
    limits: Limits,
    remote: Option<std::sync::Arc<dyn crate::RemoteLoader>>,
    deadline: Instant,
    bytes_read: Cell<usize>,
}

/// Reads files for one kustomization directory.
#[derive(Clone)]
pub struct Loader {
    root: PathBuf,
    dir: PathBuf,
    /// Directories of the kustomizations that led here, outermost first.
    chain: Vec<PathBuf>,
    budget: Rc<Budget>,
}

impl Loader {
    /// A loader for `dir`, confined to `root`. Both must exist.
    pub fn new(root: &Path, dir: &Path, limits: &Limits) -> Result<Self> {
        Self::with_remote(root, dir, limits, None)
    }

    /// [`Loader::new`], with a loader for remote bases.
    pub fn with_remote(
        root: &Path,
        dir: &Path,
        limits: &Limits,
        remote: Option<std::sync::Arc<dyn crate::RemoteLoader>>,
    ) -> Result<Self> {
        let root = canonical(root).map_err(|e| Error::new(format!("root {}: {e}", root.display())))?;
        let dir = canonical(dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
        if !dir.starts_with(&root) {
            bail!("{} is outside the root {}", dir.display(), root.display());
        }
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        let budget = Budget {
            limits: limits.clone(),
            remote,
            deadline: Instant::now() + limits.timeout,
            bytes_read: Cell::new(0),
        };
        Ok(Self {
            root,
            dir,
            chain: Vec::new(),
            budget: Rc::new(budget),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limits(&self) -> &Limits {
        &self.budget.limits
    }

    /// `path` relative to the root, for messages (`.` for the root itself).
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }

    /// This kustomization's directory relative to the root.
    pub fn display_dir(&self) -> String {
        self.display(&self.dir)
    }

    /// Errors once the build has run longer than its time limit.
    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.budget.deadline {
            bail!("build took longer than the limit of {:?}", self.budget.limits.timeout);
        }
        Ok(())
    }

    /// Resolves `rel` (relative to this kustomization) to a canonical path inside the root.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf> {
        if rel.is_empty() {
            bail!("empty path");
        }
        let joined = self.dir.join(rel);
        let path = canonical(&joined).map_err(|e| Error::new(format!("'{rel}': {e}")))?;
        if !path.starts_with(&self.root) {
            bail!(
                "'{rel}' resolves to {} which is outside the root {}",
                path.display(),
                self.root.display()
            );
        }
        Ok(path)
    }

    /// Whether `rel` names a directory inside the root.
    pub fn is_dir(&self, rel: &str) -> bool {
        self.resolve(rel).map(|p| p.is_dir()).unwrap_or(false)
    }

    /// Reads a file this kustomization loads. It must be under this kustomization's directory.
    /// Returns the file's display path and its text.
    pub fn read(&self, rel: &str) -> Result<(String, String)> {
        let (display, bytes) = self.read_bytes(rel)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::new(format!("{display} is not UTF-8 text")))?;
        Ok((display, text))
    }

    /// [`Loader::read`] for content that need not be text (generator inputs).
    pub fn read_bytes(&self, rel: &str) -> Result<(String, Vec<u8>)> {
        let path = self.resolve(rel)?;
        if !path.starts_with(&self.dir) {
            bail!(
                "security; file '{rel}' is not in or below '{}' (files a kustomization loads must be under its directory)",
                self.display_dir()
            );
        }
        self.read_path_bytes(&path).map(|bytes| (self.display(&path), bytes))
    }

    /// Reads a file already resolved inside the root, with the size limits.
    pub fn read_path(&self, path: &Path) -> Result<String> {
        let bytes = self.read_path_bytes(path)?;
        String::from_utf8(bytes).map_err(|_| Error::new(format!("{} is not UTF-8 text", self.display(path))))
    }

    fn read_path_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        let display = self.display(path);
        let meta = std::fs::metadata(path).map_err(|e| Error::new(format!("{display}: {e}")))?;
        if meta.is_dir() {
            bail!("{display} is a directory");
        }
        let limits = &self.budget.limits;
        let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        if len > limits.max_file_bytes {
            bail!("{display} is larger than the limit of {} bytes", limits.max_file_bytes);
        }
        let total = self.budget.bytes_read.get().saturating_add(len);
        if total > limits.max_total_bytes {
            bail!("the build read more than the limit of {} bytes", limits.max_total_bytes);
        }
        self.budget.bytes_read.set(total);
        std::fs::read(path).map_err(|e| Error::new(format!("{display}: {e}")))
    }

    /// A loader for a base or component directory `rel`, which may be anywhere inside the root
    /// but not the directory of a kustomization that led here (a cycle).
    pub fn child(&self, rel: &str) -> Result<Loader> {
        let dir = self.resolve(rel)?;
        if !dir.is_dir() {
            bail!("'{rel}' is not a directory");
        }
        for visited in self.chain.iter().chain(std::iter::once(&self.dir)) {
            if visited.starts_with(&dir) {
                bail!(
                    "cycle detected: '{}' contains the kustomization '{}' that refers to it",
                    self.display(&dir),
                    self.display(visited)
                );
            }
        }
        let depth = self.chain.len() + 1;
        if depth >= self.budget.limits.max_kustomization_depth {
            bail!(
                "kustomizations nest deeper than the limit of {}",
                self.budget.limits.max_kustomization_depth
            );
        }
        let mut chain = self.chain.clone();
        chain.push(self.dir.clone());
        Ok(Loader {
            root: self.root.clone(),
            dir,
            chain,
            budget: self.budget.clone(),
        })
    }

    /// A loader for a remote base, fetched by the build's [`crate::RemoteLoader`]; an error
    /// when the build has none.
    pub fn remote_child(&self, url: &str) -> Result<Loader> {
        let Some(remote) = &self.budget.remote else {
            bail!("remote bases are not allowed ('{url}'); vendor it into the repository or enable remote bases");
        };
        let (root, dir) = remote
            .fetch(url)
            .map_err(|e| Error::new(format!("fetching remote base '{url}': {e}")))?;
        let root = canonical(&root).map_err(|e| Error::new(format!("{}: {e}", root.display())))?;
        let dir = canonical(&dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
        if !dir.starts_with(&root) {
            bail!("remote base directory is outside its checkout");
        }
        let mut chain = self.chain.clone();
        chain.push(self.dir.clone());
        Ok(Loader {
            root,
            dir,
            chain,
            budget: self.budget.clone(),
        })
    }
}

/// Whether a `resources` entry names a remote base rather than a local path.
pub fn is_remote(entry: &str) -> bool {
    let lower = entry.to_ascii_lowercase();
    [
        "https://",
        "http://",
        "git::",
        "git@",
        "ssh://",
        "github.com/",
        "gitlab.com/",
        "bitbucket.org/",
        "file://",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
}

/// Resolves symlinks and `..` the way the kernel does.
fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(path)
}

/// Lexically normal form, for paths that need not exist.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("root", &self.root)
            .field("dir", &self.dir)
            .finish()
    }
}
