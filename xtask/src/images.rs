//! `cargo xtask images`: one OCI image per controller, built without a container engine.
//!
//! Each image is a single layer on nothing (`FROM scratch`): the controller's static binary, the
//! CA certificates, `/etc/passwd` and `/etc/group` naming the non-root user the manifests run as,
//! and the empty `/tmp` and `/data` directories. source-controller's image also carries Debian's
//! `ssh` client and `sh` (dash), with exactly the shared libraries they load, since it runs `ssh`
//! for ssh Git URLs, through `/bin/sh -c` as Git does.
//!
//! The result is reproducible: entries are sorted, owned by fixed ids and dated at the commit's
//! time, compression is fixed, and the config and manifest are written with a fixed field order,
//! so the same binaries (from the same commit) always give the same digests. Images are written
//! as OCI image layouts under the output directory and, with `--push REGISTRY`, pushed to
//! `REGISTRY/<controller>:<tag>`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The controllers, each its own image named after it.
pub const CONTROLLERS: [&str; 4] = [
    "source-controller",
    "apply-controller",
    "notify-controller",
    "progressive-controller",
];

/// The user (and group) the images and the manifests run as.
const NONROOT: u32 = 65532;
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What `cargo xtask images` was asked to do.
#[derive(Debug)]
pub struct Options {
    /// The cargo profile the binaries are built with.
    pub profile: String,
    /// Use these binaries (a directory holding one per controller) instead of building.
    pub binaries: Option<PathBuf>,
    /// Where the OCI image layouts are written.
    pub out: PathBuf,
    /// The tag; the workspace version (`v0.1.0`) when unset.
    pub tag: String,
    /// Push to this registry (`host[:port][/prefix]`).
    pub push: Option<String>,
    /// Talk plain HTTP to the registry.
    pub insecure: bool,
    /// Only these controllers; all when empty.
    pub only: Vec<String>,
}

impl Options {
    /// Parses `cargo xtask images` flags.
    pub fn parse(args: &[&str], root: &Path) -> anyhow::Result<Self> {
        let mut options = Options {
            profile: "release".into(),
            binaries: None,
            out: root.join(".cache/images"),
            tag: format!("v{}", env!("CARGO_PKG_VERSION")),
            push: None,
            insecure: false,
            only: Vec::new(),
        };
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut value = |name: &str| {
                rest.next()
                    .map(|v| (*v).to_owned())
                    .with_context(|| format!("{name} needs a value"))
            };
            match *arg {
                "--profile" => options.profile = value("--profile")?,
                "--binaries" => options.binaries = Some(PathBuf::from(value("--binaries")?)),
                "--out" => options.out = PathBuf::from(value("--out")?),
                "--tag" => options.tag = value("--tag")?,
                "--push" => options.push = Some(value("--push")?),
                "--insecure" => options.insecure = true,
                "--only" => options.only.push(value("--only")?),
                other => bail!("unknown flag {other}\n{USAGE}"),
            }
        }
        for name in &options.only {
            if !CONTROLLERS.contains(&name.as_str()) {
                bail!("--only {name}: not a controller (one of {})", CONTROLLERS.join(", "));
            }
        }
        Ok(options)
    }
}

/// How to call it.
pub const USAGE: &str =
    "usage: cargo xtask images [--profile release|dev|NAME] [--binaries DIR] [--out DIR] [--tag TAG]
                          [--push REGISTRY [--insecure]] [--only CONTROLLER]...";

/// Builds (unless given binaries), assembles, and optionally pushes; prints one line per image.
pub fn run(options: &Options, root: &Path) -> anyhow::Result<()> {
    let names: Vec<&str> = CONTROLLERS
        .into_iter()
        .filter(|name| options.only.is_empty() || options.only.iter().any(|o| o == name))
        .collect();
    let binaries = match &options.binaries {
        Some(dir) => dir.clone(),
        None => build_static(root, &options.profile, &names)?,
    };
    let provenance = Provenance::read(root)?;
    let mut built = Vec::new();
    for name in &names {
        let binary = binaries.join(name);
        let image = assemble(name, &binary, &provenance, &options.tag)
            .with_context(|| format!("assembling the {name} image from {}", binary.display()))?;
        let layout = options.out.join(name);
        image.write_layout(&layout, &options.tag)?;
        println!(
            "{name}:{} {} ({} bytes compressed) -> {}",
            options.tag,
            image.manifest_digest,
            image.layer.len(),
            layout.display()
        );
        built.push((*name, image));
    }
    if let Some(registry) = &options.push {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        for (name, image) in &built {
            let reference = format!("{}/{name}:{}", registry.trim_end_matches('/'), options.tag);
            let digest = runtime.block_on(push(&reference, image, options.insecure))?;
            println!("pushed {reference}@{digest}");
        }
    }
    Ok(())
}

