//! Real Git servers for tests, on 127.0.0.1: Git's own `git http-backend` (smart HTTP) behind a
//! small HTTP server that checks basic auth, and OpenSSH's `sshd` with generated host and user
//! keys. Repositories are bare repositories the tests create and push to with the `git` CLI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri, header};
use tokio::io::AsyncWriteExt;

use crate::free_port;

/// Runs `git` with a fixed identity and no user or system configuration.
pub fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Eddy Tests")
        .env("GIT_AUTHOR_EMAIL", "tests@eddy.dev")
        .env("GIT_COMMITTER_NAME", "Eddy Tests")
        .env("GIT_COMMITTER_EMAIL", "tests@eddy.dev")
        .output()
        .with_context(|| format!("running git {args:?}"))?;
    if !output.status.success() {
        bail!("git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A bare repository and a work tree that pushes to it.
pub struct GitRepo {
    /// The bare repository servers serve.
    pub bare: PathBuf,
    work: PathBuf,
}

impl GitRepo {
    /// Creates `<root>/<name>.git` with branch `main` and a work tree beside it.
    pub fn create(root: &Path, name: &str) -> anyhow::Result<Self> {
        let bare = root.join(format!("{name}.git"));
        let work = root.join(format!("{name}.work"));
        std::fs::create_dir_all(&bare)?;
        git(&bare, &["init", "--quiet", "--bare", "--initial-branch=main"])?;
        // Let clients fetch a commit by id, as GitHub and GitLab do.
        git(&bare, &["config", "uploadpack.allowReachableSHA1InWant", "true"])?;
        // Let clients push over smart HTTP too (git http-backend refuses anonymous pushes).
        git(&bare, &["config", "http.receivepack", "true"])?;
        git(
            root,
            &["clone", "--quiet", bare.to_str().unwrap(), work.to_str().unwrap()],
        )?;
        git(&work, &["checkout", "--quiet", "-B", "main"])?;
        Ok(Self { bare, work })
    }

    /// The work tree.
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// Writes `files`, commits them on the current branch, pushes, and returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> anyhow::Result<String> {
        for (path, content) in files {
            let path = self.work.join(path);
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::write(path, content)?;
        }
        git(&self.work, &["add", "--all"])?;
        git(&self.work, &["commit", "--quiet", "--allow-empty", "-m", message])?;
        let branch = git(&self.work, &["rev-parse", "--abbrev-ref", "HEAD"])?;
        git(&self.work, &["push", "--quiet", "origin", &branch])?;
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Brings the work tree up to what others pushed to `main`.
    pub fn pull(&self) -> anyhow::Result<()> {
        git(&self.work, &["pull", "--quiet", "--rebase", "origin", "main"])?;
        Ok(())
    }

    /// Pushes HEAD to the full reference `name`, e.g. `refs/pull/1/head`.
    pub fn push_ref(&self, name: &str) -> anyhow::Result<()> {
        git(&self.work, &["push", "--quiet", "origin", &format!("HEAD:{name}")])?;
        Ok(())
    }

    /// Creates an annotated tag at HEAD and pushes it.
    pub fn tag(&self, name: &str) -> anyhow::Result<String> {
        git(&self.work, &["tag", "-a", name, "-m", name])?;
        git(&self.work, &["push", "--quiet", "origin", name])?;
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// What a [`GitHttpServer`] requires of every request.
#[derive(Clone, Debug)]
pub enum HttpAuth {
    /// Anything goes.
    None,
    /// `Authorization: Basic` with this user and password.
    Basic(String, String),
    /// `Authorization: Bearer` with this token.
    Bearer(String),
}

struct Backend {
    root: PathBuf,
    auth: HttpAuth,
    ls_refs: AtomicUsize,
    fetches: AtomicUsize,
}

/// `git http-backend` behind an HTTP server on 127.0.0.1, optionally requiring basic auth.
/// Dropping it stops the server.
pub struct GitHttpServer {
    /// Where bare repositories live.
    pub root: tempfile::TempDir,
    backend: Arc<Backend>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl GitHttpServer {
    /// Starts the server; with `credentials`, every request needs that user and password.
    pub async fn start(credentials: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let auth = match credentials {
            Some((user, password)) => HttpAuth::Basic(user.to_owned(), password.to_owned()),
            None => HttpAuth::None,
        };
        Self::start_with(auth).await
    }

    /// Starts the server requiring `auth` of every request.
    pub async fn start_with(auth: HttpAuth) -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let backend = Arc::new(Backend {
            root: root.path().to_owned(),
            auth,
            ls_refs: AtomicUsize::new(0),
            fetches: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback(serve_git).with_state(backend.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            root,
            backend,
            addr,
            task,
        })
    }

    /// Authenticated protocol-v2 `ls-refs` commands served so far.
    pub fn ls_refs(&self) -> usize {
        self.backend.ls_refs.load(Ordering::SeqCst)
    }

    /// Authenticated `fetch` commands (object transfers) served so far.
    pub fn fetches(&self) -> usize {
        self.backend.fetches.load(Ordering::SeqCst)
    }

    /// Creates a repository served at [`url`](Self::url).
    pub fn create_repo(&self, name: &str) -> anyhow::Result<GitRepo> {
        GitRepo::create(self.root.path(), name)
    }

    /// The clone URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.addr)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_git(
    State(backend): State<Arc<Backend>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let expected = match &backend.auth {
        HttpAuth::None => None,
        HttpAuth::Basic(user, password) => Some(format!("Basic {}", base64(&format!("{user}:{password}")))),
        HttpAuth::Bearer(token) => Some(format!("Bearer {token}")),
    };
    if let Some(expected) = expected {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")
                .body(Body::empty())
                .unwrap();
        }
    }
    if body.windows(13).any(|w| w == b"command=fetch") {
        backend.fetches.fetch_add(1, Ordering::SeqCst);
    } else if body.windows(15).any(|w| w == b"command=ls-refs") {
        backend.ls_refs.fetch_add(1, Ordering::SeqCst);
    }
    match run_backend(&backend.root, &method, &uri, &headers, body).await {
        Ok(response) => response,
        Err(err) => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from(err.to_string()))
            .unwrap(),
    }
}

/// Runs one CGI request through `git http-backend`.
async fn run_backend(
    root: &Path,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> anyhow::Result<Response<Body>> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(&body).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4))
        .or_else(|| output.stdout.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)))
        .context("git http-backend wrote no CGI header")?;
    let (head, rest) = output.stdout.split_at(split.0);
    let mut response = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value.split_whitespace().next().unwrap_or("500").parse().unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(name, value);
        }
    }
    Ok(response.body(Body::from(rest[split.1..].to_vec()))?)
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// OpenSSH's sshd on 127.0.0.1 with a generated host key, accepting one generated user key.
/// Repositories under [`root`](Self::root) are reachable as `ssh://root@127.0.0.1:<port>/<path>`.
/// Dropping it stops sshd.
pub struct SshServer {
    /// Where bare repositories live.
    pub root: tempfile::TempDir,
    port: u16,
    child: Child,
    /// The user's private key (OpenSSH format).
    pub user_key: String,
    /// A known_hosts line for this server.
    pub known_hosts: String,
    /// A known_hosts line with a different key for the same address.
    pub wrong_known_hosts: String,
}

