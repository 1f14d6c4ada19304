//! `eddy canary status|promote|abort|pause|resume`: reads a Canary and asks progressive-controller
//! to act on it through annotations; the controller answers in `status`. The status view, with its
//! text chart of `status.history`, is a pure function of the Canary.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::pin::pin;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use eddy_api::progressive::{
    ABORT_REQUESTED_AT, Canary, CanaryPhase, CanaryStatus, PAUSED, PROMOTE_REQUESTED_AT, StepRecord,
};
use futures::StreamExt as _;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;

use crate::install::parse_duration;

/// The field manager of the annotations, as the protocol with progressive-controller names it.
const FIELD_MANAGER: &str = "eddy";

/// `eddy canary` subcommands.
#[derive(Subcommand, Debug)]
pub enum CanaryCommand {
    /// Print a Canary's phase, weight and checks, and chart the weight and metric values of its
    /// steps.
    #[command(after_help = "Examples:\n  eddy canary status podinfo -n shop\n  \
                            eddy canary status podinfo -n shop --watch\n  \
                            eddy canary status podinfo -n shop -o json")]
    Status(StatusArgs),
    /// Answer the confirm gate the release waits at (confirm-rollout, confirm-traffic-increase or
    /// confirm-promotion) once, and wait until progressive-controller has taken the answer.
    #[command(after_help = "Example:\n  eddy canary promote podinfo -n shop --timeout 2m")]
    Promote(RequestArgs),
    /// Roll the current release back, and wait until progressive-controller has.
    #[command(after_help = "Example:\n  eddy canary abort podinfo -n shop")]
    Abort(RequestArgs),
    /// Hold the release at its current step; traffic stays where it is until `resume`.
    #[command(after_help = "Example:\n  eddy canary pause podinfo -n shop")]
    Pause(NameArgs),
    /// Let a paused release go on.
    #[command(after_help = "Example:\n  eddy canary resume podinfo -n shop")]
    Resume(NameArgs),
}

/// Flags of `eddy canary status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Name of the Canary.
    name: String,
    /// Print the status as data instead of text.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Print again on every change of the Canary, until interrupted.
    #[arg(short = 'w', long)]
    watch: bool,
}

/// How `status` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Text and a chart of the history.
    Text,
    /// `status` as YAML.
    Yaml,
    /// `status` as JSON.
    Json,
}

/// Flags of `eddy canary promote` and `abort`.
#[derive(Args, Debug)]
pub struct RequestArgs {
    /// Name of the Canary.
    name: String,
    /// How long to wait for progressive-controller to handle the request.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    timeout: Duration,
    /// Return once the request is made, without waiting for the controller.
    #[arg(long)]
    no_wait: bool,
    /// Print no progress on standard error.
    #[arg(long)]
    silent: bool,
}

/// Flags of `eddy canary pause` and `resume`.
#[derive(Args, Debug)]
pub struct NameArgs {
    /// Name of the Canary.
    name: String,
}

