//! OCI artifacts in Flux's format: a manifest whose config has media type
//! `application/vnd.cncf.flux.config.v1+json` and whose one layer is the tar.gz of a directory
//! (`application/vnd.cncf.flux.content.v1.tar+gzip`), annotated with the source URL and revision.
//! `eddy push artifact` produces them; source-controller resolves and pulls them, verifying every
//! blob against its descriptor's digest.

use std::collections::BTreeMap;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::artifact::hex;

/// Media type of the config blob of a Flux-format artifact.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.flux.config.v1+json";
/// Media type of the content layer of a Flux-format artifact.
pub const CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
/// Annotation with the source the artifact was built from.
pub const SOURCE_ANNOTATION: &str = "org.opencontainers.image.source";
/// Annotation with the source revision.
pub const REVISION_ANNOTATION: &str = "org.opencontainers.image.revision";
/// Annotation with the creation time.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// Why a registry operation failed. Messages name the repository, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The URL is not `oci://<registry>/<repository>`.
    #[error("invalid OCI URL {url:?}: {message}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The registry refused the credentials.
    #[error("authentication to {repository} failed: {message}")]
    Authentication {
        /// `<registry>/<repository>`.
        repository: String,
        /// The cause.
        message: String,
    },
    /// No tag, digest or semver match.
    #[error("{what} not found in {repository}")]
    NotFound {
        /// `<registry>/<repository>`.
        repository: String,
        /// What was looked for.
        what: String,
    },
    /// No layer has the selected media type.
    #[error("artifact {reference} has no layer with media type {media_type:?} (it has {available:?})")]
    NoSuchLayer {
        /// The artifact.
        reference: String,
        /// The media type asked for.
        media_type: String,
        /// The media types present.
        available: Vec<String>,
    },
    /// A blob's content does not match its descriptor's digest.
    #[error("blob of {reference} does not match its digest {expected}: {message}")]
    DigestMismatch {
        /// The artifact.
        reference: String,
        /// The descriptor's digest.
        expected: String,
        /// What was found.
        message: String,
    },
    /// The semver range or filter does not parse.
    #[error("invalid {what} {value:?}: {message}")]
    InvalidSelector {
        /// `semver range` or `semverFilter`.
        what: &'static str,
        /// The value.
        value: String,
        /// The parser's complaint.
        message: String,
    },
    /// Any other registry or I/O failure.
    #[error("registry operation on {repository} failed: {message}")]
    Registry {
        /// `<registry>/<repository>`.
        repository: String,
        /// The cause.
        message: String,
    },
}

impl OciError {
    /// The condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            OciError::Authentication { .. } => "AuthenticationFailed",
            OciError::InvalidUrl { .. } | OciError::InvalidSelector { .. } => "URLInvalid",
            OciError::NotFound { .. } | OciError::NoSuchLayer { .. } => "OCIArtifactPullFailed",
            OciError::DigestMismatch { .. } => "OCIArtifactVerificationFailed",
            OciError::Registry { .. } => "OCIArtifactPullFailed",
        }
    }
}

/// A repository in a registry, from `oci://<registry>/<repository>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// `<registry>/<repository>`, e.g. `127.0.0.1:5000/eddy/app`.
    pub name: String,
    /// The registry host (and port).
    pub registry: String,
}

