//! source-controller's artifact storage: `<root>/<kind>/<namespace>/<name>/<digest hex>.tar.gz`.
//! Files are written to a temporary file in the same directory, hashed while written, fsynced and
//! renamed into place, so a reader never sees a partial artifact and a failed write leaves the
//! previous one untouched. Old files are garbage-collected, keeping the newest N.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use eddy_api::meta::Artifact;

/// Where an artifact belongs: `<kind>/<namespace>/<name>`, with the kind in lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactOwner {
    /// Lower-case kind, e.g. `gitrepository`.
    pub kind: String,
    /// Namespace of the source object.
    pub namespace: String,
    /// Name of the source object.
    pub name: String,
}

impl ArtifactOwner {
    /// The owner of artifacts of `kind` (any case) for `namespace/name`.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_ascii_lowercase(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn relative_dir(&self) -> PathBuf {
        [&self.kind, &self.namespace, &self.name].iter().collect()
    }
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Writing or renaming the artifact failed.
    #[error("storing artifact in {dir}: {source}")]
    Write {
        /// The object's storage directory.
        dir: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The producer failed while writing.
    #[error("{0}")]
    Produce(String),
}

/// A digest-computing writer: everything written goes to `inner` and into a SHA-256.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// `sha256:<hex>` of what was written, its size, and the inner writer.
    pub fn finish(self) -> (String, u64, W) {
        (
            format!("sha256:{}", hex(&self.hasher.finalize())),
            self.written,
            self.inner,
        )
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The storage directory and the base URL it is served under.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    root: PathBuf,
    base_url: String,
}

impl ArtifactStore {
    /// A store in `root`, advertised as `base_url` (e.g. `http://source-controller.eddy-system`).
    pub fn new(root: impl Into<PathBuf>, base_url: &str) -> Self {
        Self {
            root: root.into(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes a new artifact for `owner` through `produce`, then names it after its digest. On
    /// error nothing is left behind and earlier artifacts are untouched.
    pub fn put<T, E: std::fmt::Display>(
        &self,
        owner: &ArtifactOwner,
        revision: &str,
        produce: impl FnOnce(&mut DigestWriter<io::BufWriter<&std::fs::File>>) -> Result<T, E>,
    ) -> Result<(Artifact, T), StoreError> {
        let relative_dir = owner.relative_dir();
        let dir = self.root.join(&relative_dir);
        let write_error = |source| StoreError::Write {
            dir: relative_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(write_error)?;
        let temp = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&dir)
            .map_err(write_error)?;
        let (digest, size, produced) = {
            let mut writer = DigestWriter::new(io::BufWriter::new(temp.as_file()));
            let produced = produce(&mut writer).map_err(|e| StoreError::Produce(e.to_string()))?;
            let (digest, size, buffered) = writer.finish();
            buffered.into_inner().map_err(|e| write_error(e.into_error()))?;
            (digest, size, produced)
        };
        temp.as_file().sync_all().map_err(write_error)?;
        let file_name = format!("{}.tar.gz", digest.trim_start_matches("sha256:"));
        temp.persist(dir.join(&file_name)).map_err(|e| write_error(e.error))?;
        // The rename is durable once the directory is.
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(write_error)?;

        let path = format!("{}/{file_name}", relative_dir.display());
        let artifact = Artifact {
            url: format!("{}/{path}", self.base_url),
            path,
            revision: revision.to_owned(),
            digest,
            last_update_time: Time(Timestamp::now()),
            size: Some(size as i64),
            metadata: Default::default(),
        };
        Ok((artifact, produced))
    }

    /// Whether the file an artifact names is in storage.
    pub fn contains(&self, artifact: &Artifact) -> bool {
        self.root.join(&artifact.path).is_file()
    }

    /// Removes all but the newest `keep` artifacts of `owner` (by modification time), never the
    /// one at `current`, and any temporary file a crash left. Returns the removed file names.
    pub fn collect_garbage(&self, owner: &ArtifactOwner, keep: usize, current: &str) -> io::Result<Vec<String>> {
        let dir = self.root.join(owner.relative_dir());
        let current_file = Path::new(current).file_name().map(|f| f.to_owned());
        let mut files = Vec::new();
        let mut removed = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(removed),
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let text = name.to_string_lossy().into_owned();
            if text.starts_with(".incoming-") {
                std::fs::remove_file(entry.path())?;
                removed.push(text);
            } else if text.ends_with(".tar.gz") && Some(&name) != current_file.as_ref() {
                files.push((entry.metadata()?.modified()?, text));
            }
        }
        files.sort();
        // `keep` counts the current artifact when it is there.
        let current_present = current_file.as_ref().is_some_and(|name| dir.join(name).is_file());
        let excess = files.len().saturating_sub(keep.max(1) - usize::from(current_present));
        for (_, name) in files.into_iter().take(excess) {
            std::fs::remove_file(dir.join(&name))?;
            removed.push(name);
        }
        Ok(removed)
    }

    /// Removes every artifact of `owner`, when its object is deleted.
    pub fn remove_all(&self, owner: &ArtifactOwner) -> io::Result<()> {
        match std::fs::remove_dir_all(self.root.join(owner.relative_dir())) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> ArtifactOwner {
        ArtifactOwner::new("GitRepository", "apps", "web")
    }

    fn put(store: &ArtifactStore, content: &[u8]) -> Artifact {
        store
            .put(&owner(), "main@sha1:abc", |w| w.write_all(content))
            .unwrap()
            .0
    }

    #[test]
    fn artifacts_are_named_by_digest_and_advertised_under_the_base_url() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), "http://source.test/");
        let artifact = put(&store, b"hello");
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(artifact.digest, format!("sha256:{hex}"));
        assert_eq!(artifact.path, format!("gitrepository/apps/web/{hex}.tar.gz"));
        assert_eq!(
            artifact.url,
            format!("http://source.test/gitrepository/apps/web/{hex}.tar.gz")
        );
        assert_eq!(artifact.size, Some(5));
        assert!(store.contains(&artifact));
    }

    #[test]
    fn a_failed_write_leaves_nothing_and_keeps_the_previous_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), "http://source.test");
        let good = put(&store, b"good");
        let failed = store.put(&owner(), "main@sha1:def", |w| {
            w.write_all(b"partial")?;
            Err::<(), _>(io::Error::other("remote hung up"))
        });
        assert!(matches!(failed, Err(StoreError::Produce(m)) if m.contains("remote hung up")));
        let files: Vec<_> = std::fs::read_dir(dir.path().join("gitrepository/apps/web"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");
        assert_eq!(std::fs::read(dir.path().join(&good.path)).unwrap(), b"good");
    }

    #[test]
    fn garbage_collection_keeps_the_newest_and_the_current() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), "http://source.test");
        let mut artifacts = Vec::new();
        for content in [b"one", b"two", b"thr", b"fou"] {
            artifacts.push(put(&store, content));
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
        let removed = store.collect_garbage(&owner(), 2, &artifacts[3].path).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(!store.contains(&artifacts[0]) && !store.contains(&artifacts[1]));
        assert!(store.contains(&artifacts[2]) && store.contains(&artifacts[3]));
        store.remove_all(&owner()).unwrap();
        assert!(!dir.path().join("gitrepository/apps/web").exists());
    }
}
