//! Debian's `docker-registry` (distribution v2) on 127.0.0.1 with filesystem storage in a
//! temporary directory. Dropping it stops the registry.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::free_port;

/// A running registry.
pub struct Registry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    storage: tempfile::TempDir,
    child: Child,
}

impl Registry {
    /// Starts an open registry and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// Starts a registry that requires `user` and `password` (htpasswd with bcrypt, written by
    /// Debian's apache2-utils `htpasswd`) when given, and waits until it answers.
    pub async fn start_with(credentials: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let storage = tempfile::tempdir()?;
        let host = free_port().to_string();
        let mut auth = String::new();
        if let Some((user, password)) = credentials {
            let htpasswd = storage.path().join("htpasswd");
            let output = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .context("running htpasswd (Debian package apache2-utils)")?;
            anyhow::ensure!(output.status.success(), "htpasswd failed");
            std::fs::write(&htpasswd, output.stdout)?;
            auth = format!(
                "auth:\n  htpasswd:\n    realm: eddy-tests\n    path: {}\n",
                htpasswd.display()
            );
        }
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{auth}",
                storage.path().join("data").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry (Debian package docker-registry)")?;
        let registry = Self { host, storage, child };
        for _ in 0..100 {
            // 401 is an answer too: the registry is up and asks for credentials.
            if let Ok(response) = reqwest::get(format!("http://{}/v2/", registry.host)).await
                && (response.status().is_success() || response.status() == reqwest::StatusCode::UNAUTHORIZED)
            {
                return Ok(registry);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("docker-registry did not answer on {}", registry.host)
    }

    /// The stored file of blob `digest` (`sha256:<hex>`), to corrupt it in tests.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
