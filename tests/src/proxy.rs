//! A TCP relay in front of the local kube-apiserver, on 127.0.0.1, that a test can cut and
//! restore: a controller given [`ApiserverRelay::kubeconfig`] loses the apiserver exactly as it
//! would if the apiserver stopped (connections reset, new ones refused), while the other tests
//! keep using the apiserver directly. TLS passes through untouched.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The relay. Dropping it stops it.
pub struct ApiserverRelay {
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl ApiserverRelay {
    /// Starts a relay to the apiserver of `kubeconfig` and writes a kubeconfig that goes
    /// through it.
    pub async fn start(kubeconfig: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(kubeconfig)?;
        let server = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("server: https://"))
            .ok_or_else(|| anyhow::anyhow!("no https server in {}", kubeconfig.display()))?
            .trim()
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let dir = tempfile::tempdir()?;
        let relayed = dir.path().join("kubeconfig");
        std::fs::write(
            &relayed,
            text.replace(&format!("https://{server}"), &format!("https://{local}")),
        )?;

        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let task = {
            let up = up.clone();
            let cuts = generation.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !up.load(Ordering::Acquire) {
                        drop(client);
                        continue;
                    }
                    let server = server.clone();
                    let mut cut = cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(upstream) = TcpStream::connect(&server).await else {
                            return;
                        };
                        let (mut client, mut upstream) = (client, upstream);
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Ok(Self {
            up,
            generation,
            task,
            kubeconfig: relayed,
            _dir: dir,
        })
    }

    /// The kubeconfig that reaches the apiserver through the relay.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Drops every open connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.up.store(false, Ordering::Release);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::Release);
    }
}

impl Drop for ApiserverRelay {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
