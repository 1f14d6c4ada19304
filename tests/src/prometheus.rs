//! A real Prometheus for tests: Debian's `prometheus` (`/usr/bin/prometheus`, package
//! prometheus) on 127.0.0.1 with its TSDB in a temporary directory, scraping the given targets
//! every second with static configurations that carry each target's labels. It can be killed
//! mid-test and started again on the same port and data; dropping it stops the process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::free_port;

/// The binary CI installs with `apt-get install prometheus`.
const BINARY: &str = "/usr/bin/prometheus";

/// How long a start may take: replaying the WAL after a restart included.
const START_LIMIT: Duration = Duration::from_secs(30);

/// An HTTP endpoint Prometheus scrapes (`GET /metrics`), with the labels its series get.
#[derive(Clone, Debug)]
pub struct ScrapeTarget {
    /// `127.0.0.1:<port>` of the exporter.
    pub address: SocketAddr,
    /// Labels added to every series scraped from it, e.g. `namespace` and `workload`.
    pub labels: BTreeMap<String, String>,
}

impl ScrapeTarget {
    /// A target at `address` with `labels`.
    pub fn new(address: SocketAddr, labels: &[(&str, &str)]) -> Self {
        Self {
            address,
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }
}

/// A running (or killed) Prometheus.
pub struct Prometheus {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second, and waits until it is ready.
    pub async fn start(targets: &[ScrapeTarget]) -> anyhow::Result<Self> {
        if !std::path::Path::new(BINARY).exists() {
            bail!("{BINARY} is missing: install Debian's prometheus package (apt-get install prometheus)");
        }
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("prometheus.yml"), config(targets))?;
        let mut prometheus = Self {
            addr: free_port(),
            dir,
            child: None,
        };
        prometheus.spawn().await?;
        Ok(prometheus)
    }

    /// `http://127.0.0.1:<port>`: the address a metrics client is given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the process (SIGKILL, as a crash or an evicted pod) and waits until it is gone: its
    /// port refuses connections from then on.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process; the same as [`kill`](Self::kill), under the name a test reads best.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the process again (after [`kill`](Self::kill), or kills it first) on the same port
    /// with the same configuration and data, and waits until it is ready.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn().await
    }

    /// Replaces the scrape targets and reloads the configuration (`POST /-/reload`, which
    /// `--web.enable-lifecycle` allows).
    pub async fn set_targets(&self, targets: &[ScrapeTarget]) -> anyhow::Result<()> {
        std::fs::write(self.dir.path().join("prometheus.yml"), config(targets))?;
        let response = reqwest::Client::new()
            .post(format!("{}/-/reload", self.url()))
            .send()
            .await
            .context("reloading Prometheus")?;
        if !response.status().is_success() {
            bail!(
                "Prometheus refused the reload: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The `data` of an instant query's answer (`{"resultType": ..., "result": ...}`).
    pub async fn query(&self, query: &str) -> anyhow::Result<serde_json::Value> {
        let answer: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", query)])
            .send()
            .await?
            .json()
            .await?;
        if answer["status"] != "success" {
            bail!("query {query} failed: {answer}");
        }
        Ok(answer["data"].clone())
    }

    /// Waits until `query` returns at least `count` samples (e.g. `up == 1` for every target, or
    /// enough scrapes for a rate), for at most `limit`.
    pub async fn wait_for_samples(&self, query: &str, count: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(data) = self.query(query).await
                && data["result"].as_array().is_some_and(|result| result.len() >= count)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{query} did not return {count} sample(s) within {limit:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(BINARY)
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={}", self.addr))
            .arg("--web.enable-lifecycle")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {BINARY}"))?;
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url());
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(response) = client.get(&ready).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if !self.is_running() {
                bail!("prometheus exited at start; log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                self.kill();
                bail!("prometheus was not ready within {START_LIMIT:?}; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The configuration: scrape every second, one static configuration per target (JSON, which is
/// YAML too).
fn config(targets: &[ScrapeTarget]) -> String {
    let static_configs: Vec<serde_json::Value> = targets
        .iter()
        .map(|target| {
            serde_json::json!({
                "targets": [target.address.to_string()],
                "labels": target.labels,
            })
        })
        .collect();
    serde_json::json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "workloads",
            "metrics_path": "/metrics",
            "static_configs": static_configs,
        }],
    })
    .to_string()
}