impl Repository {
    /// Parses `oci://<registry>/<repository>` (no tag or digest).
    pub fn parse(url: &str) -> Result<Self, OciError> {
        let invalid = |message: &str| OciError::InvalidUrl {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let name = url
            .strip_prefix("oci://")
            .ok_or_else(|| invalid("must start with oci://"))?;
        let (registry, path) = name
            .split_once('/')
            .ok_or_else(|| invalid("needs a repository after the registry"))?;
        if registry.is_empty() || path.is_empty() || name.contains('@') || path.contains(':') {
            return Err(invalid("expected oci://<registry>/<repository> without tag or digest"));
        }
        Ok(Self {
            name: name.to_owned(),
            registry: registry.to_owned(),
        })
    }

    /// The reference to tag `tag`.
    pub fn tag(&self, tag: &str) -> Result<Reference, OciError> {
        self.reference(&format!("{}:{tag}", self.name))
    }

    /// The reference to manifest `digest`.
    pub fn digest(&self, digest: &str) -> Result<Reference, OciError> {
        self.reference(&format!("{}@{digest}", self.name))
    }

    fn reference(&self, text: &str) -> Result<Reference, OciError> {
        text.parse().map_err(|e: oci_client::ParseError| OciError::InvalidUrl {
            url: format!("oci://{text}"),
            message: e.to_string(),
        })
    }

    fn error(&self, err: oci_client::errors::OciDistributionError) -> OciError {
        let message = err.to_string();
        let lower = message.to_lowercase();
        let refused = ["unauthorized", "not authorized", "401", "403", "denied"];
        if refused.iter().any(|word| lower.contains(word)) {
            OciError::Authentication {
                repository: self.name.clone(),
                message,
            }
        } else if lower.contains("manifest unknown") || lower.contains("404") || lower.contains("not found") {
            OciError::NotFound {
                repository: self.name.clone(),
                what: message,
            }
        } else if lower.contains("digest") {
            OciError::DigestMismatch {
                reference: self.name.clone(),
                expected: String::new(),
                message,
            }
        } else {
            OciError::Registry {
                repository: self.name.clone(),
                message,
            }
        }
    }
}

/// A registry client; `insecure` talks plain HTTP.
pub fn client(insecure: bool) -> Client {
    crate::install_crypto_provider();
    Client::new(ClientConfig {
        protocol: if insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..ClientConfig::default()
    })
}

/// Basic auth for `registry` from a `.dockerconfigjson` document, or anonymous when it has none.
pub fn docker_config_auth(json: &[u8], registry: &str) -> Result<RegistryAuth, String> {
    let config: serde_json::Value = serde_json::from_slice(json).map_err(|e| format!("not a docker config: {e}"))?;
    let Some(auths) = config["auths"].as_object() else {
        return Ok(RegistryAuth::Anonymous);
    };
    let entry = auths.iter().find(|(host, _)| {
        let host = host.trim_start_matches("https://").trim_start_matches("http://");
        host.split('/').next() == Some(registry)
    });
    let Some((_, entry)) = entry else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let (Some(user), Some(password)) = (entry["username"].as_str(), entry["password"].as_str()) {
        return Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()));
    }
    let encoded = entry["auth"]
        .as_str()
        .ok_or("an auths entry has neither auth nor username/password")?;
    let decoded = decode_base64(encoded).ok_or("an auths entry's auth is not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "an auths entry's auth is not text".to_owned())?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or("an auths entry's auth is not user:password")?;
    Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// What a tag, semver range or digest resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedArtifact {
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// `<tag>@sha256:<hex>`, or `sha256:<hex>` for a digest reference.
    pub revision: String,
}

/// Resolves an OCIRepository's ref without pulling: a HEAD on the manifest, after listing tags
/// for a semver range.
pub async fn resolve(
    client: &Client,
    auth: &RegistryAuth,
    repository: &Repository,
    reference: &eddy_api::source::OCIRepositoryRef,
) -> Result<ResolvedArtifact, OciError> {
    if let Some(digest) = &reference.digest {
        return Ok(ResolvedArtifact {
            digest: digest.clone(),
            revision: digest.clone(),
        });
    }
    let tag = match &reference.semver {
        Some(range) => {
            let tags = client
                .list_tags(&repository.tag("latest")?, auth, None, None)
                .await
                .map_err(|e| repository.error(e))?
                .tags;
            highest_semver(range, reference.semver_filter.as_deref(), &tags)?.ok_or_else(|| OciError::NotFound {
                repository: repository.name.clone(),
                what: format!("a tag matching semver {range:?}"),
            })?
        }
        None => reference.tag.clone().unwrap_or_else(|| "latest".to_owned()),
    };
    let digest = client
        .fetch_manifest_digest(&repository.tag(&tag)?, auth)
        .await
        .map_err(|e| match repository.error(e) {
            OciError::NotFound { repository, .. } => OciError::NotFound {
                repository,
                what: format!("tag {tag:?}"),
            },
            other => other,
        })?;
    Ok(ResolvedArtifact {
        revision: format!("{tag}@{digest}"),
        digest,
    })
}

