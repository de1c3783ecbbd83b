//! The provider binary as Terraform sees it: a process with a handshake line
//! and a gRPC server. Plaintext here (no `PLUGIN_CLIENT_CERT`); the mTLS path
//! is exercised by the acceptance tests with real Terraform.

mod postgres;
mod postgres_tls;
mod process;
mod redis;
#[path = "../../../acceptance/tls_cluster.rs"]
mod tls_cluster;
