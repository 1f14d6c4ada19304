//! Component tests against real servers started on 127.0.0.1 (no Kubernetes): Git over smart
//! HTTP and SSH, and a Matrix homeserver (Synapse).

mod git;
mod matrix;
