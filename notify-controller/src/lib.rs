//! notify-controller: forwards events to chat and commit statuses, and receives webhooks
//!
//! For now every kind it owns reports Ready=False with reason NotImplemented; the runtime
//! around it (leader election, metrics, probes, graceful shutdown) is complete.

use eddy_runtime::{self as runtime, RuntimeArgs, report_not_implemented, run_controller};

/// The controller's name: its field manager, event reporter and default Lease name.
pub const NAME: &str = "notify-controller";

/// Command-line flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "notify-controller",
    version,
    about = "forwards events to chat and commit statuses, and receives webhooks"
)]
pub struct Flags {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Runs the controller until a shutdown signal.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    runtime::run(NAME, flags.runtime, |ctx| async move {
        tokio::try_join!(
            run_controller(ctx.clone(), report_not_implemented::<eddy_api::notify::Provider>),
            run_controller(ctx.clone(), report_not_implemented::<eddy_api::notify::Alert>),
            run_controller(ctx.clone(), report_not_implemented::<eddy_api::notify::Receiver>),
        )?;
        Ok(())
    })
    .await
}