/// Runs an `eddy canary` command against the Canary in `namespace` (the client's default
/// namespace when unset).
pub async fn run(command: CanaryCommand, client: &Client, namespace: Option<&str>) -> anyhow::Result<ExitCode> {
    let namespace = namespace.unwrap_or(client.default_namespace());
    let target = |name: &str| Target {
        api: Api::namespaced(client.clone(), namespace),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    match command {
        CanaryCommand::Status(args) => target(&args.name).status(&args, Style::detect()).await?,
        CanaryCommand::Promote(args) => target(&args.name).request(Request::Promote, &args).await?,
        CanaryCommand::Abort(args) => target(&args.name).request(Request::Abort, &args).await?,
        CanaryCommand::Pause(args) => {
            let target = target(&args.name);
            target.annotate(PAUSED, Some("true")).await?;
            println!("✔ {} paused: the release holds at its current step", target.subject());
        }
        CanaryCommand::Resume(args) => {
            let target = target(&args.name);
            target.annotate(PAUSED, None).await?;
            println!("✔ {} resumed", target.subject());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A one-time request to progressive-controller: an annotation whose value is a fresh token, and
/// the status field where the controller records the token it handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    Promote,
    Abort,
}

impl Request {
    fn annotation(self) -> &'static str {
        match self {
            Request::Promote => PROMOTE_REQUESTED_AT,
            Request::Abort => ABORT_REQUESTED_AT,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Request::Promote => "promote",
            Request::Abort => "abort",
        }
    }

    fn handled_field(self) -> &'static str {
        match self {
            Request::Promote => "status.lastHandledPromoteAt",
            Request::Abort => "status.lastHandledAbortAt",
        }
    }

    /// The token the controller last handled for this kind of request.
    fn handled(self, canary: &Canary) -> Option<&str> {
        let status = canary.status.as_ref()?;
        match self {
            Request::Promote => status.last_handled_promote_at.as_deref(),
            Request::Abort => status.last_handled_abort_at.as_deref(),
        }
    }
}

/// A fresh request token: the time now, RFC 3339 with nanoseconds, so that two requests never
/// carry the same value.
fn request_token() -> String {
    format!("{:.9}", Timestamp::now())
}

/// The Canary a command is about.
struct Target {
    api: Api<Canary>,
    namespace: String,
    name: String,
}

impl Target {
    /// `Canary/<namespace>/<name>`, the subject of every message.
    fn subject(&self) -> String {
        format!("Canary/{}/{}", self.namespace, self.name)
    }

    /// Turns an API error into one that names the Canary.
    fn api_error(&self, doing: &str, err: kube::Error) -> anyhow::Error {
        match err {
            kube::Error::Api(status) if status.is_not_found() => {
                // A missing object comes back with its name in the details; a missing API without.
                if status.details.as_ref().is_some_and(|d| d.name == self.name) {
                    anyhow!("{} not found", self.subject())
                } else {
                    anyhow!(
                        "{} not found: the cluster serves no progressive.eddy.dev/v1alpha1 Canary API (are Eddy's CRDs installed?)",
                        self.subject()
                    )
                }
            }
            err => anyhow::Error::new(err).context(format!("{doing} {}", self.subject())),
        }
    }

    async fn get(&self) -> anyhow::Result<Canary> {
        self.api
            .get(&self.name)
            .await
            .map_err(|err| self.api_error("reading", err))
    }

    /// Sets (`Some`) or removes (`None`) one annotation with a merge patch.
    async fn annotate(&self, key: &str, value: Option<&str>) -> anyhow::Result<Canary> {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        self.api
            .patch(&self.name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|err| self.api_error(&format!("annotating {key} on"), err))
    }

    /// Events of a watch on this one Canary.
    fn watch(&self) -> impl futures::Stream<Item = Result<Event<Canary>, watcher::Error>> + use<> {
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        watcher::watcher(self.api.clone(), config).default_backoff()
    }

    /// `promote` and `abort`: sets the request's annotation to a fresh token and, unless
    /// `--no-wait`, waits on a watch until the controller records that token in status.
    async fn request(&self, request: Request, args: &RequestArgs) -> anyhow::Result<()> {
        let token = request_token();
        self.annotate(request.annotation(), Some(&token)).await?;
        let say = |text: &str| {
            if !args.silent {
                eprintln!("{text}");
            }
        };
        if args.no_wait {
            println!(
                "✔ {} {} requested ({}: {token})",
                self.subject(),
                request.verb(),
                request.annotation()
            );
            return Ok(());
        }
        say(&format!(
            "► {} {} requested; waiting up to {} for progressive-controller",
            self.subject(),
            request.verb(),
            format_duration(args.timeout)
        ));
        let deadline = tokio::time::Instant::now() + args.timeout;
        let mut events = pin!(self.watch());
        let mut last: Option<Canary> = None;
        let mut last_error: Option<String> = None;
        let mut listed = false;
        loop {
            let event = match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some(event)) => event,
                Ok(None) => bail!("the watch of {} ended", self.subject()),
                Err(_elapsed) => {
                    return Err(self.unanswered(request, &token, args.timeout, last.as_ref(), last_error));
                }
            };
            match event {
                Ok(Event::Apply(canary) | Event::InitApply(canary)) => {
                    listed = true;
                    if request.handled(&canary) == Some(token.as_str()) {
                        println!(
                            "✔ {} {} handled: {}",
                            self.subject(),
                            request.verb(),
                            phase_and_weight(canary.status.as_ref())
                        );
                        return Ok(());
                    }
                    let now = phase_and_weight(canary.status.as_ref());
                    if last.as_ref().is_none_or(|l| phase_and_weight(l.status.as_ref()) != now) {
                        say(&format!("  {now}"));
                    }
                    last = Some(canary);
                }
                Ok(Event::Delete(_)) => bail!(
                    "{} was deleted while waiting for its {} to be handled",
                    self.subject(),
                    request.verb()
                ),
                // A (re)list that finds nothing: the Canary went away.
                Ok(Event::Init) => listed = false,
                Ok(Event::InitDone) if !listed => bail!("{} not found", self.subject()),
                Ok(Event::InitDone) => {}
                Err(err) => last_error = Some(err.to_string()),
            }
        }
    }

    /// The error of a request nobody answered in time.
    fn unanswered(
        &self,
        request: Request,
        token: &str,
        timeout: Duration,
        last: Option<&Canary>,
        watch_error: Option<String>,
    ) -> anyhow::Error {
        let handled = last
            .and_then(|c| request.handled(c))
            .map_or("unset".to_owned(), |h| format!("{h:?}"));
        let mut message = format!(
            "{}: progressive-controller did not handle the {} within {} ({} is {token:?}, {} is {handled}); \
             is progressive-controller running and watching namespace {}?",
            self.subject(),
            request.verb(),
            format_duration(timeout),
            request.annotation(),
            request.handled_field(),
            self.namespace
        );
        if let Some(canary) = last {
            message.push_str(&format!(" The Canary is {}.", phase_and_weight(canary.status.as_ref())));
        }
        if let Some(err) = watch_error {
            message.push_str(&format!(" Last watch error: {err}."));
        }
        anyhow!(message)
    }

    /// `status`: prints once, then with `--watch` again whenever what it prints changes, driven
    /// by a watch on this one Canary.
    async fn status(&self, args: &StatusArgs, style: Style) -> anyhow::Result<()> {
        let canary = self.get().await?;
        let mut shown = render(&canary, args.output, args.watch, style)?;
        print!("{shown}");
        if !args.watch {
            return Ok(());
        }
        let mut events = pin!(self.watch());
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(canary) | Event::InitApply(canary)) => {
                    let now = render(&canary, args.output, args.watch, style)?;
                    if now != shown {
                        if args.output == Output::Text && style.terminal {
                            // Home and clear: the view replaces the previous one.
                            print!("\x1b[H\x1b[2J");
                        } else if args.output == Output::Text {
                            println!();
                        }
                        print!("{now}");
                        shown = now;
                    }
                }
                Ok(Event::Delete(_)) => bail!("{} was deleted", self.subject()),
                Ok(Event::Init | Event::InitDone) => {}
                Err(err) => eprintln!("watch of {}: {err} (retrying)", self.subject()),
            }
        }
        bail!("the watch of {} ended", self.subject())
    }
}

