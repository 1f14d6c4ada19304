//! Packing a directory into a reproducible tar.gz: entries sorted by path, mtime 0, uid/gid 0, no
//! user or group names, modes normalised to 0755 (directories, executables) and 0644 (files), so
//! the same tree always gives the same bytes and digest. Ignore rules (`.sourceignore` files and
//! the object's `spec.ignore`, gitignore syntax) decide what enters; `.git` never does. Symbolic
//! links that stay inside the tree are kept as links; links that are absolute or climb out are
//! dropped and reported, never followed.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The ignore file read in every directory of a source.
pub const SOURCEIGNORE: &str = ".sourceignore";

/// The most of a `.sourceignore` file that is read.
const MAX_IGNORE_FILE_BYTES: u64 = 1 << 20;

/// How many links one path may pass through while resolving, as the kernel's limit.
const MAX_LINK_HOPS: usize = 40;

/// What is left out when an object sets no `spec.ignore`, as Flux leaves it out: VCS metadata,
/// CI configuration, images and archives.
pub const DEFAULT_EXCLUSIONS: &str = "\
.gitignore
.gitmodules
.gitattributes
*.jpg
*.jpeg
*.gif
*.png
*.wmv
*.flv
*.tar.gz
*.zip
.github/
.circleci/
.travis.yml
.gitlab-ci.yml
appveyor.yml
.drone.yml
cloudbuild.yaml
codeship-services.yml
codeship-steps.yml
**/.goreleaser.yml
**/.sops.yaml
**/.flux.yaml
";

/// A file or link left out of an artifact for a reason the user should hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Path relative to the tree's root.
    pub path: String,
    /// Why it was left out.
    pub reason: String,
}

/// What [`pack`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packed {
    /// Regular files written.
    pub files: u64,
    /// Bytes of file content written (before compression).
    pub bytes: u64,
    /// Links and special files that were left out.
    pub dropped: Vec<Dropped>,
}

/// Why packing failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// An ignore rule does not parse.
    #[error("ignore rule in {origin}: {source}")]
    IgnoreRule {
        /// `spec.ignore` or the `.sourceignore` file.
        origin: String,
        /// The parser's complaint.
        #[source]
        source: ignore::Error,
    },
    /// A line of a `.sourceignore` file is not a valid pattern.
    #[error("{origin} line {line} is not a valid gitignore pattern")]
    InvalidPattern {
        /// The file.
        origin: String,
        /// The 1-based line number.
        line: usize,
    },
    /// Reading the tree or writing the archive failed.
    #[error("packing {path}: {source}")]
    Io {
        /// The path being packed.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Packs `root` as a gzip-compressed tar into `out`. `ignore` is the object's `spec.ignore`: when
/// set it replaces [`DEFAULT_EXCLUSIONS`]; `.sourceignore` files apply either way.
pub fn pack<W: Write>(root: &Path, ignore: Option<&str>, out: W) -> Result<Packed, PackError> {
    let mut root_rules = GitignoreBuilder::new(root);
    for line in ignore.unwrap_or(DEFAULT_EXCLUSIONS).lines() {
        root_rules
            .add_line(None, line)
            .map_err(|source| PackError::IgnoreRule {
                origin: if ignore.is_some() {
                    "spec.ignore".into()
                } else {
                    "the default exclusions".into()
                },
                source,
            })?;
    }
    let root_rules = root_rules.build().map_err(|source| PackError::IgnoreRule {
        origin: "spec.ignore".into(),
        source,
    })?;

    let mut packer = Packer {
        root,
        archive: tar::Builder::new(GzEncoder::new(out, Compression::default())),
        packed: Packed::default(),
    };
    packer.archive.mode(tar::HeaderMode::Deterministic);
    packer.archive.follow_symlinks(false);
    let mut rules = vec![root_rules];
    packer.walk(root, &mut rules)?;
    let encoder = packer.archive.into_inner().map_err(|source| io_error(root, source))?;
    encoder.finish().map_err(|source| io_error(root, source))?;
    Ok(packer.packed)
}

struct Packer<'a, W: Write> {
    root: &'a Path,
    archive: tar::Builder<GzEncoder<W>>,
    packed: Packed,
}