/// Builds the controllers as static executables; returns the directory holding them.
fn build_static(root: &Path, profile: &str, names: &[&str]) -> anyhow::Result<PathBuf> {
    let target = host_triple()?;
    if !target.ends_with("-linux-gnu") {
        bail!("static images are built for a *-linux-gnu host; this host is {target}");
    }
    // Their own target directory: the flags differ from the workspace's, and would otherwise
    // invalidate its cache on every switch.
    let target_dir = root.join(".cache/images/target");
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"));
    // With --target, RUSTFLAGS apply to the controllers only, not to build scripts and proc macros.
    // Paths are remapped so that the binary does not depend on where the checkout lives.
    let rustflags = format!(
        "-C target-feature=+crt-static --remap-path-prefix={}=/eddy --remap-path-prefix={}=/cargo",
        root.display(),
        cargo_home.display()
    );
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(root)
        .args(["build", "--locked", "--profile", profile, "--target", &target])
        .env("RUSTFLAGS", rustflags)
        .env("CARGO_TARGET_DIR", &target_dir);
    for name in names {
        cargo.args(["-p", name, "--bin", name]);
    }
    eprintln!(
        "building {} as static executables ({profile} profile, {target})",
        names.join(", ")
    );
    let status = cargo.status().context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let dir_name = if profile == "dev" { "debug" } else { profile };
    Ok(target_dir.join(target).join(dir_name))
}

fn host_triple() -> anyhow::Result<String> {
    let output = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV printed no host line")
}

/// Where the images come from: the labels and the date every entry carries.
#[derive(Clone, Debug)]
pub struct Provenance {
    /// The repository's home (org.opencontainers.image.source).
    pub source: String,
    /// The commit, `-dirty` when the work tree has changes (org.opencontainers.image.revision).
    pub revision: String,
    /// The commit's time, seconds since the epoch (`SOURCE_DATE_EPOCH` overrides it).
    pub epoch: u64,
}

impl Provenance {
    fn read(root: &Path) -> anyhow::Result<Self> {
        let git = |args: &[&str]| -> Option<String> {
            let output = Command::new("git").current_dir(root).args(args).output().ok()?;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        };
        let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(value) => value.parse().context("SOURCE_DATE_EPOCH is not a number")?,
            Err(_) => git(&["log", "-1", "--format=%ct"])
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
        };
        Ok(Provenance {
            source: env!("CARGO_PKG_REPOSITORY").to_owned(),
            revision: if dirty { format!("{commit}-dirty") } else { commit },
            epoch,
        })
    }
}

/// An assembled image: its blobs and digests.
#[derive(Debug)]
pub struct Image {
    /// The gzip-compressed layer.
    pub layer: Vec<u8>,
    /// The config JSON.
    pub config: Vec<u8>,
    /// The manifest JSON.
    pub manifest: Vec<u8>,
    /// `sha256:` digest of the manifest: the image's digest.
    pub manifest_digest: String,
}

/// Assembles the image of controller `name` from its static `binary`.
pub fn assemble(name: &str, binary: &Path, provenance: &Provenance, tag: &str) -> anyhow::Result<Image> {
    let program = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    if let Some(interpreter) = elf_interpreter(&program)? {
        bail!(
            "{} is linked dynamically (interpreter {interpreter}); build it with -C target-feature=+crt-static",
            binary.display()
        );
    }
    let mut files = Files::default();
    files.file(&format!("/{name}"), program, 0o755);
    let ca = std::fs::read(CA_BUNDLE).with_context(|| format!("reading {CA_BUNDLE} (Debian: ca-certificates)"))?;
    files.file(CA_BUNDLE, ca, 0o644);
    files.file(
        "/etc/passwd",
        format!("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/tmp:/sbin/nologin\n")
            .into_bytes(),
        0o644,
    );
    files.file(
        "/etc/group",
        format!("root:x:0:\nnonroot:x:{NONROOT}:\n").into_bytes(),
        0o644,
    );
    files.file(
        "/etc/nsswitch.conf",
        b"passwd: files\ngroup: files\nhosts: files dns\n".to_vec(),
        0o644,
    );
    files.owned_dir("/tmp", 0o1777);
    files.owned_dir("/data", 0o755);
    if name == "source-controller" {
        // ssh for ssh Git URLs; the Git library starts it as Git does, through `/bin/sh -c`
        // (the command carries the key and known_hosts options), so the image has Debian's sh.
        add_program_with_libraries(&mut files, "ssh", "/usr/bin/ssh", "openssh-client")?;
        add_program_with_libraries(&mut files, "sh", "/bin/sh", "dash")?;
    }
    let tar = files.tar(provenance.epoch)?;
    let diff_id = sha256(&tar);
    let layer = gzip(&tar)?;
    let created = rfc3339(provenance.epoch);
    let labels = BTreeMap::from([
        ("org.opencontainers.image.created", created.clone()),
        ("org.opencontainers.image.revision", provenance.revision.clone()),
        ("org.opencontainers.image.source", provenance.source.clone()),
        ("org.opencontainers.image.title", name.to_owned()),
        ("org.opencontainers.image.version", tag.to_owned()),
    ]);
    let config = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": format!("{NONROOT}:{NONROOT}"),
            "Entrypoint": [format!("/{name}")],
            "Env": ["PATH=/usr/bin:/bin", format!("SSL_CERT_FILE={CA_BUNDLE}")],
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "cargo xtask images"}],
    });
    let config = serde_json::to_vec(&config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": sha256(&layer), "size": layer.len()}],
        "annotations": labels,
    });
    let manifest = serde_json::to_vec(&manifest)?;
    Ok(Image {
        manifest_digest: sha256(&manifest),
        layer,
        config,
        manifest,
    })
}

