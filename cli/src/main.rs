//! The `eddy` binary: parses the command line and runs the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    eddy_cli::main(eddy_cli::Cli::parse())
}
