//! Git access through gitoxide: [`resolve`] learns what a GitRepository's ref points at with one
//! ls-refs round trip (no clone, so an unchanged remote costs one request), and [`checkout`]
//! fetches exactly that revision, shallow, into a work tree. Both are blocking; callers run them
//! on the blocking pool. Credentials come from the object's Secret and never appear in errors.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use eddy_api::source::GitRepositoryRef;
use gix::bstr::ByteSlice;
use gix::remote::Direction;

/// How to authenticate to the remote.
#[derive(Clone, Default)]
pub struct Credentials {
    /// HTTP basic auth.
    pub basic: Option<(String, String)>,
    /// HTTP bearer token.
    pub bearer: Option<String>,
    /// SSH private key and known_hosts, written to files the `ssh` program reads.
    pub ssh: Option<SshFiles>,
}

/// Files holding the SSH identity and the accepted host keys.
#[derive(Clone)]
pub struct SshFiles {
    /// The private key.
    pub identity: PathBuf,
    /// known_hosts; a host key not listed there is refused.
    pub known_hosts: PathBuf,
    /// Where `ssh` writes its diagnostics, read back into error messages.
    pub log: PathBuf,
}

impl Credentials {
    /// The secret strings, to scrub from any message.
    fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        if let Some((_, password)) = &self.basic {
            secrets.push(password.clone());
        }
        secrets.extend(self.bearer.clone());
        secrets.retain(|s| !s.is_empty());
        secrets
    }

    fn config_overrides(&self, timeout_secs: u64) -> Vec<String> {
        let mut overrides = vec![
            // Fail instead of prompting; a controller has no terminal.
            "core.askPass=".to_owned(),
            "credential.helper=".to_owned(),
            format!("gitoxide.http.connectTimeout={}", timeout_secs * 1000),
        ];
        if let Some(token) = &self.bearer {
            overrides.push(format!("http.extraHeader=Authorization: Bearer {token}"));
        }
        // ConnectTimeout bounds the connection and the banner exchange; keepalives end a session
        // whose server stopped answering. Together they bound what a black-holed server costs.
        let bounded = format!(
            "-o ConnectTimeout={timeout_secs} -o ServerAliveInterval={} -o ServerAliveCountMax=2",
            keepalive_secs(timeout_secs)
        );
        if let Some(ssh) = &self.ssh {
            overrides.push(format!(
                "core.sshCommand=ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
                 -o StrictHostKeyChecking=yes -o BatchMode=yes {bounded} -E {}",
                ssh.identity.display(),
                ssh.known_hosts.display(),
                ssh.log.display()
            ));
        } else {
            // Without a key from the Secret, never fall back to keys or hosts of the machine.
            overrides.push(format!(
                "core.sshCommand=ssh -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityFile=/dev/null \
                 -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes {bounded}"
            ));
        }
        overrides
    }
}

/// The interval of ssh's keepalives: two unanswered ones end the session, about when the
/// operation's timeout passes.
fn keepalive_secs(timeout_secs: u64) -> u64 {
    (timeout_secs / 2).max(1)
}

/// The longest the HTTP transport waits for the server at any one time.
const HTTP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The HTTP transport's options for `url`, from `repo`'s configuration, with every wait for the
/// server (the response, then each read of its body) bounded by `timeout_secs`, at most
/// [`HTTP_WAIT`]: a server that accepts and never answers, or stops answering, ends the request
/// then, and with it the blocking thread that waits for it. (A server that trickles bytes is ended
/// by the fetch's interrupt flag, which its caller sets at its timeout.) `None` for transports
/// other than HTTP.
fn http_options(repo: &gix::Repository, url: &str, timeout_secs: u64) -> Option<Box<dyn std::any::Any>> {
    use gix_transport::client::blocking_io::http;
    let options = repo.transport_options(url, None).ok()??;
    let mut options = options.downcast::<http::Options>().ok()?;
    let timeout = std::time::Duration::from_secs(timeout_secs).min(HTTP_WAIT);
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |builder| Ok(builder.timeout(timeout)))),
        configure_request: None,
    };
    options.backend = Some(std::sync::Arc::new(std::sync::Mutex::new(backend)));
    Some(options)
}

/// What the remote's ref points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteHead {
    /// What to fetch: a full ref name, or a commit id.
    pub fetch: String,
    /// The commit, 40 hex digits.
    pub commit: String,
    /// The revision string for status: `main@sha1:..`, `v1.0.0@sha1:..`, `sha1:..`.
    pub revision: String,
}