impl Image {
    /// Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) to `dir`,
    /// replacing what was there.
    pub fn write_layout(&self, dir: &Path, tag: &str) -> anyhow::Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        for blob in [&self.layer, &self.config, &self.manifest] {
            let digest = sha256(blob);
            let hex = digest.trim_start_matches("sha256:");
            std::fs::write(blobs.join(hex), blob)?;
        }
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": self.manifest_digest,
                "size": self.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
        Ok(())
    }
}

async fn push(reference: &str, image: &Image, insecure: bool) -> anyhow::Result<String> {
    use oci_client::Reference;
    use oci_client::secrets::RegistryAuth;
    let parsed: Reference = reference
        .parse()
        .with_context(|| format!("{reference}: not an image reference"))?;
    let client = eddy_source::oci::client(insecure);
    let auth = match std::env::var("EDDY_REGISTRY_CREDS") {
        Ok(creds) => {
            let (user, password) = creds
                .split_once(':')
                .context("EDDY_REGISTRY_CREDS must be user:password")?;
            RegistryAuth::Basic(user.to_owned(), password.to_owned())
        }
        Err(_) => RegistryAuth::Anonymous,
    };
    client
        .auth(&parsed, &auth, oci_client::RegistryOperation::Push)
        .await
        .with_context(|| format!("authenticating to push {reference}"))?;
    for blob in [&image.layer, &image.config] {
        client
            .push_blob(&parsed, blob.clone(), &sha256(blob))
            .await
            .with_context(|| format!("pushing a blob of {reference}"))?;
    }
    let content_type = reqwest::header::HeaderValue::from_static(MANIFEST_MEDIA_TYPE);
    client
        .push_manifest_raw(&parsed, image.manifest.clone(), content_type)
        .await
        .with_context(|| format!("pushing the manifest of {reference}"))?;
    Ok(image.manifest_digest.clone())
}

/// Adds `program` (found on PATH, from Debian's `package`) at `destination`, and every shared
/// library it loads, at the paths it loads them.
fn add_program_with_libraries(
    files: &mut Files,
    program: &str,
    destination: &str,
    package: &str,
) -> anyhow::Result<()> {
    let path = which(program).with_context(|| format!("{program} is not on PATH (Debian: {package})"))?;
    let output = Command::new("ldd")
        .arg(&path)
        .output()
        .context("running ldd (Debian: libc-bin)")?;
    if !output.status.success() {
        bail!(
            "ldd {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    files.file(destination, bytes, 0o755);
    for library in ldd_paths(&String::from_utf8_lossy(&output.stdout))? {
        let content = std::fs::read(&library).with_context(|| format!("reading {library}"))?;
        files.file(&library, content, 0o755);
    }
    Ok(())
}

/// The absolute paths of the libraries in `ldd`'s output, the loader included.
fn ldd_paths(text: &str) -> anyhow::Result<Vec<String>> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("linux-vdso") {
            continue;
        }
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let path = rest.trim().split(' ').next().unwrap_or_default();
                if path == "not" || path.is_empty() {
                    bail!("ldd: {} is not found", name.trim());
                }
                path
            }
            None => line.split(' ').next().unwrap_or_default(),
        };
        if !path.starts_with('/') {
            bail!("ldd printed a line without a path: {line}");
        }
        paths.push(path.to_owned());
    }
    Ok(paths)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The ELF program interpreter of `program`, or `None` for a static executable.
