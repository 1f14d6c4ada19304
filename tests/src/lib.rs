//! Test support for Eddy's end-to-end tests: a client of the local control plane that
//! `tests/cluster/up.sh` starts, throwaway namespaces, CRD installation, and controller binaries
//! run as child processes that are always stopped, even when a test fails.

pub mod apiserver;
pub mod git;
pub mod latency;
pub mod matrix;
pub mod prometheus;
pub mod registry;
pub mod standin_node;
pub mod traffic;
pub mod webhook;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config, ResourceExt};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The kubeconfig of the local control plane: `$EDDY_KUBECONFIG`, or the one `up.sh` writes.
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("EDDY_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/cluster/kubeconfig"))
}

/// The apiserver URL (`server:`) of a kubeconfig's text.
pub fn kubeconfig_server(kubeconfig: &str) -> anyhow::Result<String> {
    Ok(kubeconfig
        .lines()
        .find_map(|line| line.trim().strip_prefix("server: "))
        .context("no server in the kubeconfig")?
        .trim()
        .to_owned())
}

/// A client of the local control plane. Fails with instructions when it is not running.
pub async fn cluster() -> Client {
    eddy_runtime::install_crypto_provider();
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|err| {
        panic!(
            "the local control plane is not running ({}: {err}); start it with tests/cluster/up.sh, or run scripts/test",
            path.display()
        )
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("the local kubeconfig is valid");
    Client::try_from(config).expect("a client for the local control plane")
}

/// Creates a namespace with a unique name starting with `prefix`.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("creating a test namespace");
    name
}

/// Deletes a namespace created by [`namespace`].
pub async fn delete_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::background()).await;
}

/// Installs (server-side applies) every Eddy CRD and waits until each is Established.
pub async fn install_crds(client: &Client) -> anyhow::Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("eddy-tests").force();
    let mut names = Vec::new();
    for crd in eddy_api::crds() {
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
        names.push(name);
    }
    for name in &names {
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} did not become Established"))??;
    }
    Ok(names)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
    listener.local_addr().expect("the ephemeral port's address")
}

/// Polls `check` every 100 ms until it returns `Some` or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The path of a workspace binary built in the same profile as this test (or benchmark).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>; a benchmark binary runs from
    // target/<profile> itself.
    let mut dir = exe.parent().expect("the test runs from target/<profile>");
    if dir.file_name().is_some_and(|d| d == "deps") {
        dir = dir.parent().expect("target/<profile>/deps has a parent");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test does)",
        path.display()
    );
    path
}

/// A controller binary running as a child process against the local control plane. Dropping it
/// kills the process if it is still running.
pub struct ControllerProcess {
    /// Binary name.
    pub name: String,
    /// `/metrics` address.
    pub metrics: SocketAddr,
    /// `/healthz` and `/readyz` address.
    pub health: SocketAddr,
    /// notify-controller's event endpoint.
    pub events: Option<SocketAddr>,
    /// notify-controller's webhook receiver.
    pub hooks: Option<SocketAddr>,
    child: Child,
    log: PathBuf,
    _storage: Option<tempfile::TempDir>,
}

impl ControllerProcess {
    /// Starts `binary` with free metrics and health ports, text logs, and `args`. A
    /// source-controller not given `--storage-path` gets a temporary directory and a free
    /// loopback port for its artifact server, and a notify-controller free loopback ports for
    /// its event endpoint and webhook receiver, so that parallel tests never share either.
    pub fn start(binary: &str, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_kubeconfig(binary, args, &kubeconfig_path())
    }