/// What `status` prints for `output`; data formats print `status` only, one JSON line per change
/// when watching.
fn render(canary: &Canary, output: Output, watching: bool, style: Style) -> anyhow::Result<String> {
    let status = match &canary.status {
        Some(status) => serde_json::to_value(status)?,
        None => json!({}),
    };
    Ok(match output {
        Output::Text => status_view(canary, style),
        Output::Json if watching => format!("{}\n", serde_json::to_string(&status)?),
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&status)?),
        Output::Yaml if watching => format!("---\n{}", serde_saphyr::to_string(&status)?),
        Output::Yaml => serde_saphyr::to_string(&status)?,
    })
}

/// `Progressing, canary weight 20%`.
fn phase_and_weight(status: Option<&CanaryStatus>) -> String {
    match status {
        Some(status) => format!("{}, canary weight {}%", phase_name(status.phase), status.canary_weight),
        None => "not reconciled yet".to_owned(),
    }
}

fn phase_name(phase: Option<CanaryPhase>) -> String {
    // The Debug names are the API's names.
    phase.map_or("-".to_owned(), |p| format!("{p:?}"))
}

/// `1m`, `90s`.
fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else if duration.subsec_millis() == 0 {
        format!("{seconds}s")
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// How the text view is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// Use ANSI colours.
    pub colour: bool,
    /// Columns the chart may use.
    pub width: usize,
    /// Standard output is a terminal (a watch redraws in place).
    pub terminal: bool,
}

/// The chart never gets narrower or wider than this, whatever the terminal says.
const MIN_WIDTH: usize = 48;
const MAX_WIDTH: usize = 200;
/// Without `COLUMNS` (shells rarely export it) the chart assumes this many columns.
const DEFAULT_WIDTH: usize = 100;
/// Steps shown as rows; the sparklines cover more.
const MAX_ROWS: usize = 24;

impl Style {
    /// Colour only on a terminal, and never when `NO_COLOR` is set (to any value: being asked
    /// for no colour wins over the convention that an empty value does not count).
    fn detect() -> Self {
        let terminal = std::io::stdout().is_terminal();
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(DEFAULT_WIDTH);
        Style {
            colour: terminal && std::env::var_os("NO_COLOR").is_none(),
            width: width.clamp(MIN_WIDTH, MAX_WIDTH),
            terminal,
        }
    }
}

