use clap::Parser;

fn main() -> std::process::ExitCode {
    eddy_shared::runtime::block_on_main(
        source_controller::NAME,
        source_controller::run(source_controller::Flags::parse()),
    )
}
