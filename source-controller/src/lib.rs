//! source-controller: pulls Git repositories and OCI artifacts into served, digest-addressed
//! artifacts.
//!
//! GitRepository objects are reconciled by [`gitrepository`], OCIRepository objects by
//! [`ocirepository`], with what they share in [`reconcile`]. GitRepositories on the same remote
//! share resolves and artifacts through [`shared_fetch`]. Artifacts are written to
//! `--storage-path` and served on `--storage-addr` while this instance leads.

pub mod credentials;
pub mod gitrepository;
pub mod ocirepository;
pub mod reconcile;
pub mod shared_fetch;
pub mod single_flight;
#[cfg(test)]
mod test_remote;

pub use eddy_source::git;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use eddy_api::source::{GitRepository, OCIRepository};
use eddy_runtime::{self as runtime, RuntimeArgs, run_controller};
use eddy_source::artifact::{self, ArtifactStore};
use shared_fetch::SharedFetches;

/// The controller's name: its field manager, event reporter and default Lease name.
pub const NAME: &str = "source-controller";

/// Command-line flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "source-controller",
    version,
    about = "pulls Git repositories and OCI artifacts into served, digest-addressed artifacts"
)]
pub struct Flags {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Where artifacts are kept and how they are served.
#[derive(clap::Args, Clone, Debug)]
pub struct StorageArgs {
    /// Directory artifacts are written to.
    #[arg(long, env = "EDDY_STORAGE_PATH", default_value = "/data")]
    pub storage_path: PathBuf,
    /// Address the artifact HTTP server listens on.
    #[arg(long, env = "EDDY_STORAGE_ADDR", default_value = "0.0.0.0:9090")]
    pub storage_addr: SocketAddr,
    /// Base URL written into `status.artifact.url`, as consumers reach the artifact server.
    #[arg(
        long,
        env = "EDDY_STORAGE_ADV_ADDR",
        default_value = "http://source-controller.eddy-system.svc.cluster.local."
    )]
    pub storage_adv_addr: String,
    /// Artifacts kept per object, the current one included.
    #[arg(long, env = "EDDY_ARTIFACT_RETENTION_RECORDS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub artifact_retention_records: u32,
}

/// What the source reconcilers share besides the runtime context.
pub struct Sources {
    /// The artifact storage.
    pub store: ArtifactStore,
    /// Artifacts kept per object.
    pub retention: usize,
    /// The Git resolves and builds under way, and the artifacts stored recently, by content.
    pub shared_fetches: SharedFetches,
}

/// Runs the controller until a shutdown signal.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let storage = flags.storage;
    std::fs::create_dir_all(&storage.storage_path)
        .with_context(|| format!("--storage-path {}: cannot create", storage.storage_path.display()))?;
    let sources = Arc::new(Sources {
        store: ArtifactStore::new(&storage.storage_path, &storage.storage_adv_addr),
        retention: storage.artifact_retention_records as usize,
        shared_fetches: SharedFetches::default(),
    });
    runtime::run(NAME, flags.runtime, move |ctx| async move {
        let listener = tokio::net::TcpListener::bind(storage.storage_addr)
            .await
            .with_context(|| format!("--storage-addr {}: cannot listen", storage.storage_addr))?;
        tracing::info!(address = %storage.storage_addr, root = %storage.storage_path.display(), "serving artifacts");
        let server = {
            let stop = ctx.shutdown.clone();
            let app = artifact::router(storage.storage_path.clone());
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            })
        };
        let git = {
            let sources = sources.clone();
            run_controller(ctx.clone(), move |obj: Arc<GitRepository>, ctx| {
                gitrepository::reconcile(obj, ctx, sources.clone())
            })
        };
        let oci = {
            let sources = sources.clone();
            run_controller(ctx.clone(), move |obj: Arc<OCIRepository>, ctx| {
                ocirepository::reconcile(obj, ctx, sources.clone())
            })
        };
        let outcome = tokio::try_join!(git, oci);
        server.abort();
        outcome.map(|_| ())
    })
    .await
}