    /// [`start`](Self::start), reaching the cluster through `kubeconfig`.
    pub fn start_with_kubeconfig(binary: &str, args: &[&str], kubeconfig: &Path) -> anyhow::Result<Self> {
        let metrics = free_port();
        let health = free_port();
        let mut extra = Vec::new();
        let mut storage = None;
        if binary == "source-controller" && !args.iter().any(|a| a.starts_with("--storage-path")) {
            let dir = tempfile::tempdir()?;
            let addr = free_port();
            extra.push(format!("--storage-path={}", dir.path().display()));
            extra.push(format!("--storage-addr={addr}"));
            extra.push(format!("--storage-adv-addr=http://{addr}"));
            storage = Some(dir);
        }
        let (mut events, mut hooks) = (None, None);
        if binary == "notify-controller" {
            for (flag, slot) in [
                ("--events-bind-address", &mut events),
                ("--receiver-bind-address", &mut hooks),
            ] {
                let addr = match args.iter().find_map(|a| a.strip_prefix(&format!("{flag}="))) {
                    Some(given) => given.parse()?,
                    None => {
                        let addr = free_port();
                        extra.push(format!("{flag}={addr}"));
                        addr
                    }
                };
                *slot = Some(addr);
            }
        }
        let log = std::env::temp_dir().join(format!(
            "eddy-test-{binary}-{}-{}.log",
            std::process::id(),
            metrics.port()
        ));
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(workspace_binary(binary))
            .arg("--log-format=text")
            .args((!args.iter().any(|a| a.starts_with("--log-level"))).then_some("--log-level=info"))
            .arg(format!("--metrics-addr={metrics}"))
            .arg(format!("--health-addr={health}"))
            .args(args)
            .args(&extra)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("EDDY_EVENTS_ADDR")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        Ok(Self {
            name: binary.to_owned(),
            metrics,
            health,
            events,
            hooks,
            child,
            log,
            _storage: storage,
        })
    }

    /// The process id, which is part of its Lease identity.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GETs `path` on the health or metrics server; `None` while it does not answer.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Sends `signal` (e.g. `TERM`) to the process.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {} failed", self.pid());
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to exit and returns its status.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {limit:?}; logs:\n{}", self.name, self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Sets `spec.suspend` on `name` and, when suspending, waits until the controller has observed
/// that generation (`observed` reads `status.observedGeneration`), so that no reconcile of the
/// object from before the suspend is still to come.
pub async fn set_suspend<K>(api: &Api<K>, name: &str, on: bool, observed: impl Fn(&K) -> Option<i64>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({"spec": {"suspend": on}});
    let patched = api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("patching spec.suspend");
    if on {
        let generation = patched.meta().generation;
        eventually(Duration::from_secs(30), "the suspend to be observed", || async {
            let current = api.get(name).await.ok()?;
            (observed(&current) == generation).then_some(())
        })
        .await;
    }
}

/// The `ApiResource` of an Eddy kind, by kind name.
pub fn eddy_api_resource(kind: &str) -> kube::api::ApiResource {
    use eddy_api::{apply, notify, progressive, source};
    use kube::api::ApiResource;
    match kind {
        "GitRepository" => ApiResource::erase::<source::GitRepository>(&()),
        "OCIRepository" => ApiResource::erase::<source::OCIRepository>(&()),
        "Kustomization" => ApiResource::erase::<apply::Kustomization>(&()),
        "Provider" => ApiResource::erase::<notify::Provider>(&()),
        "Alert" => ApiResource::erase::<notify::Alert>(&()),
        "Receiver" => ApiResource::erase::<notify::Receiver>(&()),
        "Canary" => ApiResource::erase::<progressive::Canary>(&()),
        "MetricTemplate" => ApiResource::erase::<progressive::MetricTemplate>(&()),
        other => panic!("no Eddy kind {other}"),
    }
}

/// Creates an Eddy object given as JSON in namespace `ns`.
pub async fn create(
    client: &Client,
    ns: &str,
    object: serde_json::Value,
) -> Result<kube::api::DynamicObject, kube::Error> {
    let object: kube::api::DynamicObject = serde_json::from_value(object).expect("a Kubernetes object");
    let kind = object.types.as_ref().expect("apiVersion and kind").kind.clone();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &eddy_api_resource(&kind));
    api.create(&PostParams::default(), &object).await
}

/// Creates the object of `examples/api/<file>` in namespace `ns`.
pub async fn create_example(client: &Client, ns: &str, file: &str) -> kube::api::DynamicObject {
    let text = std::fs::read_to_string(repo_root().join("examples/api").join(file)).expect("the example exists");
    let value: serde_json::Value = serde_saphyr::from_str(&text).expect("the example is YAML");
    create(client, ns, value)
        .await
        .unwrap_or_else(|err| panic!("creating {file}: {err}"))
}

/// The start of most cluster tests: a client, Eddy's CRDs installed, and a fresh namespace
/// named after `prefix`.
pub async fn cluster_namespace(prefix: &str) -> (Client, String) {
    let client = cluster().await;
    install_crds(&client).await.expect("installing Eddy's CRDs");
    let ns = namespace(&client, prefix).await;
    (client, ns)
}