/// Why talking to the remote failed. Messages name the URL (without credentials) and the cause.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The remote refused the credentials, or the SSH host key did not match.
    #[error("authentication to {url} failed: {message}")]
    Authentication {
        /// The URL, without credentials.
        url: String,
        /// The cause.
        message: String,
    },
    /// The ref does not exist on the remote.
    #[error("{what} not found on {url}")]
    RefNotFound {
        /// The URL, without credentials.
        url: String,
        /// The ref, e.g. `branch "main"`.
        what: String,
    },
    /// The semver range does not parse.
    #[error("invalid semver range {range:?}: {message}")]
    InvalidSemver {
        /// The range.
        range: String,
        /// The parser's complaint.
        message: String,
    },
    /// Credentials would travel unencrypted to a host that is not this machine.
    #[error("refusing to send credentials to {url} over plain http; use https (plain http is for local servers only)")]
    InsecureCredentials {
        /// The URL, without credentials.
        url: String,
    },
    /// Any other failure to reach or read the remote.
    #[error("git operation on {url} failed: {message}")]
    Remote {
        /// The URL, without credentials.
        url: String,
        /// The cause.
        message: String,
    },
}

impl GitError {
    /// The condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            GitError::Authentication { .. } => "AuthenticationFailed",
            GitError::RefNotFound { .. } | GitError::InvalidSemver { .. } => "GitReferenceNotFound",
            GitError::InsecureCredentials { .. } => "InsecureConnectionsDisallowed",
            GitError::Remote { .. } => "GitOperationFailed",
        }
    }
}

/// Finds what `reference` points at on `url` with one ls-refs call. A commit reference needs no
/// call at all.
pub fn resolve(
    url: &str,
    reference: &GitRepositoryRef,
    credentials: &Credentials,
    timeout_secs: u64,
) -> Result<RemoteHead, GitError> {
    crate::install_crypto_provider();
    refuse_insecure_credentials(url, credentials)?;
    let safe_url = redact_url(url);
    if let Some(commit) = &reference.commit {
        let revision = match &reference.branch {
            Some(branch) => format!("{branch}@sha1:{commit}"),
            None => format!("sha1:{commit}"),
        };
        return Ok(RemoteHead {
            fetch: commit.clone(),
            commit: commit.clone(),
            revision,
        });
    }
    let (prefix, what) = if let Some(name) = &reference.name {
        (name.clone(), format!("reference {name:?}"))
    } else if let Some(range) = &reference.semver {
        (
            "refs/tags/*:refs/tags/*".to_owned(),
            format!("a tag matching semver {range:?}"),
        )
    } else if let Some(tag) = &reference.tag {
        (format!("refs/tags/{tag}"), format!("tag {tag:?}"))
    } else {
        let branch = reference.branch.as_deref().unwrap_or("master");
        (format!("refs/heads/{branch}"), format!("branch {branch:?}"))
    };

    let refs = list_refs(url, &prefix, credentials, timeout_secs)?;
    let not_found = || GitError::RefNotFound {
        url: safe_url.clone(),
        what: what.clone(),
    };
    if let Some(range) = &reference.semver {
        let (tag, commit) = highest_semver_tag(range, &refs)?.ok_or_else(not_found)?;
        return Ok(RemoteHead {
            fetch: format!("refs/tags/{tag}"),
            revision: format!("{tag}@sha1:{commit}"),
            commit,
        });
    }
    let (name, commit) = refs
        .into_iter()
        .find(|(name, _)| *name == prefix)
        .ok_or_else(not_found)?;
    let short = if reference.name.is_some() {
        name.clone()
    } else {
        name.trim_start_matches("refs/heads/")
            .trim_start_matches("refs/tags/")
            .to_owned()
    };
    Ok(RemoteHead {
        fetch: name,
        revision: format!("{short}@sha1:{commit}"),
        commit,
    })
}

/// The refs under `prefix` (a full name or a `refs/tags/*` pattern) and the commits they point
/// at, annotated tags peeled.
fn list_refs(
    url: &str,
    prefix: &str,
    credentials: &Credentials,
    timeout_secs: u64,
) -> Result<Vec<(String, String)>, GitError> {
    let remote_error = |message: String| classify(url, credentials, message);
    let scratch = tempfile::tempdir().map_err(|e| remote_error(chain(&e)))?;
    gix::init_bare(scratch.path()).map_err(|e| remote_error(chain(&e)))?;
    let repo = gix::open_opts(
        scratch.path(),
        gix::open::Options::isolated().config_overrides(credentials.config_overrides(timeout_secs)),
    )
    .map_err(|e| remote_error(chain(&e)))?;
    let remote = repo
        .remote_at(url)
        .and_then(|r| r.with_refspecs(Some(prefix), Direction::Fetch))
        .map_err(|e| remote_error(chain(&e)))?;
    let mut connection = remote.connect(Direction::Fetch).map_err(|e| remote_error(chain(&e)))?;
    let basic = credentials.basic.clone();
    connection.set_credentials(move |action| basic_credentials(action, basic.as_ref()));
    if let Some(options) = http_options(&repo, url, timeout_secs) {
        connection.set_transport_options(options);
    }
    let (ref_map, _) = connection
        .ref_map(gix::progress::Discard, Default::default())
        .map_err(|e| remote_error(chain(&e)))?;
    Ok(ref_map
        .remote_refs
        .iter()
        .filter_map(|r| {
            let (name, target, peeled) = r.unpack();
            let commit = peeled.or(target)?;
            Some((name.to_str_lossy().into_owned(), commit.to_hex().to_string()))
        })
        .collect())
}

