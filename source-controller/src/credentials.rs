//! Credentials from a source's Secret: `username`/`password` or `bearerToken` for HTTP(S),
//! `identity` and `known_hosts` for SSH. SSH material is written to files (mode 0600) in a
//! temporary directory that lives as long as the returned value.

use std::io::Write;

use eddy_source::artifact::DigestWriter;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::git::{Credentials, SshFiles};

/// Why the Secret could not be used. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The Secret does not exist.
    #[error("secret {namespace}/{name} not found")]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The Secret holds none of the keys Eddy reads, or only half of a pair.
    #[error("secret {namespace}/{name}: {problem}")]
    Invalid {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// Reading the Secret or writing the key files failed.
    #[error("reading secret {namespace}/{name}: {message}")]
    Read {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The cause.
        message: String,
    },
}

/// The keys of a Secret that credentials are built from.
const SECRET_KEYS: [&str; 5] = ["username", "password", "bearerToken", "identity", "known_hosts"];

/// Credentials and the temporary files backing them.
pub struct LoadedCredentials {
    /// What the Git layer uses.
    pub credentials: Credentials,
    /// Tells apart credentials built from different secret material.
    pub fingerprint: Fingerprint,
    _files: Option<tempfile::TempDir>,
}

impl LoadedCredentials {
    /// No credentials.
    pub fn none() -> Self {
        Self {
            credentials: Credentials::default(),
            fingerprint: Fingerprint::of(|_| None),
            _files: None,
        }
    }
}

/// A SHA-256 of the secret material credentials were built from: equal for equal material,
/// whichever Secret held it, and different for no credentials. It lives in memory only and has
/// neither `Debug` nor `Display`, so that it cannot reach a log or a status.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of the values `value` gives for [`SECRET_KEYS`].
    fn of<'a>(value: impl Fn(&str) -> Option<&'a [u8]>) -> Self {
        // Length-prefixed, so that no two sets of values make the same input.
        let mut input = Vec::new();
        for key in SECRET_KEYS {
            match value(key) {
                Some(bytes) => {
                    input.push(1);
                    input.extend((bytes.len() as u64).to_le_bytes());
                    input.extend_from_slice(bytes);
                }
                None => input.push(0),
            }
        }
        let mut hasher = DigestWriter::new(std::io::sink());
        hasher.write_all(&input).expect("a sink takes everything");
        Self(hasher.finish().0)
    }
}

/// Reads Secret `namespace/name` into credentials.
pub async fn load(client: &Client, namespace: &str, name: &str) -> Result<LoadedCredentials, CredentialsError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |message: String| CredentialsError::Read {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message,
    };
    let secret = api
        .get_opt(name)
        .await
        .map_err(|e| read(e.to_string()))?
        .ok_or_else(|| CredentialsError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| data.get(key).map(|v| String::from_utf8_lossy(&v.0).into_owned());
    let invalid = |problem: &str| CredentialsError::Invalid {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        problem: problem.to_owned(),
    };

    let mut credentials = Credentials::default();
    match (text("username"), text("password")) {
        (Some(user), Some(password)) => credentials.basic = Some((user, password)),
        (Some(_), None) | (None, Some(_)) => return Err(invalid("has only one of username and password")),
        (None, None) => {}
    }
    credentials.bearer = text("bearerToken");
    let mut files = None;
    match (data.get("identity"), data.get("known_hosts")) {
        (Some(identity), Some(known_hosts)) => {
            let dir = tempfile::tempdir().map_err(|e| read(e.to_string()))?;
            let identity_path = dir.path().join("identity");
            write_private(&identity_path, &identity.0).map_err(|e| read(e.to_string()))?;
            let known_hosts_path = dir.path().join("known_hosts");
            std::fs::write(&known_hosts_path, &known_hosts.0).map_err(|e| read(e.to_string()))?;
            credentials.ssh = Some(SshFiles {
                identity: identity_path,
                known_hosts: known_hosts_path,
                log: dir.path().join("ssh.log"),
            });
            files = Some(dir);
        }
        (Some(_), None) => {
            return Err(invalid(
                "has an SSH identity but no known_hosts; host keys are always verified",
            ));
        }
        (None, Some(_)) => return Err(invalid("has known_hosts but no SSH identity")),
        (None, None) => {}
    }
    if credentials.basic.is_none() && credentials.bearer.is_none() && credentials.ssh.is_none() {
        return Err(invalid(
            "has none of username/password, bearerToken, or identity/known_hosts",
        ));
    }
    Ok(LoadedCredentials {
        credentials,
        fingerprint: Fingerprint::of(|key| data.get(key).map(|v| v.0.as_slice())),
        _files: files,
    })
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    // OpenSSH refuses a key without a final newline.
    if !bytes.ends_with(b"\n") {
        file.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(material: &[(&str, &[u8])]) -> Fingerprint {
        Fingerprint::of(|key| material.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
    }

    #[test]
    fn fingerprints_tell_apart_secret_material_and_nothing_else() {
        let basic = fingerprint(&[("username", b"git"), ("password", b"s3cret")]);
        assert!(basic == fingerprint(&[("username", b"git"), ("password", b"s3cret"), ("unused", b"x")]));
        assert!(basic != fingerprint(&[("username", b"git"), ("password", b"other")]));
        // The same bytes under other keys, or split differently, are other material.
        assert!(basic != fingerprint(&[("username", b"gits3cret"), ("password", b"")]));
        assert!(basic != fingerprint(&[("bearerToken", b"git"), ("password", b"s3cret")]));
        assert!(basic != LoadedCredentials::none().fingerprint);
        assert!(
            fingerprint(&[("identity", b"key"), ("known_hosts", b"host a")])
                != fingerprint(&[("identity", b"key"), ("known_hosts", b"host b")])
        );
    }
}
