//! `eddy bootstrap git`: from an empty cluster and a Git repository to an Eddy that manages
//! itself from that repository, as `flux bootstrap git` does.
//!
//! 1. check the cluster (reachable, new enough, our rights, no Eddy installed by something else);
//! 2. clone the branch (created when missing), write `<path>/<namespace>/components.yaml` and
//!    `kustomization.yaml`, commit and push (nothing when nothing changed);
//! 3. apply the components, create the Git credentials Secret, write `sync.yaml` (a
//!    GitRepository and a Kustomization, both named after the namespace, following `<path>`),
//!    commit, push (rebasing on a concurrent push), apply it;
//! 4. wait until the controllers are available and both objects are Ready on the pushed commit.
//!
//! Running it again changes nothing that is already right. From then on Eddy applies `<path>`
//! itself, its own components included: an upgrade is a commit (or a rerun with `--version`).

use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use eddy_api::apply::Kustomization;
use eddy_api::conditions::{self, READY};
use eddy_api::source::GitRepository;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::components::{self, Selection};
use crate::git::{Checkout, GitAuth};
use crate::install::{self, Progress, parse_duration};

/// Flags of `eddy bootstrap git`.
#[derive(Args, Debug)]
pub struct BootstrapGit {
    /// The repository: `https://`, `http://`, `ssh://` (or `user@host:path`) or `file://`.
    #[arg(long)]
    url: String,
    /// The branch Eddy follows; created when the repository or the branch is empty.
    #[arg(long, default_value = "main")]
    branch: String,
    /// The directory of this cluster in the repository, e.g. `clusters/production`.
    #[arg(long)]
    path: String,
    /// HTTP(S) user name.
    #[arg(long, env = "EDDY_GIT_USERNAME")]
    username: Option<String>,
    /// HTTP(S) password or token (better given through the environment or --password-stdin).
    #[arg(long, env = "EDDY_GIT_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Read the password or token from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// SSH private key; without it, an ssh URL gets a new ed25519 key pair whose public key is
    /// printed, to add as a deploy key with write access.
    #[arg(long)]
    private_key_file: Option<PathBuf>,
    /// SSH known_hosts file; without it, the host's keys are read with ssh-keyscan and printed.
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    #[command(flatten)]
    selection: Selection,
    /// How often the GitRepository looks for new commits.
    #[arg(long, default_value = "1m")]
    interval: String,
    /// Ask nothing (a generated deploy key is assumed to be added already).
    #[arg(long)]
    silent: bool,
    /// How long to wait for the controllers and the first sync.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// Take over an Eddy installed by something else.
    #[arg(long)]
    force: bool,
    /// Commit author name.
    #[arg(long, default_value = "Eddy")]
    author_name: String,
    /// Commit author e-mail.
    #[arg(long, default_value = "eddy@users.noreply.eddy.dev")]
    author_email: String,
}

/// The Git credentials as the cluster gets them, and as `git` uses them here.
struct Credentials {
    auth: GitAuth,
    secret: Vec<(String, String)>,
    /// Temporary files the SSH auth points at.
    _files: Option<tempfile::TempDir>,
}

impl BootstrapGit {
    /// Runs the bootstrap.
    pub async fn run(mut self, client: &Client, namespace: &str) -> anyhow::Result<()> {
        let progress = Progress::new();
        let path = clean_path(&self.path)?;
        eddy_api::meta::Duration::parse(&self.interval)
            .map_err(|e| anyhow::anyhow!("--interval {}: {e}", self.interval))?;
        self.selection.check()?;
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_to_string(&mut line)
                .context("reading the password from standard input")?;
            self.password = Some(line.lines().next().unwrap_or_default().to_owned());
        }
        let url = normalize_url(&self.url)?;
        let credentials = self.credentials(&url, &progress)?;
        if url.starts_with("file://") {
            progress.note(
                "a file:// URL is read from source-controller's own filesystem: it works when source-controller runs on this machine (local development), not from a pod",
            );
        }