/// The emphasis of a piece of text; only drawn with colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tone {
    Plain,
    Good,
    Bad,
    Bar,
    Dim,
}

impl Tone {
    fn code(self) -> &'static str {
        match self {
            Tone::Plain => "",
            Tone::Good => "\x1b[32m",
            Tone::Bad => "\x1b[31m",
            Tone::Bar => "\x1b[36m",
            Tone::Dim => "\x1b[2m",
        }
    }
}

/// One line of the view, made of toned pieces and cut to a width.
#[derive(Default)]
struct Line {
    parts: Vec<(String, Tone)>,
}

impl Line {
    fn push(&mut self, text: impl Into<String>, tone: Tone) -> &mut Self {
        self.parts.push((text.into(), tone));
        self
    }

    fn plain(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(text, Tone::Plain)
    }

    /// The line with at most `width` visible characters (the last one `…` when cut), trailing
    /// blanks dropped, and colour codes around toned pieces when `colour`.
    fn draw(&self, width: usize, colour: bool) -> String {
        let mut visible: Vec<(String, Tone)> = Vec::new();
        let mut left = width;
        for (text, tone) in &self.parts {
            let count = text.chars().count();
            if count <= left {
                visible.push((text.clone(), *tone));
                left -= count;
            } else {
                let cut: String = text.chars().take(left.saturating_sub(1)).chain(['…']).collect();
                visible.push((cut, *tone));
                break;
            }
        }
        // Trailing blanks, from the end, across pieces.
        while let Some((text, _)) = visible.last_mut() {
            let trimmed = text.trim_end().len();
            text.truncate(trimmed);
            if text.is_empty() {
                visible.pop();
            } else {
                break;
            }
        }
        let mut out = String::new();
        for (text, tone) in visible {
            if colour && tone != Tone::Plain {
                out.push_str(tone.code());
                out.push_str(&text);
                out.push_str("\x1b[0m");
            } else {
                out.push_str(&text);
            }
        }
        out
    }
}

/// The text view: the header, the checks, and the chart of the history.
fn status_view(canary: &Canary, style: Style) -> String {
    let status = canary.status.clone().unwrap_or_default();
    let analysis = canary.spec.analysis.as_ref();
    let subject = format!(
        "Canary/{}/{}",
        canary.namespace().unwrap_or_default(),
        canary.name_any()
    );
    let mut out = String::new();
    // The header and the checks are not cut: their messages are what a person acts on.
    let line = |out: &mut String, l: &Line| {
        out.push_str(&l.draw(usize::MAX, style.colour));
        out.push('\n');
    };
    let mut title = Line::default();
    title.plain(&subject);
    if canary.annotations().get(PAUSED).is_some_and(|v| v == "true") {
        title.push("  (paused)", Tone::Bad);
    }
    if canary.spec.suspend {
        title.push("  (suspended)", Tone::Bad);
    }
    line(&mut out, &title);
    if canary.status.is_none() {
        line(&mut out, Line::default().plain("  not reconciled yet"));
        return out;
    }
    let phase_tone = match status.phase {
        Some(CanaryPhase::Succeeded) => Tone::Good,
        Some(CanaryPhase::Failed) => Tone::Bad,
        _ => Tone::Plain,
    };
    line(
        &mut out,
        Line::default()
            .plain("  phase          ")
            .push(phase_name(status.phase), phase_tone),
    );
    line(
        &mut out,
        Line::default().plain(format!("  canary weight  {}%", status.canary_weight)),
    );
    let threshold = analysis.map_or(String::new(), |a| format!("/{}", a.threshold));
    let failed_tone = if status.failed_checks > 0 {
        Tone::Bad
    } else {
        Tone::Plain
    };
    line(
        &mut out,
        Line::default()
            .plain("  failed checks  ")
            .push(format!("{}{threshold}", status.failed_checks), failed_tone),
    );
    let planned = analysis
        .and_then(|a| a.iterations)
        .map_or(String::new(), |i| format!("/{i}"));
    line(
        &mut out,
        Line::default().plain(format!("  iterations     {}{planned}", status.iterations)),
    );
    for condition in &status.conditions {
        let tone = match (condition.type_.as_str(), condition.status.as_str()) {
            ("Ready", "True") => Tone::Good,
            ("Ready", "False") | ("Stalled", "True") => Tone::Bad,
            _ => Tone::Plain,
        };
        line(
            &mut out,
            Line::default()
                .plain(format!("  {:<14} ", condition.type_))
                .push(&condition.status, tone)
                .plain(format!(" {}: {}", condition.reason, condition.message)),
        );
    }
    if !status.last_checks.is_empty() {
        out.push_str("\nChecks (last values)\n");
        let name_width = status
            .last_checks
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0);
        for check in &status.last_checks {
            let (mark, tone) = if check.passed {
                ("✔", Tone::Good)
            } else {
                ("✗", Tone::Bad)
            };
            let value = check.value.map_or("-".to_owned(), format_value);
            let time = check.time.as_ref().map_or("-".to_owned(), |t| format!("{:.0}", t.0));
            let mut l = Line::default();
            l.plain("  ")
                .push(mark, tone)
                .plain(format!(" {:<name_width$}  {value:>9}  {time}", check.name));
            if let Some(message) = &check.message {
                l.plain("  ")
                    .push(message, if check.passed { Tone::Dim } else { Tone::Bad });
            }
            line(&mut out, &l);
        }
    }
    out.push('\n');
    out.push_str(&history_chart(&status.history, style));
    out
}

