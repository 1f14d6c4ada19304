//! source-controller: pulls Git repositories and OCI artifacts into served, digest-addressed artifacts
//!
//! For now every kind it owns reports Ready=False with reason NotImplemented; the runtime
//! around it (leader election, metrics, probes, graceful shutdown) is complete.

pub mod git;

use eddy_shared::runtime::{self, RuntimeArgs, report_not_implemented, run_controller};

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
}

/// Runs the controller until a shutdown signal.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    runtime::run(NAME, flags.runtime, |ctx| async move {
        tokio::try_join!(
            run_controller(
                ctx.clone(),
                report_not_implemented::<eddy_shared::api::source::GitRepository>
            ),
            run_controller(
                ctx.clone(),
                report_not_implemented::<eddy_shared::api::source::OCIRepository>
            ),
        )?;
        Ok(())
    })
    .await
}
