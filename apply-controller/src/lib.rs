//! apply-controller: takes a source Artifact to live objects and keeps them there.
//!
//! A Kustomization is reconciled by [`reconcile`]: gates (deletion, suspend, source, dependencies),
//! then fetch and verify the artifact, render it with the native kustomize engine ([`render`]),
//! substitute variables ([`substitute`]), server-side apply in stages, record the inventory,
//! prune, and check health. What the last apply left is remembered ([`applied`]) and compared with
//! a watch cache of the applied objects, so that a reconcile with nothing to do makes no API call,
//! and a change of an applied object by someone else is corrected when it happens
//! ([`drift_watch`]).

pub mod applied;
pub mod drift_watch;
pub mod ignore;
pub mod impersonation;
pub mod plan;
pub mod reconcile;
pub mod render;
pub mod select;
pub mod sources;
pub mod substitute;

use std::sync::Arc;
use std::time::Duration;

use eddy_api::apply::Kustomization;
use eddy_api::source::{GitRepository, OCIRepository};
use eddy_apply::ssa::cache::LiveCache;
use eddy_runtime::{self as runtime, RuntimeArgs, controller_for, drive, watch_scope};
use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef};

/// The controller's name: its event reporter and default Lease name.
pub const NAME: &str = "apply-controller";

/// Command-line flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "apply-controller",
    version,
    about = "renders Kustomizations and server-side-applies them"
)]
pub struct Flags {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub apply: ApplyArgs,
}

/// What apply-controller adds to the shared flags.
#[derive(clap::Args, Clone, Debug)]
pub struct ApplyArgs {
    /// Service account impersonated for Kustomizations that name none; the controller's own
    /// identity when unset.
    #[arg(long, env = "EDDY_DEFAULT_SERVICE_ACCOUNT")]
    pub default_service_account: Option<String>,

    /// Refuse sourceRef and dependsOn entries that name another namespace.
    #[arg(long, env = "EDDY_NO_CROSS_NAMESPACE_REFS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub no_cross_namespace_refs: bool,

    /// Refuse remote bases (Git URLs in `resources`). With `false`, each is cloned (shallow, at
    /// its `?ref=`, no credentials) while rendering, within the Kustomization's timeout.
    #[arg(long, env = "EDDY_NO_REMOTE_BASES", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub no_remote_bases: bool,

    /// How soon a Kustomization waiting for its source or dependencies looks again.
    #[arg(long, env = "EDDY_REQUEUE_DEPENDENCY", default_value = "10s", value_parser = parse_duration)]
    pub requeue_dependency: Duration,

    /// Largest artifact downloaded, in bytes.
    #[arg(long, env = "EDDY_MAX_ARTIFACT_SIZE", default_value_t = 256 << 20)]
    pub max_artifact_size: u64,

    /// Namespace the controller runs in; its objects are never pruned.
    #[arg(long, env = "POD_NAMESPACE", default_value = "eddy-system")]
    pub controller_namespace: String,

    /// Objects applied at once within one Kustomization.
    #[arg(long, env = "EDDY_APPLY_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub apply_concurrency: u16,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    eddy_api::meta::Duration::parse(text)
        .and_then(|d| d.to_std())
        .map_err(|e| e.to_string())
}

/// What every reconcile shares besides the runtime context.
pub struct Shared {
    /// The flags.
    pub args: ApplyArgs,
    /// Sources, as last seen by their watches.
    pub sources: sources::Sources,
    /// Kustomizations, as last seen by the controller's watch (for dependsOn).
    pub kustomizations: reflector::Store<Kustomization>,
    /// Watches of applied objects, kept as fingerprints and health.
    pub live: Arc<LiveCache>,
    /// Appliers per identity (the controller's own, and each impersonated service account).
    pub identities: impersonation::Identities,
    /// What the last successful apply of each Kustomization left.
    pub applied: applied::Memory,
    /// Objects another writer keeps changing back, per Kustomization.
    pub contests: drift_watch::Contests,
    /// The Kustomizations applying now.
    pub applying: drift_watch::Applying,
    /// The status this process last wrote to each Kustomization.
    pub written: runtime::LastWritten<eddy_api::apply::KustomizationStatus>,
    /// Downloads artifacts.
    pub http: reqwest::Client,
    /// Asks the controller to reconcile Kustomizations now (their dependencies became ready).
    pub trigger: tokio::sync::mpsc::UnboundedSender<ObjectRef<Kustomization>>,
}

impl Shared {
    /// What reconciles share, for a controller with `args` on `client`: sources and dependencies
    /// read from the stores given, an empty live cache and empty memories. Also returns the
    /// receiver of the reconcile requests sent through [`Shared::trigger`].
    pub fn new(
        args: ApplyArgs,
        client: kube::Client,
        identities: impersonation::Identities,
        sources: sources::Sources,
        kustomizations: reflector::Store<Kustomization>,
    ) -> anyhow::Result<(
        Arc<Self>,
        tokio::sync::mpsc::UnboundedReceiver<ObjectRef<Kustomization>>,
    )> {
        let (trigger, triggered) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            args,
            sources,
            kustomizations,
            live: LiveCache::new(client, eddy_apply::ssa::FIELD_MANAGER),
            identities,
            applied: applied::Memory::default(),
            written: runtime::LastWritten::default(),
            contests: drift_watch::Contests::default(),
            applying: drift_watch::Applying::default(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
            trigger,
        });
        Ok((shared, triggered))
    }
}

/// Runs the controller until a shutdown signal.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let args = flags.apply;
    runtime::run(NAME, flags.runtime, move |ctx| async move {
        let (api, watch) = watch_scope::<Kustomization>(&ctx).await?;
        let controller = controller_for(api, watch);
        let store = controller.store();
        let (git_store, git_changes) = sources::watch::<GitRepository>(&ctx);
        let (oci_store, oci_changes) = sources::watch::<OCIRepository>(&ctx);
        let identities = impersonation::Identities::new(ctx.client.clone()).await?;
        let sources = sources::Sources {
            git: git_store,
            oci: oci_store,
        };
        let (shared, triggered) = Shared::new(args, ctx.client.clone(), identities, sources, store.clone())?;
        tokio::spawn(drift_watch::run(shared.live.subscribe(), Arc::downgrade(&shared)));
        let controller = controller
            .watches_stream(git_changes, sources::dependents(store.clone(), "GitRepository"))
            .watches_stream(oci_changes, sources::dependents(store.clone(), "OCIRepository"))
            .reconcile_on(tokio_stream_of(triggered));
        drive(ctx, controller, move |ks: Arc<Kustomization>, ctx| {
            reconcile::reconcile(ks, ctx, shared.clone())
        })
        .await
    })
    .await
}

fn tokio_stream_of<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}