/// The chart of `history`: one row per step (time, phase, a bar of the weight, the metric values
/// with `✗` on failures), then a sparkline per series over every step. Every line fits
/// `style.width` (at least [`MIN_WIDTH`]); non-finite values print as `?`, never `NaN`.
fn history_chart(history: &[StepRecord], style: Style) -> String {
    let width = style.width.max(MIN_WIDTH);
    let mut out = String::new();
    let mut emit = |line: &Line| {
        out.push_str(&line.draw(width, style.colour));
        out.push('\n');
    };
    let (Some(first), Some(last)) = (history.first(), history.last()) else {
        emit(Line::default().plain("History: no steps recorded yet"));
        return out;
    };
    emit(Line::default().plain(format!(
        "History ({} steps, {} to {} UTC)",
        history.len(),
        first.time.0.strftime("%Y-%m-%d %H:%M:%S"),
        last.time.0.strftime("%H:%M:%S")
    )));

    let series: BTreeSet<&str> = history
        .iter()
        .flat_map(|s| s.values.keys().map(String::as_str))
        .collect();
    let rows = &history[history.len().saturating_sub(MAX_ROWS)..];
    let phase_width = rows
        .iter()
        .map(|s| phase_name(Some(s.phase)).len())
        .max()
        .unwrap_or(5)
        .max("phase".len());
    let bar_width = if width >= 90 { 20 } else { 10 };
    let fixed = 2 + 8 + 2 + phase_width + 2 + bar_width + 1 + 4;

    // Metric columns, as many as fit.
    let mut columns: Vec<(&str, String, usize)> = Vec::new();
    let mut used = fixed;
    for name in &series {
        let header = shorten(name, 16);
        let cells = rows.iter().map(|s| metric_cell(s, name).chars().count());
        let column_width = cells.chain([header.chars().count()]).max().unwrap_or(1);
        if used + 2 + column_width > width {
            break;
        }
        used += 2 + column_width;
        columns.push((name, header, column_width));
    }

    let mut header = Line::default();
    header.plain(format!(
        "  {:<8}  {:<phase_width$}  {:<bar_width$} {:>4}",
        "time", "phase", "weight", ""
    ));
    for (_, title, column_width) in &columns {
        header.plain(format!("  {title:>column_width$}"));
    }
    emit(&header);
    if rows.len() < history.len() {
        emit(Line::default().plain(format!(
            "  ({} earlier steps in the sparklines below)",
            history.len() - rows.len()
        )));
    }
    for step in rows {
        let filled = bar_cells(step.canary_weight, bar_width);
        let mut row = Line::default();
        row.plain(format!(
            "  {}  {:<phase_width$}  ",
            step.time.0.strftime("%H:%M:%S"),
            phase_name(Some(step.phase))
        ))
        .push("█".repeat(filled), Tone::Bar)
        .push("·".repeat(bar_width - filled), Tone::Dim)
        .plain(format!(" {:>3}%", step.canary_weight));
        for (name, _, column_width) in &columns {
            let cell = metric_cell(step, name);
            let tone = if step.failed.iter().any(|f| f == name) {
                Tone::Bad
            } else {
                Tone::Plain
            };
            row.plain("  ").push(format!("{cell:>column_width$}"), tone);
        }
        // Failures of checks without a column (webhooks, or metrics that did not fit).
        let others: Vec<&str> = step
            .failed
            .iter()
            .map(String::as_str)
            .filter(|f| !columns.iter().any(|(name, _, _)| name == f))
            .collect();
        if !others.is_empty() {
            row.plain("  ").push(format!("✗ {}", others.join(", ")), Tone::Bad);
        }
        emit(&row);
    }

    // Sparklines over the most recent steps that fit.
    let label_width = series
        .iter()
        .map(|s| s.chars().count().min(24))
        .chain(["weight".len()])
        .max()
        .unwrap_or(6);
    let spark_room = width.saturating_sub(2 + label_width + 2 + 2 + 28).max(8);
    let shown = &history[history.len().saturating_sub(spark_room)..];
    emit(&Line::default());
    emit(Line::default().plain(format!("Trends (last {} steps, oldest left)", shown.len())));
    let weights: Vec<Option<f64>> = shown.iter().map(|s| Some(f64::from(s.canary_weight))).collect();
    let mut weight_line = Line::default();
    weight_line
        .plain(format!("  {:<label_width$}  ", "weight"))
        .push(sparkline(&weights, Some((0.0, 100.0))), Tone::Bar)
        .plain(format!(
            "  {}% → {}%",
            shown.first().map_or(0, |s| s.canary_weight),
            shown.last().map_or(0, |s| s.canary_weight)
        ));
    emit(&weight_line);
    for name in &series {
        let values: Vec<Option<f64>> = shown
            .iter()
            .map(|s| s.values.get(*name).copied().filter(|v| v.is_finite()))
            .collect();
        let failed: Vec<bool> = shown.iter().map(|s| s.failed.iter().any(|f| f == name)).collect();
        let finite: Vec<f64> = values.iter().flatten().copied().collect();
        let mut l = Line::default();
        l.plain(format!("  {:<label_width$}  ", shorten(name, label_width)));
        let spark = sparkline(&values, None);
        for (block, failed) in spark.chars().zip(&failed) {
            l.push(block.to_string(), if *failed { Tone::Bad } else { Tone::Plain });
        }
        let last_value = values.iter().rev().flatten().next().copied();
        l.plain(format!(
            "  last {}  min {}  max {}",
            last_value.map_or("-".to_owned(), format_value),
            finite
                .iter()
                .copied()
                .reduce(f64::min)
                .map_or("-".to_owned(), format_value),
            finite
                .iter()
                .copied()
                .reduce(f64::max)
                .map_or("-".to_owned(), format_value),
        ));
        emit(&l);
        if failed.contains(&true) {
            let marks: String = failed.iter().map(|f| if *f { '✗' } else { ' ' }).collect();
            let count = failed.iter().filter(|f| **f).count();
            emit(
                Line::default()
                    .plain(format!("  {:<label_width$}  ", ""))
                    .push(marks, Tone::Bad)
                    .plain(format!("  {count} failed")),
            );
        }
    }
    out
}

