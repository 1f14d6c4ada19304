//! Progress: a reconcile that applies a new revision writes its status once, at the end, unless
//! it runs longer than [`PROGRESS_AFTER`]; then `Reconciling` and `lastAttemptedRevision` are
//! written first, so a slow apply or health wait shows.

use super::*;

/// How long a reconcile that applies a new revision runs before its status says so (Reconciling,
/// lastAttemptedRevision). Most applies finish sooner and write their status once, at the end;
/// a long apply or health wait shows its progress.
pub(super) const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// Writes the status of a reconcile in progress; a failure is only logged, the final write
/// follows anyway.
pub(super) async fn write_progress(ctx: &Context, shared: &Shared, ks: &Kustomization, status: &KustomizationStatus) {
    let written = match serde_json::to_value(status) {
        Ok(value) => write_status(ctx, ks, value).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match written {
        Ok(()) => shared.written.record(ks, status),
        Err(error) => tracing::warn!(error = %error, "writing the progress status failed"),
    }
}
