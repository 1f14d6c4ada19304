//! The source-controller binary: parses its flags and runs the controller until a shutdown signal.

use clap::Parser;

fn main() -> std::process::ExitCode {
    eddy_runtime::block_on_main(
        source_controller::NAME,
        source_controller::run(source_controller::Flags::parse()),
    )
}