fn elf_interpreter(program: &[u8]) -> anyhow::Result<Option<String>> {
    let u16_at = |at: usize| program.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| {
        program
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let u64_at = |at: usize| {
        program
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    if program.get(..5) != Some(b"\x7fELF\x02") || program.get(5) != Some(&1) {
        bail!("not a 64-bit little-endian ELF executable");
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        bail!("truncated ELF header");
    };
    const PT_INTERP: u32 = 3;
    for index in 0..usize::from(phnum) {
        let at = usize::try_from(phoff)? + index * usize::from(phentsize);
        if u32_at(at) == Some(PT_INTERP) {
            let (Some(offset), Some(size)) = (u64_at(at + 8), u64_at(at + 32)) else {
                bail!("truncated program header");
            };
            let (offset, size) = (usize::try_from(offset)?, usize::try_from(size)?);
            let name = program
                .get(offset..offset + size)
                .context("interpreter outside the file")?;
            return Ok(Some(String::from_utf8_lossy(name).trim_end_matches('\0').to_owned()));
        }
    }
    Ok(None)
}

/// The layer's content: files and directories by absolute path.
#[derive(Default)]
struct Files {
    entries: BTreeMap<String, Entry>,
}

enum Entry {
    Dir { mode: u32, owner: u32 },
    File { content: Vec<u8>, mode: u32 },
}

impl Files {
    fn file(&mut self, path: &str, content: Vec<u8>, mode: u32) {
        self.parents(path);
        self.entries.insert(path.to_owned(), Entry::File { content, mode });
    }

    /// A directory the non-root user may write to (a mount point in the manifests).
    fn owned_dir(&mut self, path: &str, mode: u32) {
        self.parents(path);
        self.entries
            .insert(path.to_owned(), Entry::Dir { mode, owner: NONROOT });
    }

    fn parents(&mut self, path: &str) {
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| *d != Path::new("/")) {
            self.entries
                .entry(dir.to_string_lossy().into_owned())
                .or_insert(Entry::Dir { mode: 0o755, owner: 0 });
            parent = dir.parent();
        }
    }

    /// The uncompressed tar, entries in path order, every header fixed but for mode and owner.
    fn tar(&self, epoch: u64) -> anyhow::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let relative = path.trim_start_matches('/');
            let mut header = tar::Header::new_ustar();
            header.set_mtime(epoch);
            match entry {
                Entry::Dir { mode, owner } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_uid(u64::from(*owner));
                    header.set_gid(u64::from(*owner));
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{relative}/"), std::io::empty())?;
                }
                Entry::File { content, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_uid(0);
                    header.set_gid(0);
                    header.set_size(content.len() as u64);
                    builder.append_data(&mut header, relative, content.as_slice())?;
                }
            }
        }
        Ok(builder.into_inner()?)
    }
}

fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    // No name and no time in the gzip header: the same tar always compresses to the same bytes.
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(9));
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `seconds` since the epoch as an RFC 3339 UTC time.
fn rfc3339(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_289_773), "2026-12-03T09:22:53Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn ldd_output_gives_every_library_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            ldd_paths(text).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libz.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        let missing = ldd_paths("\tlibgone.so.1 => not found\n").unwrap_err();
        assert!(missing.to_string().contains("libgone.so.1 is not found"), "{missing}");
    }

    #[test]
    fn a_dynamic_executable_is_told_apart_from_a_static_one() {
        let ls = std::fs::read("/bin/sh").unwrap();
        assert!(elf_interpreter(&ls).unwrap().is_some_and(|i| i.contains("ld-linux")));
        assert!(elf_interpreter(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn the_same_inputs_give_the_same_layer() {
        let mut files = Files::default();
        files.file("/etc/passwd", b"root:x:0:0::/:/sbin/nologin\n".to_vec(), 0o644);
        files.owned_dir("/tmp", 0o1777);
        let first = gzip(&files.tar(1_000).unwrap()).unwrap();
        let second = gzip(&files.tar(1_000).unwrap()).unwrap();
        assert_eq!(sha256(&first), sha256(&second));
        let later = gzip(&files.tar(2_000).unwrap()).unwrap();
        assert_ne!(sha256(&first), sha256(&later), "the date is part of the layer");
        let names: Vec<String> = tar::Archive::new(files.tar(1_000).unwrap().as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["etc/", "etc/passwd", "tmp/"]);
    }
}
