//! Drivers provision the primitives an offering is composed of
//! (`driver = "postgres.role"` in the catalog). The registry maps those names
//! to implementations; a name the registry lacks is reported at plan (warning)
//! and refused at apply (error) — never a fake success.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Failure of one driver operation, in words fit for a Terraform diagnostic
/// (never containing a secret).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DriverError(pub String);

/// Values a primitive takes and produces.
pub type Values = hcl::Map<String, hcl::Value>;

/// One kind of primitive of one backend.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    /// Creates the object and returns its outputs; the outputs are all that
    /// read, update and delete get later, so they identify the object.
    async fn create(&self, inputs: &Values) -> Result<Values, DriverError>;
    /// Reads the object back; `None` when it no longer exists.
    async fn read(&self, outputs: &Values) -> Result<Option<Values>, DriverError>;
    /// Changes the object in place to match `inputs`.
    async fn update(&self, outputs: &Values, inputs: &Values) -> Result<Values, DriverError>;
    async fn delete(&self, outputs: &Values) -> Result<(), DriverError>;
}

/// The drivers compiled into this build, by catalog name.
#[derive(Default, Clone)]
pub struct Registry {
    drivers: BTreeMap<String, Arc<dyn Driver>>,
}

impl Registry {
    /// The drivers of this build. Backends register here behind their cargo
    /// features; this build has none yet.
    pub fn builtin() -> Registry {
        Registry::default()
    }

    pub fn register(&mut self, name: &str, driver: Arc<dyn Driver>) {
        self.drivers.insert(name.to_owned(), driver);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Driver>> {
        self.drivers.get(name)
    }
}
