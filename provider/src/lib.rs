//! `terraform-provider-platform`: every offering of the platform catalog as a
//! Terraform resource type, served over tfplugin6.
//!
//! The key decision: the schema is *data*. Terraform asks for it before it
//! sends any configuration, 3–5 times per command in fresh processes, so the
//! catalog is located from the environment (or compiled in), parsed once per
//! process on first use, and everything — schema, validation, planning —
//! derives from that one snapshot. Layers: `plugin` (go-plugin process
//! protocol) → `server` (tfplugin6 wire, one fn per RPC) → `engine` (native
//! types, no gRPC) → `drivers` (real backends).

pub mod docs;
pub mod drivers;
pub mod engine;
pub mod plugin;
pub mod proto;
pub mod server;
pub mod tls_verify;

use std::sync::Arc;

/// The provider's source address, as used in `required_providers`.
pub const SOURCE_ADDRESS: &str = "registry.terraform.io/platform/platform";

/// The tfplugin6 service for the catalog the environment names.
pub fn service_from_env() -> server::ProviderService {
    let engine = Arc::new(engine::Engine::new(engine::CatalogSource::from_env()));
    // Parse the catalog while the handshake and TLS happen: nearly every
    // provider process is asked for the schema first (measured with 50
    // offerings: ~30 ms between TLS connected and the schema reply).
    let warm = engine.clone();
    std::thread::spawn(move || {
        let _ = warm.loaded();
    });
    server::ProviderService::new(engine)
}