impl SshServer {
    /// Generates keys and starts sshd.
    pub async fn start() -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let dir = root.path().join(".sshd");
        std::fs::create_dir_all(&dir)?;
        let keygen = |path: &Path| -> anyhow::Result<()> {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()?;
            anyhow::ensure!(status.success(), "ssh-keygen failed");
            Ok(())
        };
        keygen(&dir.join("host_key"))?;
        keygen(&dir.join("user_key"))?;
        keygen(&dir.join("other_host_key"))?;
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys"))?;
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd")?;

        let port = free_port().port();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\nAuthorizedKeysFile {keys}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel ERROR\n",
                host = dir.join("host_key").display(),
                pid = dir.join("sshd.pid").display(),
                keys = dir.join("authorized_keys").display(),
            ),
        )?;
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting /usr/sbin/sshd (Debian package openssh-server)")?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let host_line = |file: &str| -> anyhow::Result<String> {
            let key = std::fs::read_to_string(dir.join(file))?;
            let mut parts = key.split_whitespace();
            Ok(format!(
                "[127.0.0.1]:{port} {} {}\n",
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default()
            ))
        };
        Ok(Self {
            port,
            child,
            user_key: std::fs::read_to_string(dir.join("user_key"))?,
            known_hosts: host_line("host_key.pub")?,
            wrong_known_hosts: host_line("other_host_key.pub")?,
            root,
        })
    }

    /// Creates a repository served at [`url`](Self::url).
    pub fn create_repo(&self, name: &str) -> anyhow::Result<GitRepo> {
        GitRepo::create(self.root.path(), name)
    }

    /// The clone URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!(
            "ssh://{user}@127.0.0.1:{}{}/{name}.git",
            self.port,
            self.root.path().display()
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(super::base64("f"), "Zg==");
        assert_eq!(super::base64("fo"), "Zm8=");
        assert_eq!(super::base64("foo"), "Zm9v");
        assert_eq!(super::base64("user:pass"), "dXNlcjpwYXNz");
    }
}
