//! Unpacking an artifact with path confinement: every entry lands under the target directory or
//! the whole unpack fails. Refused: absolute paths, `..`, paths through a link, links whose target
//! leaves the root, hard links, devices and other special files, duplicate entries, more entries
//! or more bytes than the limits (a decompression bomb stops at the byte limit, not at the disk's).

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::pack::{confined_join, resolves_inside};

/// Caps on what one artifact may unpack to.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most entries (files, directories, links).
    pub max_entries: u64,
    /// Most bytes of file content after decompression.
    pub max_bytes: u64,
}

impl Default for Limits {
    /// 100 000 entries and 1 GiB, far above any real manifest repository.
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 1 << 30,
        }
    }
}

/// What was unpacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Entries written.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Why unpacking failed. Every variant names the offending entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The entry's path is absolute or climbs out of the root.
    #[error("archive entry {0:?} has a path outside the target directory")]
    PathEscapes(String),
    /// The entry is a link whose target is outside the root.
    #[error("archive entry {entry:?} links to {target:?}, outside the target directory")]
    LinkEscapes {
        /// The link.
        entry: String,
        /// Its target.
        target: String,
    },
    /// The entry's path goes through a link unpacked earlier.
    #[error("archive entry {0:?} is inside a symbolic link")]
    ThroughLink(String),
    /// The entry type is not a file, directory or symbolic link.
    #[error("archive entry {entry:?} is a {kind}, which artifacts may not contain")]
    UnsupportedType {
        /// The entry.
        entry: String,
        /// Its type.
        kind: String,
    },
    /// Two entries have the same path.
    #[error("archive entry {0:?} appears twice")]
    Duplicate(String),
    /// Too many entries.
    #[error("archive has more than {0} entries")]
    TooManyEntries(u64),
    /// Too many bytes after decompression.
    #[error("archive unpacks to more than {0} bytes")]
    TooLarge(u64),
    /// The archive is not a valid tar.gz, or writing failed.
    #[error("unpacking archive entry {entry:?}: {source}")]
    Io {
        /// The entry being unpacked, or empty before the first.
        entry: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Unpacks the tar.gz in `archive` into `target` (which must exist) within `limits`.
pub fn unpack(archive: impl Read, target: &Path, limits: Limits) -> Result<Unpacked, UnpackError> {
    // The whole decompressed stream is capped too: tar headers (GNU long names, PAX records) are
    // read into memory before any entry is seen, so the file-content cap alone would not stop them.
    let stream_cap = limits
        .max_bytes
        .saturating_add(limits.max_entries.saturating_mul(STREAM_BYTES_PER_ENTRY))
        .saturating_add(STREAM_SLACK);
    let capped = Capped {
        inner: flate2::read::GzDecoder::new(archive),
        remaining: stream_cap,
    };
    let mut archive = tar::Archive::new(capped);
    let mut links = Vec::new();
    let mut unpacked = Unpacked::default();
    let entries = archive.entries().map_err(|source| UnpackError::Io {
        entry: String::new(),
        source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| stream_error(source, limits))?;
        unpacked.entries += 1;
        if unpacked.entries > limits.max_entries {
            return Err(UnpackError::TooManyEntries(limits.max_entries));
        }
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let relative = relative_path(&raw_path).ok_or_else(|| UnpackError::PathEscapes(raw_path.clone()))?;
        if relative.as_os_str().is_empty() {
            continue; // "./" itself
        }
        let io_error = |source| UnpackError::Io {
            entry: raw_path.clone(),
            source,
        };
        ensure_no_link_on_the_way(target, &relative, &raw_path)?;
        let destination = target.join(&relative);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => match std::fs::symlink_metadata(&destination) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => return Err(UnpackError::Duplicate(raw_path)),
                Err(_) => std::fs::create_dir(&destination).map_err(io_error)?,
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                let mut file = create_new(&destination, executable).map_err(|source| {
                    if source.kind() == io::ErrorKind::AlreadyExists {
                        UnpackError::Duplicate(raw_path.clone())
                    } else {
                        io_error(source)
                    }
                })?;
                let budget = limits.max_bytes - unpacked.bytes;
                let copied = io::copy(&mut (&mut entry).take(budget.saturating_add(1)), &mut file)
                    .map_err(|source| stream_error(source, limits))?;
                if copied > budget {
                    return Err(UnpackError::TooLarge(limits.max_bytes));
                }
                unpacked.bytes += copied;
            }
            tar::EntryType::Symlink => {
                let target_path = entry
                    .link_name()
                    .map_err(io_error)?
                    .ok_or_else(|| UnpackError::PathEscapes(raw_path.clone()))?
                    .into_owned();
                let parent = relative.parent().unwrap_or(Path::new(""));
                if target_path.is_absolute() || confined_join(parent, &target_path).is_none() {
                    return Err(UnpackError::LinkEscapes {
                        entry: raw_path,
                        target: target_path.display().to_string(),
                    });
                }
                symlink(&target_path, &destination).map_err(|source| {
                    if source.kind() == io::ErrorKind::AlreadyExists {
                        UnpackError::Duplicate(raw_path.clone())
                    } else {
                        io_error(source)
                    }
                })?;
                links.push((relative.clone(), raw_path.clone(), target_path));
            }
            other => {
                return Err(UnpackError::UnsupportedType {
                    entry: raw_path,
                    kind: format!("{other:?}").to_lowercase(),
                });
            }
        }
    }
    // Each link passed a textual check when it was created; now that the tree is complete, each
    // must also resolve inside it through the links that other entries made.
    for (relative, entry, target_path) in links {
        if !resolves_inside(target, &relative) {
            return Err(UnpackError::LinkEscapes {
                entry,
                target: target_path.display().to_string(),
            });
        }
    }
    Ok(unpacked)
}

