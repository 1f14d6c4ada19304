//! The apply-controller binary: parses its flags and runs the controller until a shutdown signal.

use clap::Parser;

fn main() -> std::process::ExitCode {
    eddy_runtime::block_on_main(
        apply_controller::NAME,
        apply_controller::run(apply_controller::Flags::parse()),
    )
}
