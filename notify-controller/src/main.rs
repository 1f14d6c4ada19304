use clap::Parser;

fn main() -> std::process::ExitCode {
    eddy_shared::runtime::block_on_main(
        notify_controller::NAME,
        notify_controller::run(notify_controller::Flags::parse()),
    )
}
