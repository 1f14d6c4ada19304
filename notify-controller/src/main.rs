//! The notify-controller binary: parses its flags and runs the controller until a shutdown signal.

use clap::Parser;

fn main() -> std::process::ExitCode {
    eddy_runtime::block_on_main(
        notify_controller::NAME,
        notify_controller::run(notify_controller::Flags::parse()),
    )
}
