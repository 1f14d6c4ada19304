use clap::Parser;

fn main() -> std::process::ExitCode {
    eddy_cli::main(eddy_cli::Cli::parse())
}
