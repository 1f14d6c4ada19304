//! The artifact HTTP server: `GET /<kind>/<namespace>/<name>/<file>` streams a stored artifact.
//! Exactly four path segments, each percent-decoded and then refused if empty, `.`, `..`, or
//! holding a separator; the file must be a regular file (not a directory, not a link). Anything
//! else is 404, so there is no listing and nothing outside storage is reachable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The router serving `root`.
pub fn router(root: PathBuf) -> Router {
    Router::new().fallback(get(serve_artifact)).with_state(Arc::new(root))
}

async fn serve_artifact(State(root): State<Arc<PathBuf>>, uri: Uri) -> Response {
    let Some(relative) = confined_path(uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = root.join(relative);
    // symlink_metadata does not follow a final link; a link is not served.
    match tokio::fs::symlink_metadata(&path).await {
        Ok(metadata) if metadata.is_file() => {}
        _ => return StatusCode::NOT_FOUND.into_response(),
    }
    if !parents_are_real_dirs(&root, &path).await {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let length = file.metadata().await.map(|m| m.len()).unwrap_or_default();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response()
}

/// The storage-relative path for a request path, if it names `<kind>/<namespace>/<name>/<file>`
/// with safe segments.
pub(crate) fn confined_path(request_path: &str) -> Option<PathBuf> {
    let raw = request_path.strip_prefix('/')?;
    let mut segments = Vec::with_capacity(4);
    for segment in raw.split('/') {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8().ok()?;
        let unsafe_segment = decoded.is_empty()
            || decoded == "."
            || decoded == ".."
            || decoded.contains(['/', '\\', '\0'])
            || decoded.starts_with('.');
        if unsafe_segment {
            return None;
        }
        segments.push(decoded.into_owned());
    }
    (segments.len() == 4).then(|| segments.iter().collect())
}

/// No directory between the root and the file is a link: storage is written only by the store,
/// and a link planted there must not expose anything else.
async fn parents_are_real_dirs(root: &Path, path: &Path) -> bool {
    let mut current = path.parent();
    while let Some(dir) = current {
        if dir == root {
            return true;
        }
        match tokio::fs::symlink_metadata(dir).await {
            Ok(metadata) if metadata.is_dir() => current = dir.parent(),
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_four_safe_segments_are_accepted() {
        assert_eq!(
            confined_path("/gitrepository/apps/web/abc.tar.gz"),
            Some(PathBuf::from("gitrepository/apps/web/abc.tar.gz"))
        );
        for refused in [
            "/gitrepository/apps/web",
            "/gitrepository/apps/web/",
            "/gitrepository/apps/web/../../../etc/passwd",
            "/gitrepository/apps/%2e%2e/x.tar.gz",
            "/gitrepository/apps/web/%2E%2E",
            "/gitrepository/apps/web%2fother/x.tar.gz",
            "/gitrepository/apps/web/.incoming-123",
            "//etc/passwd/x/y",
            "/a/b/c/d/e",
            "relative/a/b/c",
        ] {
            assert_eq!(confined_path(refused), None, "{refused}");
        }
    }
}