/// Fetches `head` shallowly into `dir` (which must not exist or be empty) and checks it out.
/// Returns the commit checked out, which is `head.commit` unless the ref moved in between.
pub fn checkout(
    url: &str,
    head: &RemoteHead,
    credentials: &Credentials,
    timeout_secs: u64,
    dir: &Path,
    interrupt: &AtomicBool,
) -> Result<String, GitError> {
    crate::install_crypto_provider();
    refuse_insecure_credentials(url, credentials)?;
    let remote_error = |message: String| classify(url, credentials, message);
    let basic = credentials.basic.clone();
    let owned_url = url.to_owned();
    let mut prepare = gix::prepare_clone(url, dir)
        .map_err(|e| remote_error(chain(&e)))?
        .with_in_memory_config_overrides(credentials.config_overrides(timeout_secs))
        .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(
            1.try_into().expect("one is not zero"),
        ))
        .with_revision(Some(head.fetch.as_str()))
        .map_err(|e| remote_error(chain(&e)))?
        .configure_connection(move |connection| {
            let basic = basic.clone();
            connection.set_credentials(move |action| basic_credentials(action, basic.as_ref()));
            if let Some(options) = http_options(connection.remote().repo(), &owned_url, timeout_secs) {
                connection.set_transport_options(options);
            }
            Ok(())
        });
    let (mut checkout, _) = prepare
        .fetch_then_checkout(gix::progress::Discard, interrupt)
        .map_err(|e| remote_error(chain(&e)))?;
    let (repo, _) = checkout
        .main_worktree(gix::progress::Discard, interrupt)
        .map_err(|e| remote_error(chain(&e)))?;
    let commit = repo.head_id().map_err(|e| remote_error(chain(&e)))?;
    Ok(commit.to_hex().to_string())
}

/// The only credentials source: the Secret's user and password, or none. Never a prompt, never
/// the machine's credential helpers.
fn basic_credentials(
    action: gix::credentials::helper::Action,
    basic: Option<&(String, String)>,
) -> Result<Option<gix::credentials::protocol::Outcome>, gix::Error> {
    match (action, basic) {
        (gix::credentials::helper::Action::Get(context), Some((username, password))) => {
            Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: username.clone(),
                    password: password.clone(),
                    oauth_refresh_token: None,
                },
                next: context.into(),
            }))
        }
        _ => Ok(None),
    }
}

/// The highest tag satisfying `range`, with its commit. Tags may carry a leading `v`.
pub fn highest_semver_tag(range: &str, refs: &[(String, String)]) -> Result<Option<(String, String)>, GitError> {
    let requirement = parse_range(range)?;
    Ok(refs
        .iter()
        .filter_map(|(name, commit)| {
            let tag = name.strip_prefix("refs/tags/")?;
            let version = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
            requirement
                .matches(&version)
                .then(|| (version, tag.to_owned(), commit.clone()))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, tag, commit)| (tag, commit)))
}

fn parse_range(range: &str) -> Result<semver::VersionReq, GitError> {
    crate::versions::parse_range(range).map_err(|message| GitError::InvalidSemver {
        range: range.to_owned(),
        message,
    })
}

/// Sorts a failure into authentication or other, with secrets and URL credentials removed.
fn classify(url: &str, credentials: &Credentials, message: String) -> GitError {
    let mut message = message;
    if let Some(log) = credentials
        .ssh
        .as_ref()
        .and_then(|ssh| std::fs::read_to_string(&ssh.log).ok())
    {
        // ssh's own diagnosis ("Host key verification failed.", "Permission denied (publickey).")
        // without its banner lines.
        let said: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('@') && !l.contains("NASTY") && !l.contains("eavesdropping"))
            .collect();
        if let Some(last) = said.last() {
            message = format!("{message}: ssh: {last}");
        }
    }
    let mut message = redact(&message, &credentials.secrets());
    if let Some(userinfo) = url_userinfo(url) {
        message = message.replace(&userinfo, "");
    }
    let lower = message.to_lowercase();
    let url = redact_url(url);
    let authentication = [
        "401",
        "403",
        "authentication",
        "permission denied",
        "host key verification failed",
        "no matching host key",
        "could not read username",
        "obtain credentials",
        "credentials",
        "unauthorized",
    ];
    if authentication.iter().any(|needle| lower.contains(needle)) {
        GitError::Authentication { url, message }
    } else {
        GitError::Remote { url, message }
    }
}

