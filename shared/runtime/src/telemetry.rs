//! Structured logging through `tracing`, as JSON lines or human-readable text.

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use super::LogFormat;

/// Installs the global subscriber. `level` is a level or `EnvFilter` directives.
pub(super) fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(level).with_context(|| format!("--log-level {level:?} is not a level or filter"))?;
    // Colours only for a person at a terminal: a log file or collector gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|err| anyhow::anyhow!("installing the log subscriber: {err}"))
}
