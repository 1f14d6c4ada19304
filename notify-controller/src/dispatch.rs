//! From an accepted event to the Providers' requests. The event endpoint puts events on a
//! bounded queue and answers; one dispatcher drains it: duplicate window, Alert matching
//! (labels looked up off the loop when a source selects by them), `alertOn: change`, metadata
//! merge, and a job on the queue of the Alert's Provider. Each Provider has its own worker and
//! bounded queue, so a slow, hanging or dead service delays only its own messages; sends retry
//! 429 (honouring Retry-After) and 5xx with backoff, within a bound. Outcomes become metrics,
//! and failures a Warning event and the Ready condition of the Alert.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use eddy_api::notify::{Alert, AlertOn, Provider};
use eddy_runtime::Context;
use eddy_runtime::events::Report;

use crate::change::{self, Decision};
use crate::dedup;
use crate::event::Event;
use crate::matching::{Selector, Verdict};
use crate::metrics::NotifyMetrics;
use crate::providers::{self, Delivery, Message, SendError};
use crate::target::{self, Target};

/// Events waiting for the dispatcher; beyond it the endpoint answers 503.
pub const EVENT_QUEUE: usize = 16_384;
/// Messages waiting per Provider; beyond it new ones are dropped and counted as failed.
const PROVIDER_QUEUE: usize = 4096;
/// Attempts per message, the first included.
const MAX_ATTEMPTS: u32 = 5;
/// First retry delay; doubled per attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts, Retry-After included.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A resolved Provider is read again after this long, to see Secret changes.
const TARGET_TTL: Duration = Duration::from_secs(30);
/// Labels of an involved object are read again after this long.
const LABELS_TTL: Duration = Duration::from_secs(30);
/// Most thread roots remembered.
const MAX_THREADS: usize = 50_000;
/// Sends in flight per Provider for services that do not thread messages (one per lane; the
/// messages about one object share a lane and stay in order).
const PARALLEL_SENDS: usize = 32;
/// Messages waiting per lane of a parallel Provider; beyond it the Provider's queue fills.
const LANE_QUEUE: usize = 64;
/// Label lookups in flight at once; the dispatcher waits for a slot (back-pressure on the queue).
const LABEL_LOOKUPS: usize = 32;
/// How often a full Provider queue is reported (log line, Alert condition).
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// The longest Retry-After honoured; a service asking for more is given up on for this message.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How the dispatcher behaves; from the controller's flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The duplicate window.
    pub dedup_window: Duration,
    /// How often what is remembered of deleted Alerts and Providers is dropped.
    pub sweep_interval: Duration,
    /// Refuse private targets.
    pub block_private: bool,
    /// Allow Alerts to select objects in other namespaces.
    pub cross_namespace: bool,
}

/// An accepted event and when it arrived.
#[derive(Debug)]
pub struct Received {
    /// The event.
    pub event: Event,
    /// When the endpoint accepted it.
    pub at: Instant,
}

/// The last delivery outcome of an Alert, which its Ready condition shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The last send succeeded.
    Delivered,
    /// The last send failed; the text is redacted.
    Failed(String),
}

/// What the dispatcher, the workers and the Alert reconcile share.
pub struct Hub {
    ctx: Arc<Context>,
    settings: Settings,
    metrics: NotifyMetrics,
    alerts: Store<Alert>,
    providers: Store<Provider>,
    window: Mutex<dedup::Window>,
    states: Mutex<change::States>,
    selectors: Mutex<Selectors>,
    workers: Mutex<HashMap<String, mpsc::Sender<Job>>>,
    targets: Mutex<Targets>,
    threads: Mutex<HashMap<(String, String, String), String>>,
    labels: Mutex<Labels>,
    outcomes: Mutex<HashMap<String, Outcome>>,
    alert_changed: mpsc::UnboundedSender<ObjectRef<Alert>>,
    lookups: Arc<tokio::sync::Semaphore>,
    drops_reported: Mutex<HashMap<String, Instant>>,
}

/// Compiled selectors per Alert, with the generation they were compiled from (`None`
/// when the Alert's selection is invalid).
type Selectors = HashMap<String, (Option<String>, Option<Arc<Selector>>)>;
/// Resolved Providers with the resourceVersion and time they were resolved at.
type Targets = HashMap<String, (Option<String>, Instant, Arc<Target>)>;
/// Labels of involved objects and when they were read.
type Labels = HashMap<String, (Instant, BTreeMap<String, String>)>;

