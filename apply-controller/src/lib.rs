//! apply-controller: renders Kustomizations and server-side-applies them
//!
//! For now every kind it owns reports Ready=False with reason NotImplemented; the runtime
//! around it (leader election, metrics, probes, graceful shutdown) is complete.

use eddy_shared::api::apply::Kustomization;
use eddy_shared::runtime::{self, RuntimeArgs, report_not_implemented, run_controller};

/// The controller's name: its field manager, event reporter and default Lease name.
pub const NAME: &str = "apply-controller";

/// Command-line flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "apply-controller",
    version,
    about = "renders Kustomizations and server-side-applies them"
)]
pub struct Flags {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Runs the controller until a shutdown signal.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    runtime::run(NAME, flags.runtime, |ctx| {
        run_controller(ctx, report_not_implemented::<Kustomization>)
    })
    .await
}
