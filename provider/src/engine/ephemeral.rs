//! Ephemeral resources (Terraform ≥ 1.10): what backends offer that never
//! reaches the state (PostgreSQL's short-lived credentials). Older Terraform
//! does not know the schema field that declares them, so for it they simply
//! do not exist. The engine routes each type to its backend
//! ([`crate::drivers::Backend::ephemerals`]).

use super::{Diag, Engine};
pub use crate::drivers::Opened;

fn no_such(type_name: &str) -> Vec<Diag> {
    vec![Diag::error(
        "Unknown ephemeral resource type",
        format!("This provider has no ephemeral resource type {type_name:?}."),
    )]
}

impl Engine {
    /// The backend and its name for an ephemeral type of this catalog.
    fn ephemeral_owner(&self, type_name: &str) -> Option<(&'static str, &'static str)> {
        let loaded = self.loaded().ok()?;
        loaded.schemas.ephemeral_owner.get(type_name).copied()
    }

    pub fn validate_ephemeral(&self, type_name: &str, config: &platform_value::Value) -> Vec<Diag> {
        let Some((backend, suffix)) = self.ephemeral_owner(type_name) else {
            return no_such(type_name);
        };
        crate::drivers::backends()
            .iter()
            .find(|b| b.name() == backend)
            .map(|b| b.validate_ephemeral(suffix, config))
            .unwrap_or_default()
    }

    pub async fn open_ephemeral(
        &self,
        type_name: &str,
        config: &platform_value::Value,
    ) -> Result<Opened, Vec<Diag>> {
        let Some((backend, suffix)) = self.ephemeral_owner(type_name) else {
            return Err(no_such(type_name));
        };
        let registry = self.registry();
        let Some(connection) = registry.connection(backend) else {
            return Err(no_such(type_name));
        };
        connection.open_ephemeral(suffix, config).await
    }

    pub async fn close_ephemeral(&self, type_name: &str, private: &[u8]) -> Vec<Diag> {
        let Some((backend, suffix)) = self.ephemeral_owner(type_name) else {
            return no_such(type_name);
        };
        let registry = self.registry();
        match registry.connection(backend) {
            Some(connection) => connection.close_ephemeral(suffix, private).await,
            None => Vec::new(),
        }
    }
}