/// One message for one Provider.
struct Job {
    message: Message,
    alert: ObjectRef<Alert>,
    provider: ObjectRef<Provider>,
    received: Instant,
    thread_key: (String, String, String),
}

impl Hub {
    /// A hub reading Alerts and Providers from these stores. `alert_changed` is told when an
    /// Alert's delivery outcome changes, so that its reconcile writes the condition.
    pub fn new(
        ctx: Arc<Context>,
        settings: Settings,
        metrics: NotifyMetrics,
        alerts: Store<Alert>,
        providers: Store<Provider>,
        alert_changed: mpsc::UnboundedSender<ObjectRef<Alert>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            window: Mutex::new(dedup::Window::new(settings.dedup_window)),
            ctx,
            settings,
            metrics,
            alerts,
            providers,
            states: Mutex::default(),
            selectors: Mutex::default(),
            workers: Mutex::default(),
            targets: Mutex::default(),
            threads: Mutex::default(),
            labels: Mutex::default(),
            outcomes: Mutex::default(),
            alert_changed,
            lookups: Arc::new(tokio::sync::Semaphore::new(LABEL_LOOKUPS)),
            drops_reported: Mutex::default(),
        })
    }

    /// The metrics.
    pub fn metrics(&self) -> &NotifyMetrics {
        &self.metrics
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the Provider exists.
    pub fn provider_exists(&self, provider: &ObjectRef<Provider>) -> bool {
        self.providers.get(provider).is_some()
    }

    /// The last delivery outcome of the Alert `namespace/name`.
    pub fn outcome(&self, key: &str) -> Option<Outcome> {
        lock(&self.outcomes).get(key).cloned()
    }

    /// Forgets what was remembered for an Alert whose spec changed or that is gone.
    pub fn forget_alert(&self, key: &str) {
        lock(&self.states).forget_alert(key);
        lock(&self.outcomes).remove(key);
    }

    /// Drains `queue` until it closes, sweeping every [`Settings::sweep_interval`].
    pub async fn dispatch(self: Arc<Self>, mut queue: mpsc::Receiver<Received>) {
        let mut sweep = tokio::time::interval(self.settings.sweep_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = queue.recv() => match received {
                    Some(received) => self.dispatch_one(received).await,
                    None => return,
                },
                _ = sweep.tick() => {
                    self.sweep();
                }
            }
        }
    }

    /// Drops what is remembered of Alerts and Providers that are gone (or, for a Provider's
    /// worker, changed type): their workers end once their queued messages are sent, and a
    /// long-lived controller's memory follows the objects that exist, not every one that ever
    /// did. Returns how many workers are left.
    pub fn sweep(&self) -> usize {
        // The stores are read under the workers' lock: a worker started for a Provider the
        // snapshot would miss (added since) cannot slip in between.
        let mut workers = lock(&self.workers);
        let alerts: std::collections::HashSet<String> =
            self.alerts.state().iter().map(|alert| key_of(alert.as_ref())).collect();
        let providers: HashMap<String, &'static str> = self
            .providers
            .state()
            .iter()
            .map(|p| (key_of(p.as_ref()), target::type_name(p.spec.provider_type)))
            .collect();
        let worker_exists = |key: &str| {
            key.rsplit_once('/')
                .is_some_and(|(provider, type_name)| providers.get(provider) == Some(&type_name))
        };
        workers.retain(|key, _| worker_exists(key));
        let left = workers.len();
        drop(workers);
        self.metrics.workers(left);
        lock(&self.drops_reported).retain(|key, _| worker_exists(key));
        lock(&self.targets).retain(|key, _| providers.contains_key(key));
        lock(&self.threads).retain(|(provider, _, _), _| providers.contains_key(provider));
        lock(&self.selectors).retain(|key, _| alerts.contains(key));
        lock(&self.outcomes).retain(|key, _| alerts.contains(key));
        lock(&self.states).retain_alerts(|key| alerts.contains(key));
        left
    }

    async fn dispatch_one(self: &Arc<Self>, received: Received) {
        let Received { event, at } = received;
        let fresh = lock(&self.window).admit(dedup::key(&event), Instant::now());
        let mut needs_labels = Vec::new();
        for alert in self.alerts.state() {
            if alert.spec.suspend {
                continue;
            }
            let Some(selector) = self.selector(&alert) else {
                continue;
            };
            match selector.select(&event, None) {
                Verdict::Selected => self.deliver(&alert, &event, fresh, at),
                Verdict::NeedsLabels => needs_labels.push((alert, selector)),
                Verdict::Rejected => {}
            }
        }
        if !needs_labels.is_empty() {
            let hub = self.clone();
            let Ok(permit) = self.lookups.clone().acquire_owned().await else {
                return;
            };
            tokio::spawn(async move {
                let _permit = permit;
                let Some(labels) = hub.labels_of(&event).await else {
                    return;
                };
                for (alert, selector) in needs_labels {
                    if selector.select(&event, Some(&labels)) == Verdict::Selected {
                        hub.deliver(&alert, &event, fresh, at);
                    }
                }
            });
        }
    }

    /// The compiled selector of `alert`, cached per generation; `None` when invalid (the
    /// Alert's reconcile reports why).
    fn selector(&self, alert: &Alert) -> Option<Arc<Selector>> {
        let key = key_of(alert);
        let version = alert.metadata.generation.map(|g| g.to_string());
        let mut selectors = lock(&self.selectors);
        if let Some((cached, selector)) = selectors.get(&key)
            && *cached == version
        {
            return selector.clone();
        }
        let namespace = alert.namespace().unwrap_or_default();
        let selector = Selector::compile(&namespace, &alert.spec, self.settings.cross_namespace)
            .ok()
            .map(Arc::new);
        selectors.insert(key, (version, selector.clone()));
        selector
    }

    /// The labels of the event's object, cached briefly; `None` when it cannot be read.
    async fn labels_of(&self, event: &Event) -> Option<BTreeMap<String, String>> {
        let subject = format!("{}/{}", event.object.api_version, event.subject());
        if let Some((at, labels)) = lock(&self.labels).get(&subject)
            && at.elapsed() < LABELS_TTL
        {
            return Some(labels.clone());
        }
        let object = &event.object;
        let api = crate::objects::api(&self.ctx.client, &object.api_version, &object.kind, &object.namespace);
        let read = tokio::time::timeout(Duration::from_secs(10), api.get_metadata_opt(&object.name)).await;
        let labels = match read {
            Ok(Ok(Some(found))) => found.labels().clone(),
            Ok(Ok(None)) => BTreeMap::new(),
            Ok(Err(err)) => {
                tracing::warn!(object = %event.subject(), error = %err, "cannot read the labels an Alert selects by");
                return None;
            }
            Err(_) => {
                tracing::warn!(object = %event.subject(), "reading the labels an Alert selects by timed out");
                return None;
            }
        };
        let mut cache = lock(&self.labels);
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| at.elapsed() < LABELS_TTL);
        }
        cache.insert(subject, (Instant::now(), labels.clone()));
        Some(labels)
    }

    /// Sends `event` for `alert`, if its mode and Provider let it.
    fn deliver(self: &Arc<Self>, alert: &Alert, event: &Event, fresh: bool, received: Instant) {
        let alert_key = key_of(alert);
        if alert.spec.alert_on == AlertOn::All && !fresh {
            return;
        }
        let namespace = alert.namespace().unwrap_or_default();
        let alert_ref = ObjectRef::new(&alert.name_any()).within(&namespace);
        let provider_ref = ObjectRef::<Provider>::new(&alert.spec.provider_ref.name).within(&namespace);
        let Some(provider) = self.providers.get(&provider_ref) else {
            let text = format!("Provider {namespace}/{} not found", alert.spec.provider_ref.name);
            self.record_outcome(&alert_ref, Outcome::Failed(text));
            return;
        };
        if provider.spec.suspend {
            return;
        }
        let commit_status_update = event.metadata.get("commit_status").is_some_and(|v| v == "update");
        let provider_type = provider.spec.provider_type;
        if commit_status_update
            && !provider_type.is_commit_status()
            && !matches!(
                provider_type,
                eddy_api::notify::ProviderType::Generic | eddy_api::notify::ProviderType::GenericHmac
            )
        {
            return;
        }
        let recovered = match alert.spec.alert_on {
            AlertOn::All => false,
            AlertOn::Change => {
                let repeat = alert.spec.repeat_interval.as_ref().and_then(|d| d.to_std().ok());
                let mut states = lock(&self.states);
                match change::decide(states.get(&alert_key, &event.subject()), event, repeat, Instant::now()) {
                    Decision::Drop => return,
                    Decision::Send => false,
                    Decision::SendRecovered => true,
                }
            }
        };
        let mut event = event.clone();
        for (key, value) in &alert.spec.event_metadata {
            event.metadata.entry(key.clone()).or_insert_with(|| value.clone());
        }
        if let Some(summary) = &alert.spec.summary {
            event
                .metadata
                .entry("summary".into())
                .or_insert_with(|| summary.clone());
        }
        let id = message_id(&alert_key, &provider_ref, &event, recovered);
        let thread_key = (
            key_of(provider.as_ref()),
            event.subject(),
            event.revision().unwrap_or_default().to_owned(),
        );
        let job = Job {
            message: Message {
                event,
                recovered,
                thread: None,
                id,
            },
            alert: alert_ref,
            provider: provider_ref,
            received,
            thread_key,
        };
        self.enqueue(provider.as_ref(), job);
    }

    /// Puts `job` on the queue of its Provider, starting the Provider's worker if needed.
    fn enqueue(self: &Arc<Self>, provider: &Provider, job: Job) {
        let key = format!(
            "{}/{}",
            key_of(provider),
            target::type_name(provider.spec.provider_type)
        );
        let mut workers = lock(&self.workers);
        // A worker that ended (it cannot, short of a bug) is replaced rather than left dead.
        if workers.get(&key).is_some_and(mpsc::Sender::is_closed) {
            workers.remove(&key);
        }
        if !workers.contains_key(&key) {
            let (sender, receiver) = mpsc::channel(PROVIDER_QUEUE);
            let parallel = matches!(
                provider.spec.provider_type,
                eddy_api::notify::ProviderType::Generic | eddy_api::notify::ProviderType::GenericHmac
            );
            tokio::spawn(self.clone().work(receiver, if parallel { PARALLEL_SENDS } else { 1 }));
            workers.insert(key.clone(), sender);
            self.metrics.workers(workers.len());
        }
        let sender = &workers[&key];
        if let Err(err) = sender.try_send(job) {
            let job = match err {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => job,
            };
            self.metrics.failed(target::type_name(provider.spec.provider_type));
            drop(workers);
            // Under overload, say so once per interval: a log line and a status write per
            // dropped message would themselves slow everything down.
            let now = Instant::now();
            let mut reported = lock(&self.drops_reported);
            if reported
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < DROP_REPORT_INTERVAL)
            {
                return;
            }
            reported.insert(key.clone(), now);
            drop(reported);
            tracing::warn!(provider = %key, object = %job.message.event.subject(), "the Provider's queue is full; messages are dropped");
            let text = format!("Provider {key} has {PROVIDER_QUEUE} messages waiting; new ones are dropped");
            self.record_outcome(&job.alert, Outcome::Failed(text));
        }
    }

    /// A Provider's worker: sends its jobs over `lanes` sequential lanes. The messages about one
    /// object always take the same lane, so they arrive in the order the events did (a recovery
    /// never overtakes the failure it follows); different objects' messages go out in parallel.
    /// One lane keeps every message in order and lets replies find their thread.
    async fn work(self: Arc<Self>, mut receiver: mpsc::Receiver<Job>, lanes: usize) {
        if lanes <= 1 {
            while let Some(job) = receiver.recv().await {
                self.process_guarded(job).await;
            }
            return;
        }
        let senders: Vec<mpsc::Sender<Job>> = (0..lanes)
            .map(|_| {
                let (sender, mut lane) = mpsc::channel::<Job>(LANE_QUEUE);
                let hub = self.clone();
                tokio::spawn(async move {
                    while let Some(job) = lane.recv().await {
                        hub.process_guarded(job).await;
                    }
                });
                sender
            })
            .collect();
        while let Some(job) = receiver.recv().await {
            let lane = lane_of(&job.message.event.subject(), lanes);
            if senders[lane].send(job).await.is_err() {
                return;
            }
        }
    }

    /// Processes one job; a bug in one send must not end the Provider's worker.
    async fn process_guarded(&self, job: Job) {
        use futures::FutureExt;
        let subject = job.message.event.subject();
        if std::panic::AssertUnwindSafe(self.process(job))
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!(object = %subject, "sending panicked; the message is lost");
        }
    }

    async fn process(&self, mut job: Job) {
        let Some(provider) = self.providers.get(&job.provider) else {
            return;
        };
        let type_name = target::type_name(provider.spec.provider_type);
        let target = match self.target(&provider).await {
            Ok(target) => target,
            Err(invalid) => {
                self.metrics.failed(type_name);
                let text = format!("Provider {} cannot send: {invalid}", key_of(provider.as_ref()));
                self.fail(&job, text).await;
                return;
            }
        };
        let threaded = providers::threads(&target);
        if threaded {
            job.message.thread = lock(&self.threads).get(&job.thread_key).cloned();
        }
        match self.send_with_retries(&target, &job.message).await {
            Ok(Delivery::Sent { thread }) => {
                self.metrics.sent(type_name, job.received.elapsed());
                if threaded && let Some(thread) = thread {
                    let mut threads = lock(&self.threads);
                    if threads.len() >= MAX_THREADS {
                        threads.clear();
                    }
                    threads.entry(job.thread_key.clone()).or_insert(thread);
                }
                self.record_outcome(&job.alert, Outcome::Delivered);
            }
            Ok(Delivery::Skipped(why)) => {
                tracing::debug!(provider = %target.key, object = %job.message.event.subject(), why, "nothing to send");
            }
            Err(err) => {
                self.metrics.failed(type_name);
                let text = format!(
                    "sending {}'s {} event through Provider {} ({type_name}): {err}",
                    job.message.event.subject(),
                    job.message.event.reason,
                    target.key
                );
                self.fail(&job, target.redactor.redact(&text)).await;
            }
        }
    }

    /// The resolved Provider, cached per resourceVersion for [`TARGET_TTL`].
    async fn target(&self, provider: &Provider) -> Result<Arc<Target>, target::InvalidProvider> {
        let key = key_of(provider);
        let version = provider.resource_version();
        if let Some((cached, at, target)) = lock(&self.targets).get(&key)
            && *cached == version
            && at.elapsed() < TARGET_TTL
        {
            return Ok(target.clone());
        }
        let target = Arc::new(target::resolve(&self.ctx.client, provider, self.settings.block_private).await?);
        lock(&self.targets).insert(key, (version, Instant::now(), target.clone()));
        Ok(target)
    }

    async fn send_with_retries(&self, target: &Target, message: &Message) -> Result<Delivery, SendError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match providers::send(target, message).await {
                Err(err)
                    if err.is_retryable()
                        && attempt < MAX_ATTEMPTS
                        && !self.ctx.shutdown.is_cancelled()
                        && err.retry_after().is_none_or(|asked| asked <= MAX_RETRY_AFTER) =>
                {
                    let wait = err.retry_after().unwrap_or(backoff.min(MAX_BACKOFF));
                    tracing::info!(provider = %target.key, attempt, wait = ?wait, error = %err, "send failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.ctx.shutdown.cancelled() => return Err(err),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// Reports a failed job: a log line, a Warning event on the Alert, and its condition.
    async fn fail(&self, job: &Job, text: String) {
        tracing::warn!(alert = %job.alert, error = %text, "notification failed");
        if let Some(alert) = self.alerts.get(&job.alert) {
            let report = Report::error("NotificationDispatchFailed", text.clone());
            self.ctx.events.record(alert.as_ref(), report).await;
        }
        self.record_outcome(&job.alert, Outcome::Failed(text));
    }

    fn record_outcome(&self, alert: &ObjectRef<Alert>, outcome: Outcome) {
        let key = format!("{}/{}", alert.namespace.as_deref().unwrap_or_default(), alert.name);
        let changed = lock(&self.outcomes).insert(key, outcome.clone()) != Some(outcome);
        if changed {
            let _ = self.alert_changed.send(alert.clone());
        }
    }
}

/// `namespace/name` of an object.
pub fn key_of<K: kube::Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// A message id that is the same for every attempt of one message and differs between
/// messages: the Alert, Provider, what the event says, its time, and whether it is a recovery.
fn message_id(alert: &str, provider: &ObjectRef<Provider>, event: &Event, recovered: bool) -> String {
    let mut hasher = Sha256::new();
    hasher.update(alert.as_bytes());
    hasher.update([0]);
    hasher.update(provider.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(dedup::key(event));
    hasher.update(event.timestamp.as_bytes());
    hasher.update([u8::from(recovered)]);
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("eddy-{hex}")
}

/// The lane of the messages about `subject`: stable for the process's life.
fn lane_of(subject: &str, lanes: usize) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(subject);
    (hash % lanes as u64) as usize
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