        install::preflight(client, namespace, self.force, &progress).await?;

        progress.step(&format!("cloning branch {} of {}", self.branch, redact_url(&url)));
        let checkout = Checkout::clone(
            &url,
            &self.branch,
            credentials.auth.clone(),
            (self.author_name.clone(), self.author_email.clone()),
        )?;
        progress.done("cloned");

        let dir = format!("{path}/{namespace}");
        let objects = components::objects(&self.selection, namespace)?;
        let mut changed = checkout.write(
            &format!("{dir}/components.yaml"),
            &components::to_yaml(&objects, &install::header())?,
        )?;
        // kustomization.yaml is the place for the cluster's own changes to Eddy (patches of a
        // controller's flags or resources, as with Flux): written once, then left as it is.
        let kustomization_path = format!("{dir}/kustomization.yaml");
        match std::fs::read_to_string(checkout.dir().join(&kustomization_path)) {
            Ok(existing) => check_kustomization(&kustomization_path, &existing)?,
            Err(_) => changed |= checkout.write(&kustomization_path, KUSTOMIZATION)?,
        }
        // kustomization.yaml names sync.yaml, which comes after the components are installed; an
        // empty stand-in keeps the directory renderable until then.
        let sync_path = format!("{dir}/sync.yaml");
        if !checkout.dir().join(&sync_path).exists() {
            checkout.write(&sync_path, "# written by eddy bootstrap git\n")?;
        }
        match checkout.commit(&[&dir], &format!("Add Eddy {} components", self.selection.version))? {
            Some(commit) => {
                checkout.push()?;
                progress.done(&format!("components committed and pushed ({})", short(&commit)));
            }
            None if changed => bail!("the components changed but git saw nothing to commit"),
            None => progress.done("components in Git are up to date"),
        }

        // What Eddy will apply from Git, the cluster's own patches included, is what is
        // installed now: the controllers start as they will stay.
        install::apply(client, render(&checkout, &dir)?, &progress).await?;

        if !credentials.secret.is_empty() {
            progress.step("writing the Git credentials Secret");
            apply_secret(client, namespace, &credentials.secret).await?;
            progress.done(&format!("Secret {namespace}/{namespace} holds the Git credentials"));
        }

        let sync = sync_objects(
            namespace,
            &url,
            &self.branch,
            &path,
            &self.interval,
            !credentials.secret.is_empty(),
        );
        checkout.write(
            &sync_path,
            &components::to_yaml(&sync, "# written by eddy bootstrap git\n")?,
        )?;
        let head = match checkout.commit(&[&dir], "Add Eddy sync manifests")? {
            Some(commit) => {
                let pushed = checkout.push()?;
                progress.done(&format!("sync manifests committed and pushed ({})", short(&commit)));
                pushed
            }
            None => {
                progress.done("sync manifests in Git are up to date");
                checkout.head()?
            }
        };
        install::apply(client, render(&checkout, &dir)?, &progress).await?;

