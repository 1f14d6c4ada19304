//! End-to-end tests against the local control plane (`tests/cluster/up.sh`; `scripts/test` starts
//! and stops it). One test binary, one module per area.

mod api;
mod canary;
mod canary_cli;
mod cli;
mod controllers;
mod drift_watch;
mod events;
mod flagger_compat;
mod gitrepository;
mod kustomization;
mod kustomization_more;
mod leave_alone;
mod live_cache;
mod notify;
mod ocirepository;
mod routers;
mod server_side_apply;
mod ssa;