/// Room in the decompressed stream for each entry's headers, beyond its content.
const STREAM_BYTES_PER_ENTRY: u64 = 4096;
/// Room for the end-of-archive blocks and padding.
const STREAM_SLACK: u64 = 1 << 20;

/// A reader that fails, instead of ending, once more than `remaining` bytes were asked of it.
struct Capped<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    "archive stream over its cap",
                )),
            };
        }
        let wanted = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..wanted])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// A read error, which is the stream cap when the capped reader says so.
fn stream_error(source: io::Error, limits: Limits) -> UnpackError {
    if source.kind() == io::ErrorKind::FileTooLarge {
        UnpackError::TooLarge(limits.max_bytes)
    } else {
        UnpackError::Io {
            entry: String::new(),
            source,
        }
    }
}

/// The entry path as a relative path of normal components, or `None` if it is absolute or has `..`.
fn relative_path(raw: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(path)
}

/// Refuses an entry whose parent directories include a symbolic link: a link checked as
/// pointing inside could still be used as a step to resolve later entries elsewhere.
fn ensure_no_link_on_the_way(target: &Path, relative: &Path, raw: &str) -> Result<(), UnpackError> {
    let mut current = target.to_path_buf();
    let parents: Vec<_> = relative.components().collect();
    for component in &parents[..parents.len().saturating_sub(1)] {
        current.push(component);
        if std::fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(UnpackError::ThroughLink(raw.to_owned()));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn create_new(path: &Path, executable: bool) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
}

#[cfg(not(unix))]
fn create_new(path: &Path, _executable: bool) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("symbolic links are not supported here ({})", link.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tar.gz by hand, with raw header paths, as an attacker would.
    fn archive(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, kind, data, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            // Write the name bytes directly: the tar crate's setters refuse `..`, attackers don't.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn try_unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<Unpacked, UnpackError>) {
        let outer = tempfile::tempdir().unwrap();
        let target = outer.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let result = unpack(bytes, &target, Limits::default());
        (outer, result)
    }

    #[test]
    fn a_clean_archive_unpacks() {
        let bytes = archive(&[
            ("deploy/", tar::EntryType::Directory, b"", None),
            ("deploy/app.yaml", tar::EntryType::Regular, b"kind: Deployment\n", None),
            ("deploy/link.yaml", tar::EntryType::Symlink, b"", Some("app.yaml")),
        ]);
        let (outer, result) = try_unpack(&bytes);
        let unpacked = result.unwrap();
        assert_eq!(unpacked, Unpacked { entries: 3, bytes: 17 });
        let link = outer.path().join("target/deploy/link.yaml");
        assert_eq!(std::fs::read_to_string(link).unwrap(), "kind: Deployment\n");
    }

    #[test]
    fn parent_dir_entries_are_refused_and_nothing_lands_outside() {
        let bytes = archive(&[("../evil.yaml", tar::EntryType::Regular, b"x", None)]);
        let (outer, result) = try_unpack(&bytes);
        assert!(matches!(result, Err(UnpackError::PathEscapes(p)) if p == "../evil.yaml"));
        assert!(!outer.path().join("evil.yaml").exists());
    }

    #[test]
    fn absolute_entries_are_refused() {
        let bytes = archive(&[("/tmp/eddy-absolute-entry", tar::EntryType::Regular, b"x", None)]);
        let (_outer, result) = try_unpack(&bytes);
        assert!(matches!(result, Err(UnpackError::PathEscapes(_))));
        assert!(!Path::new("/tmp/eddy-absolute-entry").exists());
    }

    #[test]
    fn links_escaping_the_root_are_refused() {
        for target in ["../../etc", "/etc/passwd", "a/../../.."] {
            let bytes = archive(&[("link", tar::EntryType::Symlink, b"", Some(target))]);
            let (_outer, result) = try_unpack(&bytes);
            assert!(
                matches!(result, Err(UnpackError::LinkEscapes { .. })),
                "{target}: {result:?}"
            );
        }
    }

    #[test]
    fn writing_through_a_link_is_refused() {
        let bytes = archive(&[
            ("dir", tar::EntryType::Symlink, b"", Some(".")),
            ("dir/escape", tar::EntryType::Symlink, b"", Some("..")),
        ]);
        let (_outer, result) = try_unpack(&bytes);
        assert!(
            matches!(result, Err(UnpackError::ThroughLink(ref p)) if p == "dir/escape"),
            "{result:?}"
        );
    }

    #[test]
    fn links_that_escape_through_other_links_are_refused() {
        // Textually "a" stays inside (b/../.. cancels out), but "b" is the root itself, so every
        // ".." really climbs: "a" resolves above the target.
        let bytes = archive(&[
            ("b", tar::EntryType::Symlink, b"", Some(".")),
            ("a", tar::EntryType::Symlink, b"", Some("b/b/b/../../../etc/passwd")),
        ]);
        let (_outer, result) = try_unpack(&bytes);
        assert!(
            matches!(result, Err(UnpackError::LinkEscapes { ref entry, .. }) if entry == "a"),
            "{result:?}"
        );
    }

    #[test]
    fn oversized_tar_headers_stop_at_the_stream_cap() {
        // A GNU long-name header declaring 64 MiB: tar reads such headers into memory whole.
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(64 << 20);
        header.set_cksum();
        builder.append(&header, std::io::repeat(b'a').take(64 << 20)).unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let outer = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_entries: 10,
            max_bytes: 1 << 20,
        };
        let result = unpack(bytes.as_slice(), outer.path(), limits);
        assert!(matches!(result, Err(UnpackError::TooLarge(_))), "{result:?}");
    }

    #[test]
    fn an_unlimited_byte_cap_does_not_overflow() {
        let bytes = archive(&[("a.yaml", tar::EntryType::Regular, b"a: 1\n", None)]);
        let outer = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_entries: 10,
            max_bytes: u64::MAX,
        };
        unpack(bytes.as_slice(), outer.path(), limits).unwrap();
        assert_eq!(std::fs::read_to_string(outer.path().join("a.yaml")).unwrap(), "a: 1\n");
    }

    #[test]
    fn hard_links_and_devices_are_refused() {
        let bytes = archive(&[("hard", tar::EntryType::Link, b"", Some("/etc/passwd"))]);
        let (_outer, result) = try_unpack(&bytes);
        assert!(
            matches!(result, Err(UnpackError::UnsupportedType { ref kind, .. }) if kind == "link"),
            "{result:?}"
        );
        let bytes = archive(&[("dev", tar::EntryType::Char, b"", None)]);
        assert!(matches!(try_unpack(&bytes).1, Err(UnpackError::UnsupportedType { .. })));
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_byte_limit() {
        // 64 MiB of zeros compresses to about 64 KiB.
        let zeros = vec![0u8; 64 << 20];
        let bytes = archive(&[("bomb", tar::EntryType::Regular, &zeros, None)]);
        assert!(bytes.len() < 1 << 20);
        let outer = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_entries: 10,
            max_bytes: 1 << 20,
        };
        let result = unpack(bytes.as_slice(), outer.path(), limits);
        assert!(
            matches!(result, Err(UnpackError::TooLarge(limit)) if limit == 1 << 20),
            "{result:?}"
        );
        let written = std::fs::metadata(outer.path().join("bomb")).unwrap().len();
        assert!(
            written <= (1 << 20) + 1,
            "stopped writing at the limit, wrote {written}"
        );
    }

    #[test]
    fn too_many_entries_are_refused() {
        let entries: Vec<_> = (0..5)
            .map(|i| (format!("f{i}"), tar::EntryType::Regular, b"x" as &[u8], None))
            .collect();
        let borrowed: Vec<_> = entries.iter().map(|(p, k, d, l)| (p.as_str(), *k, *d, *l)).collect();
        let bytes = archive(&borrowed);
        let outer = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_entries: 3,
            max_bytes: 100,
        };
        assert!(matches!(
            unpack(bytes.as_slice(), outer.path(), limits),
            Err(UnpackError::TooManyEntries(3))
        ));
    }

    #[test]
    fn duplicate_entries_are_refused() {
        let bytes = archive(&[
            ("a.yaml", tar::EntryType::Regular, b"one", None),
            ("a.yaml", tar::EntryType::Regular, b"two", None),
        ]);
        assert!(matches!(try_unpack(&bytes).1, Err(UnpackError::Duplicate(p)) if p == "a.yaml"));
    }
}