/// Cells of a `width`-cell bar that `weight` percent fill.
fn bar_cells(weight: i32, width: usize) -> usize {
    let weight = usize::try_from(weight.clamp(0, 100)).unwrap_or(0);
    (weight * width + 50) / 100
}

/// A metric's cell in a row: its value, `✗` when its check failed, `-` without a value.
fn metric_cell(step: &StepRecord, name: &str) -> String {
    let value = step.values.get(name).map_or("-".to_owned(), |v| format_value(*v));
    if step.failed.iter().any(|f| f == name) {
        format!("{value} ✗")
    } else {
        value
    }
}

/// One block character per value, scaled to `range` or to the values' own minimum and maximum;
/// a missing value is a blank, a flat series sits mid-height.
fn sparkline(values: &[Option<f64>], range: Option<(f64, f64)>) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite = || values.iter().flatten().copied().filter(|v| v.is_finite());
    let (low, high) = range.unwrap_or_else(|| {
        (
            finite().reduce(f64::min).unwrap_or(0.0),
            finite().reduce(f64::max).unwrap_or(0.0),
        )
    });
    // Halved, so that the span of values near ±f64::MAX stays finite.
    let span = high * 0.5 - low * 0.5;
    values
        .iter()
        .map(|value| match value {
            Some(v) if v.is_finite() => {
                let level = (v * 0.5 - low * 0.5) / span;
                if span > 0.0 && level.is_finite() {
                    // In 0..=7 by the clamp; the cast cannot lose anything.
                    BLOCKS[(level.clamp(0.0, 1.0) * 7.0).round() as usize]
                } else {
                    BLOCKS[3]
                }
            }
            _ => ' ',
        })
        .collect()
}

