//! Leader election on a `coordination.k8s.io` Lease, through kube-lease-manager. One background
//! task keeps competing for and renewing the Lease and publishes whether this instance holds it;
//! dropping the channel makes the task release the Lease.

use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::RuntimeArgs;

/// The namespace of the Lease when neither the flag nor `POD_NAMESPACE` names one.
const DEFAULT_NAMESPACE: &str = "eddy-system";

/// This process's identity as a Lease holder: the host (pod) name and the process id.
pub(super) fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}_{}", std::process::id())
}

/// A Lease this process competes for.
pub(super) struct Lease {
    manager: LeaseManager,
    description: String,
}

/// The running competition for a Lease.
pub(super) struct Leadership {
    leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, kube_lease_manager::LeaseManagerError>>,
    description: String,
}

impl Lease {
    pub(super) async fn new(
        client: Client,
        controller: &str,
        args: &RuntimeArgs,
        identity: String,
    ) -> anyhow::Result<Self> {
        let name = args
            .leader_election_lease_name
            .clone()
            .unwrap_or_else(|| controller.to_owned());
        let namespace = args
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let description = format!("Lease/{namespace}/{name}");
        let duration = args.leader_election_lease_duration.as_secs().max(2);
        // Renew a third of the duration before expiry, as client-go's defaults do (15s / 10s).
        let grace = (duration / 3).max(1);
        let manager = LeaseManagerBuilder::new(client, &name)
            .with_namespace(&namespace)
            .with_identity(identity)
            .with_duration(duration)
            .with_grace(grace)
            .with_field_manager(format!("{controller}-leader-election"))
            .build()
            .await
            .with_context(|| format!("preparing {description} for leader election"))?;
        Ok(Self { manager, description })
    }

    /// `Lease/<namespace>/<name>`.
    pub(super) fn describe(&self) -> &str {
        &self.description
    }

    /// Starts competing for the Lease.
    pub(super) async fn watch(self) -> Leadership {
        let (leading, task) = self.manager.watch().await;
        Leadership {
            leading,
            task,
            description: self.description,
        }
    }
}

impl Leadership {
    /// Returns once this instance holds the Lease; an error if the competition stopped.
    pub(super) async fn wait_for_leadership(&mut self) -> anyhow::Result<()> {
        self.leading
            .wait_for(|leading| *leading)
            .await
            .map(|_| ())
            .map_err(|_| anyhow::anyhow!("leader election for {} stopped unexpectedly", self.description))
    }

    /// Returns once this instance no longer holds the Lease.
    pub(super) async fn wait_for_loss(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Stops competing and releases the Lease if held, waiting up to `bound`.
    pub(super) async fn release(self, bound: Duration) {
        drop(self.leading);
        match tokio::time::timeout(bound, self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!(lease = %self.description, "released the leader Lease"),
            Ok(Ok(Err(err))) => {
                tracing::warn!(lease = %self.description, error = %err, "releasing the leader Lease failed")
            }
            Ok(Err(err)) => tracing::warn!(lease = %self.description, error = %err, "leader election task failed"),
            Err(_) => tracing::warn!(lease = %self.description, "releasing the leader Lease timed out"),
        }
    }
}
