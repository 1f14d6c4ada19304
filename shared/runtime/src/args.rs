//! The flags every controller binary shares. Each has an environment fallback (`EDDY_*`) so that
//! Deployments can configure controllers without editing their command lines.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

use eddy_api::meta::Duration;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines.
    Text,
}

/// Start-up, leadership, observability and scope flags shared by every controller.
#[derive(Args, Clone, Debug)]
pub struct RuntimeArgs {
    /// Log format.
    #[arg(long, env = "EDDY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Log level or filter directives (`info`, `debug`, `eddy_apply=debug,info`).
    #[arg(long, env = "EDDY_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "EDDY_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Address of the `/healthz` and `/readyz` probes.
    #[arg(long, env = "EDDY_HEALTH_ADDR", default_value = "0.0.0.0:9440")]
    pub health_addr: SocketAddr,

    /// Reconcile only while holding the leader Lease, so that replicas can stand by.
    #[arg(long, env = "EDDY_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the leader Lease; the controller's name when unset.
    #[arg(long, env = "EDDY_LEADER_ELECTION_LEASE_NAME")]
    pub leader_election_lease_name: Option<String>,

    /// Namespace of the leader Lease; the pod's namespace (`POD_NAMESPACE`) or `eddy-system`.
    #[arg(long, env = "EDDY_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// How long a Lease holds without renewal before another replica may take it.
    #[arg(long, env = "EDDY_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: std::time::Duration,

    /// Reconciles run at once per kind.
    #[arg(long, env = "EDDY_CONCURRENT", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrent: u16,

    /// Watch only this namespace; all namespaces when unset.
    #[arg(long, env = "EDDY_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Watch only objects matching this label selector, to shard objects across controller
    /// instances (e.g. `sharding.eddy.dev/key=shard1`, or `!sharding.eddy.dev/key` for the rest).
    #[arg(long, env = "EDDY_WATCH_LABEL_SELECTOR")]
    pub watch_label_selector: Option<String>,

    /// notify-controller's event endpoint, e.g. `http://notify-controller.eddy-system/`. Events
    /// are only recorded in Kubernetes when unset.
    #[arg(long, env = "EDDY_EVENTS_ADDR")]
    pub events_addr: Option<reqwest::Url>,

    /// How long in-flight reconciles may run after a shutdown signal.
    #[arg(long, env = "EDDY_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_timeout: std::time::Duration,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    Duration::parse(text)
        .and_then(|d| d.to_std())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        runtime: RuntimeArgs,
    }

    #[test]
    fn defaults_elect_a_leader_and_log_json() {
        let flags = Flags::try_parse_from(["controller"]).unwrap();
        assert!(flags.runtime.leader_elect);
        assert_eq!(flags.runtime.log_format, LogFormat::Json);
        assert_eq!(flags.runtime.concurrent, 4);
        assert_eq!(flags.runtime.leader_election_lease_duration.as_secs(), 15);
    }

    #[test]
    fn flags_override_defaults() {
        let flags = Flags::try_parse_from([
            "controller",
            "--leader-elect=false",
            "--log-format=text",
            "--watch-label-selector=sharding.eddy.dev/key=shard1",
            "--shutdown-timeout=1m30s",
        ])
        .unwrap();
        assert!(!flags.runtime.leader_elect);
        assert_eq!(flags.runtime.log_format, LogFormat::Text);
        assert_eq!(
            flags.runtime.watch_label_selector.as_deref(),
            Some("sharding.eddy.dev/key=shard1")
        );
        assert_eq!(flags.runtime.shutdown_timeout.as_secs(), 90);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let err = Flags::try_parse_from(["controller", "--concurrent=0"]).err().unwrap();
        assert!(err.to_string().contains("--concurrent"), "{err}");
        let err = Flags::try_parse_from(["controller", "--shutdown-timeout=abc"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }
}
