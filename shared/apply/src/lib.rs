//! eddy-apply: the apply engine. [`ssa`] server-side-applies rendered objects in stages with
//! per-object policies, takes over fields, detects drift, prunes, and keeps a watch cache of what
//! it applied; [`status`] is kstatus health of any object; [`inventory`] is Flux's record of what
//! a Kustomization applied.
//!
//! May depend on: eddy-api and kube's client and runtime. Never on Git, OCI, artifacts, the
//! kustomize engine or the controller runtime: it takes objects and returns reports.

pub mod inventory;
pub mod ssa;
pub mod status;
