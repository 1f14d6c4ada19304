//! `eddy push artifact oci://<registry>/<repository>:<tag> --path <dir> --source <url> --revision <rev>`:
//! packs a directory the way source-controller packs sources and pushes it as a Flux-format OCI
//! artifact, so that OCIRepository objects (Eddy's or Flux's) can consume it.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use eddy_source::oci::{self, Repository};
use oci_client::secrets::RegistryAuth;

/// Flags of `eddy push artifact`.
#[derive(Args, Debug)]
pub struct PushArtifact {
    /// Where to push: `oci://<registry>/<repository>:<tag>`.
    url: String,
    /// The directory to pack.
    #[arg(long)]
    path: PathBuf,
    /// The source the content comes from, e.g. the Git URL (annotation org.opencontainers.image.source).
    #[arg(long)]
    source: String,
    /// The source revision, e.g. `main@sha1:<commit>` (annotation org.opencontainers.image.revision).
    #[arg(long)]
    revision: String,
    /// Ignore rules in .gitignore syntax; the same defaults as source-controller when unset.
    #[arg(long)]
    ignore: Option<String>,
    /// Registry credentials as `user:password`.
    #[arg(long, env = "EDDY_REGISTRY_CREDS")]
    creds: Option<String>,
    /// Talk plain HTTP to the registry (local registries only).
    #[arg(long)]
    insecure_registry: bool,
}

/// Packs and pushes; prints the pushed reference with its digest.
pub async fn run(args: PushArtifact) -> anyhow::Result<()> {
    let (base, tag) = match args.url.rsplit_once(':') {
        Some((base, tag)) if !tag.contains('/') && base.contains('/') => (base, tag),
        _ => bail!("{}: expected oci://<registry>/<repository>:<tag>", args.url),
    };
    let repository = Repository::parse(base)?;
    if !args.path.is_dir() {
        bail!("--path {}: not a directory", args.path.display());
    }
    let auth = match args.creds.as_deref() {
        Some(creds) => {
            let (user, password) = creds.split_once(':').context("--creds must be user:password")?;
            RegistryAuth::Basic(user.to_owned(), password.to_owned())
        }
        None => RegistryAuth::Anonymous,
    };
    let mut content = Vec::new();
    let packed = eddy_source::artifact::pack(&args.path, args.ignore.as_deref(), &mut content)
        .with_context(|| format!("packing {}", args.path.display()))?;
    for dropped in &packed.dropped {
        eprintln!("left out {}: {}", dropped.path, dropped.reason);
    }
    let size = content.len();
    let client = oci::client(args.insecure_registry);
    let digest = oci::push(&client, &auth, &repository, tag, content, &args.source, &args.revision).await?;
    println!(
        "pushed {}:{tag}@{digest} ({} files, {size} bytes compressed)",
        repository.name, packed.files
    );
    Ok(())
}
