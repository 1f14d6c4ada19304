//! progressive-controller: releases new versions as canaries gated by metrics
//!
//! For now every kind it owns reports Ready=False with reason NotImplemented; the runtime
//! around it (leader election, metrics, probes, graceful shutdown) is complete.

pub mod decide;
pub mod metrics;
pub mod plan;
pub mod release;
pub mod router;
pub mod webhook;

use eddy_runtime::{self as runtime, RuntimeArgs, report_not_implemented, run_controller};

/// The controller's name: its field manager, event reporter and default Lease name.
pub const NAME: &str = "progressive-controller";

/// Command-line flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "progressive-controller",
    version,
    about = "releases new versions as canaries gated by metrics"
)]
pub struct Flags {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Runs the controller until a shutdown signal.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    runtime::run(NAME, flags.runtime, |ctx| async move {
        tokio::try_join!(
            run_controller(ctx.clone(), report_not_implemented::<eddy_api::progressive::Canary>),
            run_controller(
                ctx.clone(),
                report_not_implemented::<eddy_api::progressive::MetricTemplate>
            ),
        )?;
        Ok(())
    })
    .await
}