/// Basic auth and bearer tokens go over plain http only to loopback hosts. The host is the one
/// gix will connect to, from gix's own URL parser (so `http://evil?@127.0.0.1/` is `evil`).
fn refuse_insecure_credentials(url: &str, credentials: &Credentials) -> Result<(), GitError> {
    if credentials.basic.is_none() && credentials.bearer.is_none() {
        return Ok(());
    }
    let refused = || GitError::InsecureCredentials { url: redact_url(url) };
    let parsed = gix::url::parse(gix::bstr::BStr::new(url)).map_err(|_| refused())?;
    if parsed.scheme != gix::url::Scheme::Http {
        return Ok(());
    }
    let host = parsed
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback { Ok(()) } else { Err(refused()) }
}

/// An error and its sources, `: `-separated: gix's top-level messages alone rarely say why.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn redact(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "***"))
}

fn url_userinfo(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    Some(format!("{userinfo}@"))
}

/// `url` without any `user:password@`.
pub fn redact_url(url: &str) -> String {
    match url_userinfo(url) {
        Some(userinfo) => url.replacen(&userinfo, "", 1),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("refs/tags/{n}"), format!("{i:040}")))
            .collect()
    }

    #[test]
    fn semver_picks_the_highest_matching_tag() {
        let tags = refs(&["v1.0.0", "v1.2.0", "v1.10.0", "v2.0.0", "not-a-version", "1.5.0"]);
        let (tag, _) = highest_semver_tag(">=1.0.0 <2.0.0", &tags).unwrap().unwrap();
        assert_eq!(tag, "v1.10.0");
        let (tag, _) = highest_semver_tag("1.x", &tags).unwrap().unwrap();
        assert_eq!(tag, "v1.10.0");
        let (tag, _) = highest_semver_tag(">= 1.0.0, < 1.3.0", &tags).unwrap().unwrap();
        assert_eq!(tag, "v1.2.0");
        assert_eq!(highest_semver_tag(">=3.0.0", &tags).unwrap(), None);
        assert!(matches!(
            highest_semver_tag("one point oh", &tags),
            Err(GitError::InvalidSemver { .. })
        ));
    }

    #[test]
    fn credentials_over_plain_http_go_only_to_loopback() {
        let credentials = Credentials {
            bearer: Some("token".into()),
            ..Credentials::default()
        };
        assert!(refuse_insecure_credentials("http://127.0.0.1:8080/r.git", &credentials).is_ok());
        assert!(refuse_insecure_credentials("http://localhost/r.git", &credentials).is_ok());
        assert!(refuse_insecure_credentials("http://[::1]:80/r.git", &credentials).is_ok());
        assert!(refuse_insecure_credentials("https://git.example.test/r.git", &credentials).is_ok());
        let err = refuse_insecure_credentials("http://git.example.test/r.git", &credentials).unwrap_err();
        assert!(err.to_string().contains("over plain http"), "{err}");
        assert!(refuse_insecure_credentials("http://git.example.test/r.git", &Credentials::default()).is_ok());
        // The host is what the URL parser says it is, not whatever follows the last '@'.
        for disguised in [
            "http://git.example.test?@127.0.0.1/r.git",
            "http://git.example.test#@127.0.0.1/r.git",
        ] {
            assert!(
                refuse_insecure_credentials(disguised, &credentials).is_err(),
                "{disguised}"
            );
        }
    }

    #[test]
    fn credentials_never_reach_messages() {
        let credentials = Credentials {
            basic: Some(("git".into(), "s3cret-pass".into())),
            ..Credentials::default()
        };
        let err = classify(
            "https://git:s3cret-pass@example.test/repo.git",
            &credentials,
            "HTTP 401 from https://git:s3cret-pass@example.test/repo.git with password s3cret-pass".into(),
        );
        let text = err.to_string();
        assert!(matches!(err, GitError::Authentication { .. }));
        assert!(!text.contains("s3cret-pass"), "{text}");
        assert!(text.contains("https://example.test/repo.git"), "{text}");
    }
}