/// The highest tag satisfying `range` (and matching `filter`, a regular expression, if given).
pub fn highest_semver(range: &str, filter: Option<&str>, tags: &[String]) -> Result<Option<String>, OciError> {
    let requirement = crate::versions::parse_range(range).map_err(|message| OciError::InvalidSelector {
        what: "semver range",
        value: range.to_owned(),
        message,
    })?;
    let filter = filter
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| OciError::InvalidSelector {
            what: "semverFilter",
            value: filter.unwrap_or_default().to_owned(),
            message: e.to_string(),
        })?;
    Ok(tags
        .iter()
        .filter(|tag| filter.as_ref().is_none_or(|f| f.is_match(tag)))
        .filter_map(|tag| {
            let version = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
            requirement.matches(&version).then_some((version, tag))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, tag)| tag.clone()))
}

/// A pulled layer, verified, in a temporary file.
pub struct PulledLayer {
    /// The blob, rewound.
    pub file: std::fs::File,
    /// Its media type.
    pub media_type: String,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Pulls the layer of manifest `digest` that has `media_type` (the first layer when `None`),
/// checking the blob against the descriptor's digest while streaming it to a temporary file.
pub async fn pull_layer(
    client: &Client,
    auth: &RegistryAuth,
    repository: &Repository,
    digest: &str,
    media_type: Option<&str>,
    max_bytes: u64,
) -> Result<PulledLayer, OciError> {
    let reference = repository.digest(digest)?;
    let (manifest, _) = client
        .pull_image_manifest(&reference, auth)
        .await
        .map_err(|e| repository.error(e))?;
    let layer: &OciDescriptor = match media_type {
        Some(wanted) => manifest.layers.iter().find(|l| l.media_type == wanted),
        None => manifest.layers.first(),
    }
    .ok_or_else(|| OciError::NoSuchLayer {
        reference: reference.whole(),
        media_type: media_type.unwrap_or("(any)").to_owned(),
        available: manifest.layers.iter().map(|l| l.media_type.clone()).collect(),
    })?;
    if u64::try_from(layer.size).unwrap_or(u64::MAX) > max_bytes {
        return Err(OciError::Registry {
            repository: repository.name.clone(),
            message: format!("layer of {} bytes is over the {max_bytes} byte limit", layer.size),
        });
    }
    let io = |e: std::io::Error| OciError::Registry {
        repository: repository.name.clone(),
        message: e.to_string(),
    };
    let file = tempfile::tempfile().map_err(io)?;
    let mut sink = tokio::fs::File::from_std(file.try_clone().map_err(io)?);
    client
        .pull_blob(&reference, layer, &mut sink)
        .await
        .map_err(|e| match repository.error(e) {
            OciError::DigestMismatch { reference, message, .. } => OciError::DigestMismatch {
                reference,
                expected: layer.digest.clone(),
                message,
            },
            other => other,
        })?;
    sink.flush().await.map_err(io)?;
    // Check again ourselves: the contract is that no unverified byte becomes an artifact.
    let mut file = file;
    let actual = sha256_of(&mut file).map_err(io)?;
    if format!("sha256:{actual}") != layer.digest {
        return Err(OciError::DigestMismatch {
            reference: reference.whole(),
            expected: layer.digest.clone(),
            message: format!("content has sha256:{actual}"),
        });
    }
    Ok(PulledLayer {
        file,
        media_type: layer.media_type.clone(),
        annotations: manifest.annotations.clone().unwrap_or_default().into_iter().collect(),
    })
}

fn sha256_of(file: &mut std::fs::File) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(hex(&hasher.finalize()))
}