        install::wait_available(client, namespace, &self.selection.components, self.timeout, &progress).await?;
        wait_synced(client, namespace, &head, self.timeout, &progress).await?;
        progress.done(&format!(
            "Eddy manages itself from {} ({}/{})",
            redact_url(&url),
            self.branch,
            path
        ));
        println!();
        println!("Next: commit manifests under {path}/ (a directory per app, or plain YAML files) and push;");
        println!("Eddy applies them within {}. Follow with:", self.interval);
        println!("  eddy check");
        println!("  kubectl -n {namespace} get gitrepositories,kustomizations");
        println!("Upgrade Eddy by running this command again with --version; change its settings with patches");
        println!("in {dir}/kustomization.yaml (later bootstraps keep that file, and rewrite components.yaml).");
        Ok(())
    }

    fn credentials(&self, url: &str, progress: &Progress) -> anyhow::Result<Credentials> {
        if url.starts_with("http://") || url.starts_with("https://") {
            let mut secret = Vec::new();
            if let Some(password) = self.password.clone().filter(|p| !p.is_empty()) {
                let username = self.username.clone().unwrap_or_else(|| "git".into());
                secret = vec![
                    ("username".into(), username.clone()),
                    ("password".into(), password.clone()),
                ];
                return Ok(Credentials {
                    auth: GitAuth {
                        username: Some(username),
                        password: Some(password),
                        ..GitAuth::default()
                    },
                    secret,
                    _files: None,
                });
            }
            return Ok(Credentials {
                auth: GitAuth::default(),
                secret,
                _files: None,
            });
        }
        if !url.starts_with("ssh://") {
            // file:// needs no credentials.
            return Ok(Credentials {
                auth: GitAuth::default(),
                secret: Vec::new(),
                _files: None,
            });
        }
        let files = tempfile::tempdir()?;
        let key_path = match &self.private_key_file {
            Some(path) => path.clone(),
            None => {
                let path = files.path().join("identity");
                let status = std::process::Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "eddy", "-f"])
                    .arg(&path)
                    .status()
                    .context("running ssh-keygen to make a deploy key")?;
                if !status.success() {
                    bail!("ssh-keygen failed ({status})");
                }
                let public = std::fs::read_to_string(path.with_extension("pub"))?;
                progress.note("A new deploy key for the repository; add it with write access:");
                println!("{}", public.trim());
                if !self.silent {
                    confirm_enter("Press Enter once the key is added")?;
                }
                path
            }
        };
        let identity = std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading the private key {}", key_path.display()))?;
        let public = derive_public_key(&key_path)?;
        let known_hosts = match &self.known_hosts {
            Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            None => {
                let text = scan_host_keys(url)?;
                progress.note("trusting the host keys ssh-keyscan read (give --known-hosts to pin them):");
                for line in text.lines() {
                    println!("    {line}");
                }
                text
            }
        };
        let known_path = files.path().join("known_hosts");
        std::fs::write(&known_path, &known_hosts)?;
        Ok(Credentials {
            auth: GitAuth {
                private_key: Some(key_path),
                known_hosts: Some(known_path),
                ..GitAuth::default()
            },
            secret: vec![
                ("identity".into(), identity),
                ("identity.pub".into(), public),
                ("known_hosts".into(), known_hosts),
            ],
            _files: Some(files),
        })
    }
}

