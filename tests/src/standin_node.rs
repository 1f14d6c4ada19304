//! A stand-in for a Kubernetes node, for this machine where no kubelet runs: the local control
//! plane's node is a KWOK node, which runs no containers. What the stand-in does with real
//! parts: each Deployment of Eddy's install manifests runs as a container of its real image
//! (the OCI layout `cargo xtask images` writes), started by `runc` with the pod's own settings:
//! the image's entrypoint with the container's args and env (downward-API values and `$(VAR)`
//! references resolved as the kubelet resolves them), the pod's user and group, a read-only root
//! filesystem, no capabilities, no privilege escalation, its emptyDir volumes, and a
//! ServiceAccount token from the TokenRequest API projected at
//! `/var/run/secrets/kubernetes.io/serviceaccount` beside `KUBERNETES_SERVICE_HOST`/`PORT`, so the
//! controllers take the in-cluster configuration path and act with their own RBAC.
//!
//! What stands in for the node's network: the containers share this machine's network (a pod
//! would have its own), so each container port is moved to a free port on 127.0.0.1 through the
//! controller's listen-address variable, and each Service gets a loopback address of its own,
//! listening on the Service's port and forwarding to the selected container's port (the part
//! kube-proxy plays), with the Service's DNS names in the containers' `/etc/hosts` (the part
//! cluster DNS plays). RuntimeDefault seccomp is not applied: runc has no default profile.
//!
//! Dropping the node kills and deletes every container and stops the forwarders.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Container, Service, ServiceAccount};
use kube::api::PostParams;
use kube::config::Kubeconfig;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::{free_port, kubeconfig_path, kubeconfig_server, repo_root};

/// The OCI image layout `cargo xtask images` wrote for `controller`.
pub fn image_layout(controller: &str) -> PathBuf {
    let layout = repo_root().join(".cache/images").join(controller);
    assert!(
        layout.join("index.json").exists(),
        "{} has no image; build the images first: cargo xtask images --profile image-check (scripts/test does)",
        layout.display()
    );
    layout
}

/// What an image's config says to run.
#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// `NAME=value` pairs.
    pub env: Vec<String>,
    /// `uid:gid`.
    pub user: String,
    /// The config's labels.
    pub labels: BTreeMap<String, String>,
    /// The manifest's digest.
    pub digest: String,
}

/// Reads the image in `layout` (one manifest, one gzip layer) and unpacks its filesystem into
/// `rootfs`, ownership and modes included.
pub fn unpack(layout: &Path, rootfs: &Path) -> anyhow::Result<ImageConfig> {
    let blob = |digest: &str| -> anyhow::Result<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:").context("not a sha256 digest")?;
        std::fs::read(layout.join("blobs/sha256").join(hex)).with_context(|| format!("reading blob {digest}"))
    };
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .context("index.json names no manifest")?
        .to_owned();
    let manifest: Value = serde_json::from_slice(&blob(&digest)?)?;
    let config: Value = serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().context("no config")?)?)?;
    std::fs::create_dir_all(rootfs)?;
    for layer in manifest["layers"].as_array().context("no layers")? {
        let data = blob(layer["digest"].as_str().context("a layer has no digest")?)?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(data.as_slice()));
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.unpack(rootfs).context("unpacking a layer")?;
    }
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    Ok(ImageConfig {
        entrypoint: strings(&config["config"]["Entrypoint"]),
        env: strings(&config["config"]["Env"]),
        user: config["config"]["User"].as_str().unwrap_or("0:0").to_owned(),
        labels: serde_json::from_value(config["config"]["Labels"].clone()).unwrap_or_default(),
        digest,
    })
}

