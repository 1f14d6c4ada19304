//! A TCP relay on 127.0.0.1 that delivers every byte, in both directions, a fixed time after it
//! arrives: a slow network between a client and the local apiserver, for tests that show work
//! proceeding in parallel rather than one request after another. It adds latency, never
//! serialisation: each direction reads on while earlier bytes wait out their delay. TLS passes
//! through untouched, so the apiserver's certificate still verifies.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The relay; dropping it stops accepting (connections in flight end with their peers).
pub struct LatencyRelay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl LatencyRelay {
    /// Relays to the apiserver of `kubeconfig`, adding `latency` each way, and writes a kubeconfig
    /// that reaches the apiserver through the relay.
    pub async fn to_apiserver(kubeconfig: &Path, latency: Duration) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(kubeconfig)?;
        let server = crate::kubeconfig_server(&text)?;
        let upstream: SocketAddr = server
            .trim_start_matches("https://")
            .parse()
            .with_context(|| format!("the apiserver address {server}"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, latency).await;
                    }
                });
            }
        });
        let dir = tempfile::tempdir()?;
        let relayed = dir.path().join("kubeconfig");
        std::fs::write(&relayed, text.replace(&server, &format!("https://{addr}")))?;
        Ok(Self {
            addr,
            task,
            _dir: dir,
            kubeconfig: relayed,
        })
    }

    /// The relay's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig that reaches the apiserver through the relay.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
}

impl Drop for LatencyRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, latency: Duration) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        delayed(client_read, server_write, latency),
        delayed(server_read, client_write, latency)
    );
}

/// Copies `from` to `to`, each chunk `latency` after it was read.
async fn delayed(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, latency: Duration) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if chunks.send((Instant::now() + latency, buffer[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
