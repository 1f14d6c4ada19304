//! The progressive-controller binary: parses its flags and runs the controller until a shutdown signal.

use clap::Parser;

fn main() -> std::process::ExitCode {
    eddy_runtime::block_on_main(
        progressive_controller::NAME,
        progressive_controller::run(progressive_controller::Flags::parse()),
    )
}