fn confirm_enter(prompt: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    print!("{prompt} ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}

fn derive_public_key(private: &std::path::Path) -> anyhow::Result<String> {
    let output = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(private)
        .output()
        .context("running ssh-keygen -y")?;
    if !output.status.success() {
        bail!(
            "{} is not a usable private key (ssh-keygen: {})",
            private.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The host keys of an `ssh://` URL's host, as known_hosts lines.
fn scan_host_keys(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
    let host = parsed.host_str().context("the URL has no host")?;
    let port = parsed.port().unwrap_or(22);
    let output = std::process::Command::new("ssh-keyscan")
        .args(["-T", "10", "-p", &port.to_string(), host])
        .output()
        .context("running ssh-keyscan")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if text.trim().is_empty() {
        bail!("ssh-keyscan read no host key from {host}:{port}; give --known-hosts");
    }
    Ok(text)
}

/// `dir` of the checkout rendered with Eddy's kustomize engine, as apply-controller renders it.
fn render(checkout: &Checkout, dir: &str) -> anyhow::Result<Vec<Value>> {
    let options = eddy_kustomize::Options {
        root: Some(checkout.dir().to_owned()),
        ..eddy_kustomize::Options::default()
    };
    let yaml = eddy_kustomize::render(&checkout.dir().join(dir), &options)
        .with_context(|| format!("rendering {dir} of the repository"))?;
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&yaml).with_context(|| format!("reading {dir} rendered"))?;
    Ok(documents.into_iter().filter(Value::is_object).collect())
}

/// The kustomization of `<path>/<namespace>`, as first written.
const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - components.yaml\n  - sync.yaml\n";

/// A kustomization.yaml already in the repository must still include what bootstrap writes.
fn check_kustomization(path: &str, text: &str) -> anyhow::Result<()> {
    let document: Value =
        serde_saphyr::from_str(text).with_context(|| format!("{path} in the repository is not valid YAML"))?;
    let resources: Vec<&str> = document["resources"]
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let named = |file: &str| resources.iter().any(|r| r.trim_start_matches("./") == file);
    for file in ["components.yaml", "sync.yaml"] {
        if !named(file) {
            bail!(
                "{path} in the repository does not list {file} under resources; add it, or remove the file to have it written again"
            );
        }
    }
    Ok(())
}

/// A repository path inside the repository: relative, no `..`, no empty parts.
fn clean_path(path: &str) -> anyhow::Result<String> {
    let trimmed = path.trim_start_matches("./").trim_matches('/');
    if trimmed.is_empty() {
        bail!("--path must name a directory in the repository, e.g. clusters/production");
    }
    for part in trimmed.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            bail!("--path {path}: must be a plain relative path (no `..`, no empty parts)");
        }
    }
    Ok(trimmed.to_owned())
}

/// `user@host:path` as `ssh://user@host/path`; other URLs as given, after checking the scheme.
fn normalize_url(url: &str) -> anyhow::Result<String> {
    if let Some((scheme, _)) = url.split_once("://") {
        if !matches!(scheme, "http" | "https" | "ssh" | "file") {
            bail!("--url {url}: the scheme must be https, http, ssh or file");
        }
        return Ok(url.to_owned());
    }
    match url.split_once(':') {
        Some((user_host, path)) if user_host.contains('@') && !user_host.contains('/') && !path.is_empty() => {
            Ok(format!("ssh://{user_host}/{}", path.trim_start_matches('/')))
        }
        _ => bail!("--url {url}: expected https://, http://, ssh://, file:// or user@host:path"),
    }
}

/// The URL without a password.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The GitRepository and Kustomization through which Eddy manages `path` (itself included).
fn sync_objects(namespace: &str, url: &str, branch: &str, path: &str, interval: &str, secret: bool) -> Vec<Value> {
    let mut source = json!({
        "apiVersion": "source.eddy.dev/v1alpha1",
        "kind": "GitRepository",
        "metadata": {"name": namespace, "namespace": namespace},
        "spec": {"url": url, "ref": {"branch": branch}, "interval": interval},
    });
    if secret {
        source["spec"]["secretRef"] = json!({"name": namespace});
    }
    let kustomization = json!({
        "apiVersion": "apply.eddy.dev/v1alpha1",
        "kind": "Kustomization",
        "metadata": {"name": namespace, "namespace": namespace},
        "spec": {
            "sourceRef": {"kind": "GitRepository", "name": namespace},
            "path": format!("./{path}"),
            "interval": "10m",
            "prune": true,
        },
    });
    vec![source, kustomization]
}

/// Creates or updates the Secret `namespace/namespace` with the Git credentials (none: no Secret).
async fn apply_secret(client: &Client, namespace: &str, data: &[(String, String)]) -> anyhow::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let string_data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": namespace, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "eddy"}},
        "type": "Opaque",
        "stringData": string_data,
    }))?;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    api.patch(
        namespace,
        &PatchParams::apply(install::FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await
    .with_context(|| format!("writing Secret {namespace}/{namespace}"))?;
    Ok(())
}

/// Waits until the GitRepository and the Kustomization are Ready on `commit`.
async fn wait_synced(
    client: &Client,
    namespace: &str,
    commit: &str,
    timeout: Duration,
    progress: &Progress,
) -> anyhow::Result<()> {
    progress.step(&format!("waiting for Eddy to sync commit {}", short(commit)));
    let sources: Api<GitRepository> = Api::namespaced(client.clone(), namespace);
    let kustomizations: Api<Kustomization> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    let mut source_done = false;
    loop {
        let mut why = String::new();
        if !source_done {
            match sources.get_opt(namespace).await? {
                Some(source) => {
                    let status = source.status.unwrap_or_default();
                    let revision = status.artifact.map(|a| a.revision).unwrap_or_default();
                    let ready = conditions::get(&status.conditions, READY);
                    if revision.contains(commit) && ready.is_some_and(|c| c.status == "True") {
                        progress.done(&format!("GitRepository {namespace} fetched {revision}"));
                        source_done = true;
                    } else {
                        why = ready.map_or("not reconciled yet".into(), |c| format!("{}: {}", c.reason, c.message));
                    }
                }
                None => why = "GitRepository not found".into(),
            }
        }
        if source_done {
            match kustomizations.get_opt(namespace).await? {
                Some(kustomization) => {
                    let status = kustomization.status.unwrap_or_default();
                    let applied = status.last_applied_revision.unwrap_or_default();
                    let ready = conditions::get(&status.conditions, READY);
                    if applied.contains(commit) && ready.is_some_and(|c| c.status == "True") {
                        progress.done(&format!("Kustomization {namespace} applied {applied}"));
                        return Ok(());
                    }
                    why = ready.map_or("not reconciled yet".into(), |c| format!("{}: {}", c.reason, c.message));
                }
                None => why = "Kustomization not found".into(),
            }
        }
        if Instant::now() > deadline {
            bail!(
                "Eddy did not sync commit {} within {}s: {why}",
                short(commit),
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_repository() {
        assert_eq!(clean_path("clusters/dev").unwrap(), "clusters/dev");
        assert_eq!(clean_path("./clusters/dev/").unwrap(), "clusters/dev");
        assert!(clean_path("../elsewhere").is_err());
        assert!(clean_path("clusters/../../x").is_err());
        assert!(clean_path("/").is_err());
        assert!(clean_path("a//b").is_err());
    }

    #[test]
    fn urls_are_checked_and_scp_syntax_becomes_ssh() {
        assert_eq!(
            normalize_url("git@github.com:org/fleet.git").unwrap(),
            "ssh://git@github.com/org/fleet.git"
        );
        assert_eq!(
            normalize_url("https://example.com/a.git").unwrap(),
            "https://example.com/a.git"
        );
        assert!(normalize_url("ftp://example.com/a.git").is_err());
        assert!(normalize_url("just-a-name").is_err());
    }

    #[test]
    fn a_kustomization_in_the_repository_is_kept_only_when_it_includes_the_components() {
        check_kustomization("k.yaml", KUSTOMIZATION).unwrap();
        let patched = "resources:\n  - ./components.yaml\n  - sync.yaml\npatches:\n  - path: flags.yaml\n";
        check_kustomization("k.yaml", patched).unwrap();
        let error = check_kustomization("k.yaml", "resources:\n  - components.yaml\n").unwrap_err();
        assert!(error.to_string().contains("does not list sync.yaml"), "{error}");
        assert!(check_kustomization("k.yaml", "resources: [").is_err());
    }

    #[test]
    fn passwords_never_show_in_urls() {
        assert_eq!(
            redact_url("https://me:s3cret@example.com/a.git"),
            "https://me:***@example.com/a.git"
        );
        assert_eq!(redact_url("https://example.com/a.git"), "https://example.com/a.git");
    }

    #[test]
    fn the_sync_objects_follow_the_path_and_use_the_secret_only_when_there_is_one() {
        let objects = sync_objects(
            "eddy-system",
            "https://example.com/a.git",
            "main",
            "clusters/dev",
            "1m",
            true,
        );
        assert_eq!(objects[0]["spec"]["secretRef"]["name"], "eddy-system");
        assert_eq!(objects[1]["spec"]["path"], "./clusters/dev");
        assert_eq!(objects[1]["spec"]["prune"], true);
        let open = sync_objects(
            "eddy-system",
            "https://example.com/a.git",
            "main",
            "clusters/dev",
            "1m",
            false,
        );
        assert!(open[0]["spec"].get("secretRef").is_none());
    }
}
