//! A second kube-apiserver of the local control plane, on its own loopback port and sharing the
//! control plane's etcd, that a test can stop and start again. Kubernetes runs several apiservers
//! on one etcd by design (high availability), so a controller given [`SecondApiserver::kubeconfig`]
//! sees a real apiserver go away and come back, while the other tests keep using the first one.
//!
//! It runs the local control plane's own binary with the first apiserver's arguments, read from
//! its process, except for the port; it leaves the `kubernetes` Service's endpoints to the first.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The second apiserver. Dropping it stops it.
pub struct SecondApiserver {
    command: Vec<OsString>,
    port: u16,
    child: Option<Child>,
    kubeconfig: PathBuf,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl SecondApiserver {
    /// Starts a second apiserver of the control plane whose kubeconfig is `kubeconfig`, waits
    /// until it is ready, and writes a kubeconfig that reaches it.
    pub async fn start(kubeconfig: &Path) -> anyhow::Result<Self> {
        let pid_file = kubeconfig
            .parent()
            .context("the kubeconfig has no directory")?
            .join("kwok/clusters/eddy/pids/kube-apiserver.pid");
        let pid = std::fs::read_to_string(&pid_file).with_context(|| format!("reading {}", pid_file.display()))?;
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
            .context("reading the first apiserver's command line")?;
        let port = crate::free_port().port();
        let mut command: Vec<OsString> = cmdline
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| {
                let arg = String::from_utf8_lossy(arg);
                match arg.strip_prefix("--secure-port=") {
                    Some(_) => format!("--secure-port={port}").into(),
                    None => arg.into_owned().into(),
                }
            })
            .collect();
        if !command
            .iter()
            .any(|a| a.to_string_lossy().starts_with("--secure-port="))
        {
            bail!("the first apiserver's command line names no --secure-port");
        }
        command.push("--endpoint-reconciler-type=none".into());

        let text = std::fs::read_to_string(kubeconfig)?;
        let server = crate::kubeconfig_server(&text)?;
        let dir = tempfile::tempdir()?;
        let second = dir.path().join("kubeconfig");
        std::fs::write(&second, text.replace(&server, &format!("https://127.0.0.1:{port}")))?;

        // Readiness is asked with the admin identity of the kubeconfig (its key files).
        let file = |key: &str| -> anyhow::Result<Vec<u8>> {
            let path = text
                .lines()
                .find_map(|line| line.trim().strip_prefix(key))
                .with_context(|| format!("no {key} in the kubeconfig"))?
                .trim();
            std::fs::read(path).with_context(|| format!("reading {path}"))
        };
        eddy_runtime::install_crypto_provider();
        let mut identity = file("client-certificate: ")?;
        identity.extend(file("client-key: ")?);
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&file("certificate-authority: ")?)?)
            .identity(reqwest::Identity::from_pem(&identity)?)
            .timeout(Duration::from_secs(2))
            .build()?;

        let mut apiserver = Self {
            command,
            port,
            child: None,
            kubeconfig: second,
            client,
            dir,
        };
        apiserver.start_again().await?;
        Ok(apiserver)
    }

    /// A kubeconfig that reaches this apiserver.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Stops the apiserver (SIGKILL, as in a crash) and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the apiserver again on the same port and waits until it is ready.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.stop();
        let log = std::fs::File::create(self.log())?;
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the second apiserver")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let readyz = format!("https://127.0.0.1:{}/readyz", self.port);
        loop {
            if let Ok(response) = self.client.get(&readyz).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                bail!("the second apiserver exited ({status}):\n{}", self.logs());
            }
            if Instant::now() > deadline {
                bail!("the second apiserver was not ready within 60 s:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("kube-apiserver.log")
    }

    /// The end of what the apiserver logged.
    fn logs(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for SecondApiserver {
    fn drop(&mut self) {
        self.stop();
    }
}
