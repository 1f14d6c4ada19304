//! The consumer side of the artifact contract: download an artifact with a size cap, verifying
//! its digest while streaming, into a temporary file that is only handed over once verified.

use std::io::{Seek, SeekFrom, Write};

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::store::hex;
use eddy_api::meta::Artifact;

/// Why a download failed. Messages name the artifact's path, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed or the server answered with an error.
    #[error("downloading artifact {path}: {reason}")]
    Download {
        /// The artifact's storage path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The artifact was not found (it may have just been garbage-collected).
    #[error("artifact {path} is not in storage (any more)")]
    NotFound {
        /// The artifact's storage path.
        path: String,
    },
    /// The body is larger than allowed.
    #[error("artifact {path} is larger than the {limit} byte limit")]
    TooLarge {
        /// The artifact's storage path.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// The body's digest is not the advertised one.
    #[error("artifact {path} has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// The artifact's storage path.
        path: String,
        /// What status.artifact.digest says.
        expected: String,
        /// What was downloaded.
        actual: String,
    },
    /// The advertised digest is not a sha256 digest.
    #[error("artifact {path} has an unsupported digest {digest:?}; only sha256 is supported")]
    UnsupportedDigest {
        /// The artifact's storage path.
        path: String,
        /// The digest.
        digest: String,
    },
    /// The temporary file could not be written.
    #[error("writing artifact {path} to a temporary file: {source}")]
    Io {
        /// The artifact's storage path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Downloads `artifact` into a temporary file, refusing more than `max_bytes` and any body whose
/// SHA-256 is not `artifact.digest`. The returned file is rewound to its start.
pub async fn fetch(client: &reqwest::Client, artifact: &Artifact, max_bytes: u64) -> Result<std::fs::File, FetchError> {
    let path = artifact.path.clone();
    let expected = match artifact.digest.strip_prefix("sha256:") {
        Some(hex) => hex.to_owned(),
        None if !artifact.digest.contains(':') => artifact.digest.clone(),
        None => {
            return Err(FetchError::UnsupportedDigest {
                path,
                digest: artifact.digest.clone(),
            });
        }
    };
    let download = |reason: String| FetchError::Download {
        path: path.clone(),
        reason,
    };
    let response = client
        .get(&artifact.url)
        .send()
        .await
        .map_err(|e| download(e.without_url().to_string()))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(FetchError::NotFound { path });
    }
    if !response.status().is_success() {
        return Err(download(format!("the server answered {}", response.status())));
    }
    if response.content_length().is_some_and(|length| length > max_bytes) {
        return Err(FetchError::TooLarge { path, limit: max_bytes });
    }

    let io_error = |source| FetchError::Io {
        path: path.clone(),
        source,
    };
    let mut file = tempfile::tempfile().map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| download(e.without_url().to_string()))?;
        received += chunk.len() as u64;
        if received > max_bytes {
            return Err(FetchError::TooLarge { path, limit: max_bytes });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(io_error)?;
    }
    let actual = hex(&hasher.finalize());
    if actual != expected {
        return Err(FetchError::DigestMismatch {
            path,
            expected: format!("sha256:{expected}"),
            actual: format!("sha256:{actual}"),
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    Ok(file)
}