/// A value in at most about nine characters: four significant digits, no trailing zeros,
/// exponent notation for the very large and very small, `?` for what is not a number.
fn format_value(value: f64) -> String {
    if !value.is_finite() {
        return "?".to_owned();
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(0.001..1e6).contains(&magnitude) {
        return format!("{value:.2e}");
    }
    let decimals = match magnitude {
        m if m >= 1000.0 => 0,
        m if m >= 100.0 => 1,
        m if m >= 1.0 => 2,
        _ => 3,
    };
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    if text == "-0" { "0".to_owned() } else { text }
}

/// `name` cut to `max` characters, the last one `…` when cut.
fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_owned()
    } else {
        name.chars().take(max.saturating_sub(1)).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::Parser as _;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn step(minute: u32, phase: CanaryPhase, weight: i32, values: &[(&str, f64)], failed: &[&str]) -> StepRecord {
        StepRecord {
            time: Time(format!("2026-05-01T10:{minute:02}:00Z").parse().unwrap()),
            phase,
            canary_weight: weight,
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>(),
            failed: failed.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    fn plain(width: usize) -> Style {
        Style {
            colour: false,
            width,
            terminal: false,
        }
    }

    fn release() -> Vec<StepRecord> {
        use CanaryPhase::*;
        vec![
            step(0, Progressing, 10, &[("latency", 412.0), ("success-rate", 99.9)], &[]),
            step(1, Progressing, 20, &[("latency", 480.5), ("success-rate", 99.5)], &[]),
            step(
                2,
                Progressing,
                20,
                &[("latency", 612.0), ("success-rate", 99.2)],
                &["latency", "load-test"],
            ),
            step(3, Progressing, 30, &[("latency", 455.0), ("success-rate", 99.7)], &[]),
            step(
                4,
                WaitingPromotion,
                50,
                &[("latency", 430.0), ("success-rate", 99.8)],
                &[],
            ),
        ]
    }

    #[test]
    fn history_chart_draws_a_row_per_step_with_a_weight_bar_values_and_failures() {
        let chart = history_chart(&release(), plain(100));
        let expected = "\
History (5 steps, 2026-05-01 10:00:00 to 10:04:00 UTC)
  time      phase             weight                     latency  success-rate
  10:00:00  Progressing       ██··················  10%      412          99.9
  10:01:00  Progressing       ████················  20%    480.5          99.5
  10:02:00  Progressing       ████················  20%    612 ✗          99.2  ✗ load-test
  10:03:00  Progressing       ██████··············  30%      455          99.7
  10:04:00  WaitingPromotion  ██████████··········  50%      430          99.8

Trends (last 5 steps, oldest left)
  weight        ▂▂▂▃▅  10% → 50%
  latency       ▁▃█▃▂  last 430  min 412  max 612
                  ✗    1 failed
  success-rate  █▄▁▆▇  last 99.8  min 99.2  max 99.9
";
        assert_eq!(chart, expected, "\n{chart}");
    }

    #[test]
    fn chart_lines_stay_within_the_width() {
        let mut history = release();
        for (i, s) in history.iter_mut().enumerate() {
            for n in 0..12 {
                s.values
                    .insert(format!("a-very-long-metric-name-number-{n}"), 1e9 * (i as f64 + 1.0));
            }
            s.failed
                .push("a-webhook-with-a-remarkably-long-name-that-never-ends".into());
        }
        // More steps than any sparkline is wide.
        let many: Vec<StepRecord> = (0..300).map(|i| history[i % history.len()].clone()).collect();
        for width in [MIN_WIDTH, 60, 80, 100, 120, 160, MAX_WIDTH] {
            for colour in [false, true] {
                let style = Style {
                    colour,
                    width,
                    terminal: false,
                };
                let chart = history_chart(&many, style);
                for line in chart.lines() {
                    let visible = strip_colour(line).chars().count();
                    assert!(visible <= width, "{visible} > {width}: {line}");
                }
            }
        }
        // A terminal narrower than the minimum gets the minimum.
        let chart = history_chart(&history, plain(10));
        assert!(chart.lines().all(|l| l.chars().count() <= MIN_WIDTH), "{chart}");
    }

    fn strip_colour(line: &str) -> String {
        let mut out = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn colour_codes_only_when_asked() {
        let mut canary = Canary::new("podinfo", serde_json::from_value(example_spec()).unwrap());
        canary.metadata.namespace = Some("shop".into());
        canary.status = Some(CanaryStatus {
            phase: Some(CanaryPhase::Failed),
            failed_checks: 2,
            history: release(),
            ..CanaryStatus::default()
        });
        let plain_view = status_view(&canary, plain(100));
        assert!(!plain_view.contains('\x1b'), "{plain_view}");
        let coloured = status_view(
            &canary,
            Style {
                colour: true,
                ..plain(100)
            },
        );
        assert!(coloured.contains("\x1b[31m"), "{coloured}");
        assert_eq!(strip_colour(&coloured), plain_view);
    }

    #[test]
    fn values_that_are_not_numbers_never_print_nan() {
        let history = vec![
            step(0, CanaryPhase::Progressing, 10, &[("m", f64::NAN)], &["m"]),
            step(1, CanaryPhase::Progressing, 20, &[("m", f64::INFINITY)], &[]),
            step(2, CanaryPhase::Progressing, 30, &[("m", 1.0), ("flat", 5.0)], &[]),
            step(
                3,
                CanaryPhase::Progressing,
                40,
                &[("m", f64::NEG_INFINITY), ("flat", 5.0)],
                &[],
            ),
            step(4, CanaryPhase::Progressing, 50, &[("m", f64::MAX), ("flat", 5.0)], &[]),
            step(5, CanaryPhase::Progressing, 60, &[("m", -f64::MAX)], &[]),
        ];
        let chart = history_chart(&history, plain(100));
        for bad in ["NaN", "nan", "inf"] {
            assert!(!chart.contains(bad), "{bad} in\n{chart}");
        }
        assert!(
            chart.contains("  ▄▄▄   last 5  min 5  max 5"),
            "a flat series sits mid-height:\n{chart}"
        );
        assert!(
            chart.contains("  ▅ █▁  last "),
            "extremes scale without overflow:\n{chart}"
        );
    }

    #[test]
    fn an_empty_history_says_so() {
        assert_eq!(history_chart(&[], plain(80)), "History: no steps recorded yet\n");
    }

    #[test]
    fn values_print_short() {
        assert_eq!(format_value(99.5), "99.5");
        assert_eq!(format_value(412.0), "412");
        assert_eq!(format_value(0.01), "0.01");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(-0.0001), "-1.00e-4");
        assert_eq!(format_value(123_456.7), "123457");
        assert_eq!(format_value(2.5e9), "2.50e9");
        assert_eq!(format_value(f64::NAN), "?");
    }

    #[test]
    fn weight_bars_are_bounded() {
        assert_eq!(bar_cells(0, 20), 0);
        assert_eq!(bar_cells(50, 20), 10);
        assert_eq!(bar_cells(100, 20), 20);
        assert_eq!(bar_cells(250, 20), 20);
        assert_eq!(bar_cells(-5, 20), 0);
    }

    #[test]
    fn request_tokens_are_rfc3339_with_nanoseconds() {
        let token = request_token();
        let parsed: Timestamp = token.parse().unwrap();
        assert_eq!(format!("{parsed:.9}"), token);
        let fraction = token.split('.').nth(1).unwrap();
        assert_eq!(fraction.len(), "123456789Z".len(), "{token}");
        assert_ne!(request_token(), request_token());
    }

    #[test]
    fn the_canary_namespace_is_unset_unless_given() {
        let cli = crate::Cli::try_parse_from(["eddy", "canary", "promote", "podinfo"]).unwrap();
        assert_eq!(cli.cluster.namespace, None);
        let cli = crate::Cli::try_parse_from([
            "eddy",
            "canary",
            "promote",
            "podinfo",
            "-n",
            "shop",
            "--timeout",
            "30s",
            "--kubeconfig",
            "/tmp/kc",
        ])
        .unwrap();
        assert_eq!(cli.cluster.namespace.as_deref(), Some("shop"));
        let crate::Command::Canary(CanaryCommand::Promote(args)) = cli.command else {
            panic!("not a promote");
        };
        assert_eq!(args.timeout, Duration::from_secs(30));
        assert_eq!(cli.cluster.controllers_namespace(), "shop");
        let cli = crate::Cli::try_parse_from(["eddy", "check"]).unwrap();
        assert_eq!(cli.cluster.controllers_namespace(), "eddy-system");
    }

    fn example_spec() -> serde_json::Value {
        json!({
            "targetRef": {"kind": "Deployment", "name": "podinfo"},
            "provider": "gatewayapi",
            "service": {"port": 9898},
            "analysis": {"threshold": 5},
        })
    }
}