impl<W: Write> Packer<'_, W> {
    fn walk(&mut self, dir: &Path, rules: &mut Vec<Gitignore>) -> Result<(), PackError> {
        let pushed = self.push_sourceignore(dir, rules)?;
        let mut entries = std::fs::read_dir(dir)
            .map_err(|source| io_error(dir, source))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| io_error(dir, source))?;
        // Byte order of names, so that the archive does not depend on the file system's order.
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            if dir == self.root && entry.file_name() == ".git" {
                continue;
            }
            let kind = entry.file_type().map_err(|source| io_error(&path, source))?;
            if is_ignored(rules, &path, kind.is_dir()) {
                continue;
            }
            let relative = path
                .strip_prefix(self.root)
                .expect("walk stays under the root")
                .to_owned();
            if kind.is_dir() {
                self.append_dir(&relative)?;
                self.walk(&path, rules)?;
            } else if kind.is_file() {
                self.append_file(&path, &relative)?;
            } else if kind.is_symlink() {
                self.append_link(&path, &relative)?;
            } else {
                self.drop_entry(&relative, "not a regular file, directory or link");
            }
        }
        if pushed {
            rules.pop();
        }
        Ok(())
    }

    fn push_sourceignore(&self, dir: &Path, rules: &mut Vec<Gitignore>) -> Result<bool, PackError> {
        let file = dir.join(SOURCEIGNORE);
        // A .sourceignore that is a link is not read: it could point anywhere on the machine.
        if !std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
            return Ok(false);
        }
        let mut text = String::new();
        std::fs::File::open(&file)
            .and_then(|f| f.take(MAX_IGNORE_FILE_BYTES).read_to_string(&mut text))
            .map_err(|source| io_error(&file, source))?;
        let mut builder = GitignoreBuilder::new(dir);
        for (number, line) in text.lines().enumerate() {
            // The error names the line by number only: a file's content never reaches status.
            builder.add_line(None, line).map_err(|_| PackError::InvalidPattern {
                origin: display(self.root, &file),
                line: number + 1,
            })?;
        }
        let matcher = builder.build().map_err(|source| PackError::IgnoreRule {
            origin: display(self.root, &file),
            source,
        })?;
        rules.push(matcher);
        Ok(true)
    }

    fn append_dir(&mut self, relative: &Path) -> Result<(), PackError> {
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        self.archive
            .append_data(&mut header, relative, io::empty())
            .map_err(|source| io_error(relative, source))
    }

    fn append_file(&mut self, path: &Path, relative: &Path) -> Result<(), PackError> {
        let file = std::fs::File::open(path).map_err(|source| io_error(relative, source))?;
        let metadata = file.metadata().map_err(|source| io_error(relative, source))?;
        let mode = if is_executable(&metadata) { 0o755 } else { 0o644 };
        let mut header = header(tar::EntryType::Regular, mode, metadata.len());
        self.archive
            .append_data(&mut header, relative, file)
            .map_err(|source| io_error(relative, source))?;
        self.packed.files += 1;
        self.packed.bytes += metadata.len();
        Ok(())
    }

    fn append_link(&mut self, path: &Path, relative: &Path) -> Result<(), PackError> {
        let target = std::fs::read_link(path).map_err(|source| io_error(relative, source))?;
        if target.is_absolute() {
            self.drop_entry(
                relative,
                &format!("symbolic link to absolute path {}", target.display()),
            );
            return Ok(());
        }
        if !resolves_inside(self.root, relative) {
            self.drop_entry(
                relative,
                &format!("symbolic link to {} points outside the repository", target.display()),
            );
            return Ok(());
        }
        let mut header = header(tar::EntryType::Symlink, 0o777, 0);
        self.archive
            .append_link(&mut header, relative, &target)
            .map_err(|source| io_error(relative, source))
    }

    fn drop_entry(&mut self, relative: &Path, reason: &str) {
        self.packed.dropped.push(Dropped {
            path: relative.to_string_lossy().into_owned(),
            reason: reason.to_owned(),
        });
    }
}