/// Pushes `content` (a tar.gz) as a Flux-format artifact to `repository:tag`, annotated with
/// `source` and `revision`. Returns the manifest digest.
pub async fn push(
    client: &Client,
    auth: &RegistryAuth,
    repository: &Repository,
    tag: &str,
    content: Vec<u8>,
    source: &str,
    revision: &str,
) -> Result<String, OciError> {
    let reference = repository.tag(tag)?;
    let annotations = BTreeMap::from([
        (SOURCE_ANNOTATION.to_owned(), source.to_owned()),
        (REVISION_ANNOTATION.to_owned(), revision.to_owned()),
        (
            CREATED_ANNOTATION.to_owned(),
            k8s_openapi::jiff::Timestamp::now().to_string(),
        ),
    ]);
    let layer = ImageLayer::new(content, CONTENT_MEDIA_TYPE.to_owned(), None);
    let config = Config::new(b"{}".to_vec(), CONFIG_MEDIA_TYPE.to_owned(), None);
    let manifest = oci_client::manifest::OciImageManifest::build(
        std::slice::from_ref(&layer),
        &config,
        Some(annotations.into_iter().collect()),
    );
    client
        .push(&reference, &[layer], config, auth, Some(manifest))
        .await
        .map_err(|e| repository.error(e))?;
    client
        .fetch_manifest_digest(&reference, auth)
        .await
        .map_err(|e| repository.error(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_registry_and_repository() {
        let repo = Repository::parse("oci://127.0.0.1:5000/eddy/app").unwrap();
        assert_eq!(repo.registry, "127.0.0.1:5000");
        assert_eq!(repo.name, "127.0.0.1:5000/eddy/app");
        assert_eq!(repo.tag("v1").unwrap().whole(), "127.0.0.1:5000/eddy/app:v1");
        for bad in [
            "https://x/y",
            "oci://registry",
            "oci://r/app:v1",
            "oci://r/app@sha256:00",
        ] {
            assert!(Repository::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_config_gives_basic_auth_for_the_registry() {
        // "user:pass" in base64.
        let json =
            br#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},"other.test":{"username":"a","password":"b"}}}"#;
        assert!(
            matches!(docker_config_auth(json, "127.0.0.1:5000").unwrap(), RegistryAuth::Basic(u, p) if u == "user" && p == "pass")
        );
        assert!(
            matches!(docker_config_auth(json, "other.test").unwrap(), RegistryAuth::Basic(u, p) if u == "a" && p == "b")
        );
        assert!(matches!(
            docker_config_auth(json, "elsewhere.test").unwrap(),
            RegistryAuth::Anonymous
        ));
        assert!(docker_config_auth(b"not json", "x").is_err());
    }

    #[test]
    fn semver_with_a_filter_picks_the_highest_match() {
        let tags: Vec<String> = ["1.0.0", "1.2.0", "1.3.0-rc.1", "v1.4.0-dev", "2.0.0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            highest_semver(">=1.0.0 <2.0.0", None, &tags).unwrap().as_deref(),
            Some("1.2.0")
        );
        assert_eq!(
            highest_semver(">=1.0.0", Some(r"^1\.2"), &tags).unwrap().as_deref(),
            Some("1.2.0")
        );
        // As in Cargo, a pre-release matches only a range that names that version's pre-releases.
        assert_eq!(
            highest_semver(">=1.4.0-0", Some("-dev$"), &tags).unwrap().as_deref(),
            Some("v1.4.0-dev")
        );
        assert!(highest_semver("bogus", None, &tags).is_err());
    }
}