/// Runs `args` in a container of the image in `layout` (no mounts beyond runc's defaults, the
/// host's network) and returns its exit status and output.
pub fn run_once(layout: &Path, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let bundle = tempfile::tempdir()?;
    let image = unpack(layout, &bundle.path().join("rootfs"))?;
    let (uid, gid) = parse_user(&image.user)?;
    let mut process_args = image.entrypoint.clone();
    process_args.extend(args.iter().map(|a| (*a).to_owned()));
    let config = runtime_config(bundle.path(), process_args, image.env.clone(), uid, gid, &[], true)?;
    std::fs::write(bundle.path().join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    let state = tempfile::tempdir()?;
    let id = container_id("once");
    let output = Command::new("runc")
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .context("running runc (Debian package runc)")?;
    let _ = Command::new("runc")
        .arg("--root")
        .arg(state.path())
        .args(["delete", "--force", &id])
        .output();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

/// A mount of the container: `(destination, source on the host or None for tmpfs, read-only)`.
type MountSpec = (String, Option<PathBuf>, bool);

/// The runc configuration: `runc spec`'s defaults with the process, user and mounts set, no
/// capabilities, no new privileges, and the host's network namespace.
fn runtime_config(
    bundle: &Path,
    args: Vec<String>,
    env: Vec<String>,
    uid: u32,
    gid: u32,
    mounts: &[MountSpec],
    readonly_root: bool,
) -> anyhow::Result<Value> {
    let output = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(bundle)
        .output()
        .context("running runc spec (Debian package runc)")?;
    if !output.status.success() {
        bail!("runc spec: {}", String::from_utf8_lossy(&output.stderr));
    }
    let path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    std::fs::remove_file(&path)?;
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(args);
    config["process"]["env"] = json!(env);
    config["process"]["cwd"] = json!("/");
    config["process"]["user"] = json!({"uid": uid, "gid": gid});
    config["process"]["noNewPrivileges"] = json!(true);
    config["process"]["capabilities"] = json!({"bounding": [], "effective": [], "permitted": [], "ambient": []});
    config["root"] = json!({"path": "rootfs", "readonly": readonly_root});
    let namespaces = config["linux"]["namespaces"].as_array_mut().context("no namespaces")?;
    namespaces.retain(|n| n["type"] != "network");
    let list = config["mounts"].as_array_mut().context("no mounts")?;
    for (destination, source, readonly) in mounts {
        list.push(match source {
            Some(source) => json!({
                "destination": destination, "type": "bind", "source": source,
                "options": if *readonly { vec!["rbind", "ro"] } else { vec!["rbind", "rw"] },
            }),
            None => json!({
                "destination": destination, "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"],
            }),
        });
    }
    Ok(config)
}

fn parse_user(user: &str) -> anyhow::Result<(u32, u32)> {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    Ok((uid.parse()?, gid.parse()?))
}

fn container_id(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "eddy-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// How a controller is told where to listen, by the name of the container port.
fn listen_variable(controller: &str, port: &str) -> anyhow::Result<&'static str> {
    Ok(match (controller, port) {
        (_, "http-prom") => "EDDY_METRICS_ADDR",
        (_, "healthz") => "EDDY_HEALTH_ADDR",
        ("source-controller", "http") => "EDDY_STORAGE_ADDR",
        ("notify-controller", "http") => "EDDY_EVENTS_BIND_ADDRESS",
        ("notify-controller", "http-webhook") => "EDDY_RECEIVER_BIND_ADDRESS",
        _ => bail!("{controller}: no known listen address for container port {port}"),
    })
}

/// One running container.
struct Running {
    name: String,
    id: String,
    child: Child,
    log: PathBuf,
    /// Container port name to where it listens on this machine.
    ports: BTreeMap<String, SocketAddr>,
    /// The pod template it was started from: a changed template restarts it, as a rollout does.
    template: String,
    /// The process's arguments.
    args: Vec<String>,
    started: std::time::Instant,
}

/// The node: Eddy's Deployments running as containers, its Services reachable by name.
pub struct StandInNode {
    dir: tempfile::TempDir,
    state: PathBuf,
    running: Vec<Running>,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
    /// Service DNS name (`name.namespace`) to its address on this machine.
    pub services: BTreeMap<String, SocketAddr>,
    /// The ports given to each Deployment's container ports, kept across restarts so that the
    /// Services' forwarders stay right.
    ports: BTreeMap<String, BTreeMap<String, SocketAddr>>,
    /// The Services forwarded so far (`name.namespace`), and the hosts file naming them.
    forwarded: Vec<String>,
    hosts: String,
    hosts_file: PathBuf,
    /// How many times each controller's container was started.
    starts: BTreeMap<String, usize>,
}

/// A [`StandInNode`] that follows the Deployments and Services of one namespace in the
/// cluster, as a kubelet and kube-proxy would: a new Deployment starts a container, a changed
/// pod template replaces it (a rollout), a deleted one stops it, and a container that exits is
/// started again. Dropping it, or [`stop`](Self::stop), stops everything.
pub struct FollowingNode {
    node: std::sync::Arc<tokio::sync::Mutex<StandInNode>>,
    task: tokio::task::JoinHandle<()>,
    last_error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl StandInNode {
    fn empty() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let state = dir.path().join("runc");
        std::fs::create_dir_all(&state)?;
        let hosts_file = dir.path().join("hosts");
        let hosts = String::from("127.0.0.1 localhost\n");
        std::fs::write(&hosts_file, &hosts)?;
        Ok(StandInNode {
            dir,
            state,
            running: Vec::new(),
            forwarders: Vec::new(),
            services: BTreeMap::new(),
            ports: BTreeMap::new(),
            forwarded: Vec::new(),
            hosts,
            hosts_file,
            starts: BTreeMap::new(),
        })
    }

    /// Starts a container for every Deployment and a forwarder for every Service in `objects`
    /// (the rendered install manifests, already applied to the cluster).
    pub async fn start(client: &Client, objects: &[Value]) -> anyhow::Result<Self> {
        let mut node = Self::empty()?;
        node.sync(client, &of_kind(objects, "Deployment")?, &of_kind(objects, "Service")?)
            .await?;
        Ok(node)
    }

    /// A node that runs what the cluster's namespace `namespace` holds, from now until it is
    /// stopped or dropped.
    pub fn follow(client: Client, namespace: &str) -> anyhow::Result<FollowingNode> {
        let node = std::sync::Arc::new(tokio::sync::Mutex::new(Self::empty()?));
        let last_error = std::sync::Arc::new(std::sync::Mutex::new(None));
        let task = {
            let node = node.clone();
            let last_error = last_error.clone();
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            let services: Api<Service> = Api::namespaced(client.clone(), namespace);
            tokio::spawn(async move {
                loop {
                    let listed = async {
                        let params = kube::api::ListParams::default();
                        let deployments = deployments.list(&params).await?.items;
                        let services = services.list(&params).await?.items;
                        anyhow::Ok((deployments, services))
                    };
                    let outcome = match listed.await {
                        Ok((deployments, services)) => node.lock().await.sync(&client, &deployments, &services).await,
                        Err(err) => Err(err),
                    };
                    *last_error.lock().unwrap() = outcome.err().map(|e| format!("{e:#}"));
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        };
        Ok(FollowingNode { node, task, last_error })
    }

    /// Brings the containers and forwarders in line with `deployments` and `services`.
    async fn sync(&mut self, client: &Client, deployments: &[Deployment], services: &[Service]) -> anyhow::Result<()> {
        let wanted: Vec<&Deployment> = deployments
            .iter()
            .filter(|d| d.metadata.deletion_timestamp.is_none())
            .filter(|d| d.spec.as_ref().and_then(|s| s.replicas) != Some(0))
            .collect();
        // Ports first: the Services forward to them and the hosts file names the Services.
        for deployment in &wanted {
            if self.ports.contains_key(&deployment.name_any()) {
                continue;
            }
            let container = main_container(deployment)?;
            let assigned = container
                .ports
                .iter()
                .flatten()
                .map(|p| (p.name.clone().unwrap_or_default(), free_port()))
                .collect();
            self.ports.insert(deployment.name_any(), assigned);
        }
        for service in services {
            let namespace = service.namespace().unwrap_or_default();
            let name = service.name_any();
            let key = format!("{name}.{namespace}");
            if self.forwarded.contains(&key) {
                continue;
            }
            let spec = service.spec.clone().unwrap_or_default();
            let selector = spec.selector.clone().unwrap_or_default();
            let Some(target) = wanted.iter().find(|d| {
                let labels = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            }) else {
                // Nothing to forward to yet.
                continue;
            };
            let ip = Ipv4Addr::new(127, 0, 0, 100 + u8::try_from(self.forwarded.len())?);
            for port in spec.ports.iter().flatten() {
                let wanted_port = match &port.target_port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name)) => name.clone(),
                    other => bail!("Service {namespace}/{name}: target port {other:?} is not a port name"),
                };
                let to = *self.ports[&target.name_any()]
                    .get(&wanted_port)
                    .with_context(|| format!("Service {namespace}/{name}: no container port {wanted_port}"))?;
                let from = SocketAddr::new(ip.into(), u16::try_from(port.port)?);
                self.forwarders.push(forward(from, to).await?);
                self.services.insert(key.clone(), from);
            }
            self.forwarded.push(key);
            let fqdn = format!("{name}.{namespace}.svc.cluster.local");
            self.hosts.push_str(&format!(
                "{ip} {fqdn} {fqdn}. {name}.{namespace}.svc {name}.{namespace}\n"
            ));
            // Written in place: the containers see the file they mounted change.
            std::fs::write(&self.hosts_file, &self.hosts)?;
        }

        // Stop what is gone or changed; a container that exited is started again, after a
        // pause (the kubelet's back-off, shortened).
        let templates: BTreeMap<String, String> = wanted
            .iter()
            .map(|d| {
                let template = d.spec.as_ref().map(|s| &s.template);
                (d.name_any(), serde_json::to_string(&template).unwrap_or_default())
            })
            .collect();
        let mut kept = Vec::new();
        for mut running in std::mem::take(&mut self.running) {
            let exited = matches!(running.child.try_wait(), Ok(Some(_)));
            let current = templates.get(&running.name) == Some(&running.template);
            if current && (!exited || running.started.elapsed() < Duration::from_secs(2)) {
                kept.push(running);
            } else {
                self.stop(&mut running);
            }
        }
        self.running = kept;
        for deployment in wanted {
            let name = deployment.name_any();
            if self.running.iter().any(|r| r.name == name) {
                continue;
            }
            let ports = self.ports.get(&name).cloned().unwrap_or_default();
            self.run(client, deployment, ports, templates[&name].clone()).await?;
            *self.starts.entry(name).or_default() += 1;
        }
        Ok(())
    }

    /// Stops a container as the kubelet stops a pod: TERM, a grace period, then KILL.
    fn stop(&self, running: &mut Running) {
        let runc = |args: &[&str]| {
            let _ = Command::new("runc").arg("--root").arg(&self.state).args(args).output();
        };
        runc(&["kill", &running.id, "TERM"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline && matches!(running.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        runc(&["kill", &running.id, "KILL"]);
        let _ = running.child.wait();
        runc(&["delete", "--force", &running.id]);
    }

    async fn run(
        &mut self,
        client: &Client,
        deployment: &Deployment,
        ports: BTreeMap<String, SocketAddr>,
        template: String,
    ) -> anyhow::Result<()> {
        let name = deployment.name_any();
        let namespace = deployment.namespace().context("a Deployment without a namespace")?;
        let pod = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .context("a Deployment without a pod template")?;
        let container = main_container(deployment)?;
        let id = container_id(&name);
        let bundle = self.dir.path().join(&id);
        let image = unpack(&image_layout(&name), &bundle.join("rootfs"))?;

        // The ServiceAccount token, as the kubelet projects it.
        let account = pod.service_account_name.clone().unwrap_or_else(|| "default".into());
        let token = service_account_token(client, &namespace, &account).await?;
        let secrets = bundle.join("serviceaccount");
        std::fs::create_dir_all(&secrets)?;
        std::fs::write(secrets.join("token"), token)?;
        std::fs::write(secrets.join("ca.crt"), cluster_ca()?)?;
        std::fs::write(secrets.join("namespace"), &namespace)?;

        // Env: the image's, then the container's with downward-API values, then the service
        // host and port, then where to listen.
        let mut env: Vec<(String, String)> = image
            .env
            .iter()
            .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        for var in container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(value), _) => expand(value, &env),
                (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                    Some("metadata.namespace") => namespace.clone(),
                    Some("metadata.name") => format!("{name}-standin"),
                    other => bail!("{name}: env {} from {other:?} is not supported here", var.name),
                },
                (None, None) => String::new(),
            };
            env.push((var.name.clone(), value));
        }
        let server = kubeconfig_server(&std::fs::read_to_string(kubeconfig_path())?)?;
        let server: reqwest::Url = server.parse()?;
        env.push((
            "KUBERNETES_SERVICE_HOST".into(),
            server.host_str().unwrap_or_default().to_owned(),
        ));
        env.push((
            "KUBERNETES_SERVICE_PORT".into(),
            server.port_or_known_default().unwrap_or(443).to_string(),
        ));
        for (port, addr) in &ports {
            env.push((listen_variable(&name, port)?.to_owned(), addr.to_string()));
        }
        let mut args = image.entrypoint.clone();
        if let Some(command) = &container.command {
            args = command.iter().map(|c| expand(c, &env)).collect();
        }
        args.extend(container.args.iter().flatten().map(|a| expand(a, &env)));

        let pod_security = pod.security_context.clone().unwrap_or_default();
        let security = container.security_context.clone().unwrap_or_default();
        let (image_uid, image_gid) = parse_user(&image.user)?;
        let uid = security
            .run_as_user
            .or(pod_security.run_as_user)
            .map_or(image_uid, |u| u as u32);
        let gid = security
            .run_as_group
            .or(pod_security.run_as_group)
            .map_or(image_gid, |g| g as u32);
        if security.allow_privilege_escalation != Some(false) {
            bail!("{name}: allowPrivilegeEscalation is not false");
        }
        let dropped_all = security
            .capabilities
            .as_ref()
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|c| c == "ALL"));
        if !dropped_all {
            bail!("{name}: capabilities are not all dropped");
        }
        let mut mounts: Vec<MountSpec> = vec![
            (
                "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                Some(secrets.clone()),
                true,
            ),
            ("/etc/hosts".into(), Some(self.hosts_file.clone()), true),
        ];
        for mount in container.volume_mounts.iter().flatten() {
            let volume = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .with_context(|| format!("{name}: volume {} is not declared", mount.name))?;
            if volume.empty_dir.is_none() {
                bail!("{name}: volume {} is not an emptyDir", mount.name);
            }
            // As the kubelet makes an emptyDir: a directory on the node, open to every user.
            let dir = bundle.join("volumes").join(&mount.name);
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
            mounts.push((mount.mount_path.clone(), Some(dir), mount.read_only.unwrap_or(false)));
        }
        let env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let readonly_root = security.read_only_root_filesystem.unwrap_or(false);
        let config = runtime_config(&bundle, args.clone(), env, uid, gid, &mounts, readonly_root)?;
        std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&config)?)?;

        // One log per controller across restarts, as `kubectl logs --previous` and the current
        // log together.
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new("runc")
            .arg("--root")
            .arg(&self.state)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting runc (Debian package runc)")?;
        self.running.push(Running {
            name,
            id,
            child,
            log,
            ports,
            template,
            args,
            started: std::time::Instant::now(),
        });
        Ok(())
    }

    /// Waits until every controller answers `/readyz` with 200; on timeout, fails with each
    /// container's log.
    pub async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + limit;
        loop {
            let mut waiting = Vec::new();
            for running in &mut self.running {
                if let Ok(Some(status)) = running.child.try_wait() {
                    bail!("{} exited ({status}):\n{}", running.name, read_log(&running.log));
                }
                let health = running.ports.get("healthz").context("no healthz port")?;
                let ready = http
                    .get(format!("http://{health}/readyz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ready {
                    waiting.push(running.name.clone());
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("not ready after {limit:?}: {waiting:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Where a container port of controller `name` listens on this machine.
    pub fn port(&self, name: &str, port: &str) -> Option<SocketAddr> {
        self.ports.get(name).and_then(|ports| ports.get(port).copied())
    }

    /// Every controller's log, for a failure message.
    pub fn logs(&self) -> String {
        self.ports
            .keys()
            .map(|name| {
                format!(
                    "--- {name} ---\n{}",
                    read_log(&self.dir.path().join(format!("{name}.log")))
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The log of controller `name`, across its restarts.
    pub fn log(&self, name: &str) -> String {
        read_log(&self.dir.path().join(format!("{name}.log")))
    }
}

impl FollowingNode {
    /// The arguments controller `name` runs with now, when it runs.
    pub async fn args(&self, name: &str) -> Option<Vec<String>> {
        let node = self.node.lock().await;
        node.running.iter().find(|r| r.name == name).map(|r| r.args.clone())
    }

    /// The controllers running now.
    pub async fn running(&self) -> Vec<String> {
        let node = self.node.lock().await;
        node.running.iter().map(|r| r.name.clone()).collect()
    }

    /// How many times controller `name` was started.
    pub async fn starts(&self, name: &str) -> usize {
        self.node.lock().await.starts.get(name).copied().unwrap_or(0)
    }

    /// Every controller's log, and the last error following the cluster, for a failure message.
    pub async fn logs(&self) -> String {
        let mut text = self.node.lock().await.logs();
        if let Some(error) = self.last_error.lock().unwrap().clone() {
            text.push_str(&format!("\n--- the stand-in node's last error ---\n{error}"));
        }
        text
    }

    /// The log of controller `name`, across its restarts.
    pub async fn log(&self, name: &str) -> String {
        self.node.lock().await.log(name)
    }

    /// Stops following and stops every container.
    pub async fn stop(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for FollowingNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for StandInNode {
    fn drop(&mut self) {
        for forwarder in &self.forwarders {
            forwarder.abort();
        }
        for mut running in std::mem::take(&mut self.running) {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&self.state)
                .args(["kill", &running.id, "KILL"])
                .output();
            let _ = running.child.wait();
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&self.state)
                .args(["delete", "--force", &running.id])
                .output();
        }
    }
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(8_000);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    text[start..].to_owned()
}

/// `$(NAME)` references replaced by the value of NAME, as the kubelet expands args and env.
fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    for (name, value) in env.iter().rev() {
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

fn main_container(deployment: &Deployment) -> anyhow::Result<Container> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first().cloned())
        .with_context(|| format!("Deployment {} has no container", deployment.name_any()))
}

fn of_kind<K: serde::de::DeserializeOwned>(objects: &[Value], kind: &str) -> anyhow::Result<Vec<K>> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| serde_json::from_value(o.clone()).with_context(|| format!("reading a {kind}")))
        .collect()
}

/// A token for ServiceAccount `namespace/name` from the TokenRequest API, valid for an hour.
pub async fn service_account_token(client: &Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            bound_object_ref: None,
            expiration_seconds: Some(3600),
        }),
        ..TokenRequest::default()
    };
    let issued = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?;
    issued
        .status
        .and_then(|s| s.token)
        .context("the TokenRequest's answer has no token")
}

/// The local control plane's CA certificate (PEM).
fn cluster_ca() -> anyhow::Result<Vec<u8>> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path())?;
    let cluster = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .context("the kubeconfig has no cluster")?;
    if let Some(data) = cluster.certificate_authority_data {
        return decode_base64(&data).context("certificate-authority-data is not base64");
    }
    let path = cluster
        .certificate_authority
        .context("the kubeconfig names no certificate authority")?;
    Ok(std::fs::read(path)?)
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for byte in text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte)? as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// Listens on `from` and copies every connection to `to` and back: the part kube-proxy plays.
async fn forward(from: SocketAddr, to: SocketAddr) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    // A node stopped a moment ago may still hold the address while its tasks wind down.
    let mut attempts = 0;
    let listener = loop {
        match tokio::net::TcpListener::bind(from).await {
            Ok(listener) => break listener,
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(err).with_context(|| format!("listening on {from} for a Service")),
        }
    };
    Ok(tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_like_the_kubelet_expands_them() {
        let env = vec![("POD_NAMESPACE".to_owned(), "eddy-system".to_owned())];
        assert_eq!(
            expand("http://source-controller.$(POD_NAMESPACE).svc.cluster.local.", &env),
            "http://source-controller.eddy-system.svc.cluster.local."
        );
        assert_eq!(expand("$(UNKNOWN)", &env), "$(UNKNOWN)");
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8h").unwrap(), b"hello!");
    }
}
