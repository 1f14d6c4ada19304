//! Component tests against real servers started on 127.0.0.1 (no Kubernetes): Git over smart
//! HTTP and SSH, a Matrix homeserver (Synapse), Prometheus for the Canary metric gates, and HTTP
//! endpoints for the Canary webhooks.

mod canary_webhooks;
mod dashboard;
mod git;
mod matrix;
mod metric_gates;