fn is_ignored(rules: &[Gitignore], path: &Path, is_dir: bool) -> bool {
    // The deepest rule file that has an opinion wins, as in Git.
    for matcher in rules.iter().rev() {
        match matcher.matched(path, is_dir) {
            Match::Ignore(_) => return true,
            Match::Whitelist(_) => return false,
            Match::None => {}
        }
    }
    false
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

/// Joins `target` to the directory `base` (both relative to some root) without touching the file
/// system, and returns the result if it stays inside the root.
pub(crate) fn confined_join(base: &Path, target: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in base.components().chain(target.components()) {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// Whether `relative` (a path inside `root`) resolves inside `root` the way the kernel would
/// resolve it: following every symbolic link on the way, including links to links and links
/// through directories that are links. A part that does not exist is taken as it is written.
/// False when resolution climbs above the root, meets an absolute link, or loops.
pub(crate) fn resolves_inside(root: &Path, relative: &Path) -> bool {
    enum Part {
        Name(OsString),
        Up,
        Absolute,
    }
    fn parts(path: &Path) -> Vec<Part> {
        path.components()
            .filter_map(|component| match component {
                Component::Normal(name) => Some(Part::Name(name.to_owned())),
                Component::ParentDir => Some(Part::Up),
                Component::CurDir => None,
                Component::RootDir | Component::Prefix(_) => Some(Part::Absolute),
            })
            .collect()
    }

    let mut resolved = PathBuf::new();
    let mut pending: VecDeque<Part> = parts(relative).into();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        match part {
            Part::Absolute => return false,
            Part::Up => {
                if !resolved.pop() {
                    return false;
                }
            }
            Part::Name(name) => {
                let candidate = root.join(&resolved).join(&name);
                if !std::fs::symlink_metadata(&candidate).is_ok_and(|m| m.file_type().is_symlink()) {
                    resolved.push(name);
                    continue;
                }
                hops += 1;
                let Ok(target) = std::fs::read_link(&candidate) else {
                    return false;
                };
                if hops > MAX_LINK_HOPS || target.is_absolute() {
                    return false;
                }
                // The link's target takes its place, resolved from the link's directory.
                for part in parts(&target).into_iter().rev() {
                    pending.push_front(part);
                }
            }
        }
    }
    true
}

fn display(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

fn io_error(path: &Path, source: io::Error) -> PackError {
    PackError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn entries(archive: &[u8]) -> Vec<(String, tar::EntryType)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(archive));
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn same_tree_gives_the_same_bytes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        // Created in different orders and at different times.
        write(a.path(), "deploy/app.yaml", "kind: Deployment\n");
        write(a.path(), "README.md", "hello\n");
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(b.path(), "README.md", "hello\n");
        write(b.path(), "deploy/app.yaml", "kind: Deployment\n");
        let (mut first, mut second) = (Vec::new(), Vec::new());
        pack(a.path(), None, &mut first).unwrap();
        pack(b.path(), None, &mut second).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            entries(&first),
            [
                ("README.md".into(), tar::EntryType::Regular),
                ("deploy".into(), tar::EntryType::Directory),
                ("deploy/app.yaml".into(), tar::EntryType::Regular),
            ]
        );
    }

    #[test]
    fn git_dir_default_exclusions_and_sourceignore_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ".git/HEAD", "ref: refs/heads/main\n");
        write(dir.path(), ".github/workflows/ci.yaml", "on: push\n");
        write(dir.path(), "logo.png", "png");
        write(dir.path(), "apps/web.yaml", "kind: Service\n");
        write(dir.path(), "apps/.sourceignore", "secret.yaml\n");
        write(dir.path(), "apps/secret.yaml", "kind: Secret\n");
        write(dir.path(), "secret.yaml", "kind: Secret\n");
        let mut out = Vec::new();
        let packed = pack(dir.path(), None, &mut out).unwrap();
        let names: Vec<_> = entries(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["apps", "apps/.sourceignore", "apps/web.yaml", "secret.yaml"]);
        assert_eq!(packed.files, 3);
    }

    #[test]
    fn spec_ignore_replaces_the_default_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "logo.png", "png");
        write(dir.path(), "docs/guide.md", "guide");
        write(dir.path(), "deploy/app.yaml", "kind: Deployment\n");
        let mut out = Vec::new();
        pack(dir.path(), Some("/*\n!/deploy\n"), &mut out).unwrap();
        let names: Vec<_> = entries(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["deploy", "deploy/app.yaml"]);
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_are_kept_and_links_outside_are_dropped_and_reported() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base/app.yaml", "kind: Deployment\n");
        std::fs::create_dir(dir.path().join("overlay")).unwrap();
        symlink("../base/app.yaml", dir.path().join("overlay/app.yaml")).unwrap();
        symlink("../../etc/passwd", dir.path().join("overlay/climb")).unwrap();
        symlink("/etc/passwd", dir.path().join("overlay/absolute")).unwrap();
        let mut out = Vec::new();
        let packed = pack(dir.path(), None, &mut out).unwrap();
        let kept = entries(&out);
        assert!(kept.contains(&("overlay/app.yaml".into(), tar::EntryType::Symlink)));
        assert!(
            !kept
                .iter()
                .any(|(n, _)| n == "overlay/climb" || n == "overlay/absolute")
        );
        let dropped: Vec<_> = packed.dropped.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(dropped, ["overlay/absolute", "overlay/climb"]);
        assert!(packed.dropped[1].reason.contains("points outside the repository"));
    }

    #[cfg(unix)]
    #[test]
    fn links_escaping_through_other_links_are_dropped() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write(&tree, "app.yaml", "kind: Deployment\n");
        symlink(".", tree.join("b")).unwrap();
        symlink("b/b/b/../../../secret", tree.join("a")).unwrap();
        let mut out = Vec::new();
        let packed = pack(&tree, None, &mut out).unwrap();
        let dropped: Vec<_> = packed.dropped.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(dropped, ["a"], "{:?}", packed.dropped);
    }

    #[cfg(unix)]
    #[test]
    fn a_sourceignore_link_is_not_followed_and_bad_lines_are_not_echoed() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside-secret");
        std::fs::write(&outside, "[token-abc\n").unwrap();
        let tree = dir.path().join("tree");
        write(&tree, "app.yaml", "kind: Deployment\n");
        symlink(&outside, tree.join(".sourceignore")).unwrap();
        let mut out = Vec::new();
        pack(&tree, None, &mut out).unwrap();

        std::fs::remove_file(tree.join(".sourceignore")).unwrap();
        write(&tree, ".sourceignore", "ok.yaml\n[token-abc\n");
        let err = pack(&tree, None, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains(".sourceignore line 2"), "{err}");
        assert!(!err.contains("token-abc"), "{err}");
    }

    #[test]
    fn confined_join_refuses_escapes() {
        assert_eq!(
            confined_join(Path::new("a/b"), Path::new("../c")),
            Some(PathBuf::from("a/c"))
        );
        assert_eq!(confined_join(Path::new("a"), Path::new("../../c")), None);
        assert_eq!(confined_join(Path::new(""), Path::new("/etc")), None);
    }
}
