//! Drivers provision the primitives an offering is composed of
//! (`driver = "postgres.role"` in the catalog).
//!
//! Each backend (one module per backend, behind a cargo feature) offers a set
//! of primitive kinds. Which kinds exist is known at build time — plan checks
//! a catalog against it — while connections are made from the provider block
//! at ConfigureProvider, lazily, on first use.
//!
//! **Contract of a primitive's state:** create, read, update and import
//! return one map holding every managed input *as it really is* plus the
//! primitive's outputs. The engine keeps it per primitive; `read` compares it
//! with the real object, so an out-of-band change shows up as drift.

pub mod postgres;

use std::collections::BTreeMap;
use std::sync::Arc;

/// Failure of one driver operation, in words fit for a Terraform diagnostic.
/// **Never** contains a secret (passwords are not formatted into errors).
/// The second field names the primitive input the error is about, when it is
/// about one (a refused role or schema), so the engine can point Terraform's
/// diagnostic at the resource attribute that fed it.
/// The third field is set when the object is this resource's but another
/// instance of it took it over ([`DriverError::superseded`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DriverError(pub String, pub Option<String>, pub bool);

impl DriverError {
    pub fn new(message: impl Into<String>) -> Self {
        DriverError(message.into(), None, false)
    }

    /// An error about the primitive input `input`.
    pub fn at_input(message: impl Into<String>, input: &str) -> Self {
        DriverError(message.into(), Some(input.to_owned()), false)
    }

    /// The object carries this resource's marker with another generation:
    /// another instance of the same resource manages it now. Not this
    /// instance's to change or drop (a delete leaves it, with a warning).
    pub fn superseded(message: impl Into<String>) -> Self {
        DriverError(message.into(), None, true)
    }

    pub fn is_superseded(&self) -> bool {
        self.2
    }
}

/// Values a primitive takes and its state.
pub type Values = hcl::Map<String, hcl::Value>;

/// Whom an object belongs to. Drivers record it on every object they create
/// (the ownership marker) and refuse to alter or drop an object whose marker
/// names someone else, or that has none and was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Offering name, e.g. `postgres_database`.
    pub offering: String,
    /// The Terraform resource's `id`.
    pub resource_id: String,
    /// Primitive name inside the offering's composition, e.g. `owner`.
    pub primitive: String,
    /// The instance's generation: random per create or import, kept in the
    /// resource's `id` (`orders~1f2e3d4c5b6a`). `None` for instances made by
    /// provider versions before generations.
    pub generation: Option<String>,
}

/// What [`Driver::find`] saw where a primitive's inputs say its object is.
#[derive(Debug)]
pub enum Found {
    /// There is no such object.
    Missing,
    /// The object exists and its ownership marker names exactly this owner
    /// (offering, resource id, primitive): its state, as `read` would give it.
    /// What cannot be read back (a generated password) is absent.
    Ours(Values),
    /// The object carries this resource's marker with another generation:
    /// made by an apply whose state was not saved (a crash), or held by
    /// another instance of the same resource. A create adopts it; a delete
    /// leaves it.
    OtherGeneration(Values),
    /// The object is this owner's by another sign (a database owned by this
    /// resource's own marked role) but lacks its own marker: its create was
    /// cut short before the marker, which goes on last. Adopted like `Ours`,
    /// and the composition counts as unfinished.
    Unfinished(Values),
    /// The object exists but is not this owner's (no marker, or another
    /// resource's): why, in words fit for a diagnostic.
    Foreign(DriverError),
}

/// One kind of primitive of one backend.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    /// Creates the object and returns its state.
    async fn create(&self, owner: &Owner, inputs: &Values) -> Result<Values, DriverError>;
    /// Reads the object `state` describes; `None` when it no longer exists.
    /// What cannot be read back (a password) is carried over from `state`.
    async fn read(&self, state: &Values) -> Result<Option<Values>, DriverError>;
    /// Changes the object in place to match `inputs`; returns the new state.
    async fn update(
        &self,
        owner: &Owner,
        state: &Values,
        inputs: &Values,
    ) -> Result<Values, DriverError>;
    /// Deletes the object. Deleting what is already gone succeeds.
    async fn delete(&self, owner: &Owner, state: &Values) -> Result<(), DriverError>;
    /// Adopts an existing object identified by `inputs` (e.g. by name),
    /// writing the ownership marker; `None` when there is no such object.
    async fn import(&self, owner: &Owner, inputs: &Values) -> Result<Option<Values>, DriverError>;
    /// Looks for the object `inputs` identify and says whether `owner`'s
    /// marker is on it. Changes nothing. This is how a create re-run after a
    /// crash, and a delete that Terraform sent without the recorded
    /// primitives (a tainted object), find what belongs to the resource.
    async fn find(&self, owner: &Owner, inputs: &Values) -> Result<Found, DriverError>;
    /// Removes the generated secrets (a password) from `state`, so the next
    /// `update` generates new ones; false when this kind has none.
    fn forget_secrets(&self, _state: &mut Values) -> bool {
        false
    }
}

/// The primitive kinds this build has, by catalog name. Connections come
/// later (`Registry::connect`); plan only needs the names.
#[derive(Default, Clone)]
pub struct Registry {
    drivers: BTreeMap<String, Arc<dyn Driver>>,
    /// The PostgreSQL backend itself, for what is not a primitive
    /// (short-lived credentials).
    pub postgres: Option<Arc<postgres::Postgres>>,
}

/// Every primitive kind compiled into this build.
pub const BUILTIN_KINDS: &[&str] = postgres::KINDS;

impl Registry {
    /// The kinds of this build, not yet connected.
    pub fn builtin() -> Registry {
        Registry::default()
    }

    /// Whether this build has a driver of that name (plan-time check).
    pub fn knows(name: &str) -> bool {
        BUILTIN_KINDS.contains(&name)
    }

    /// Whether that kind generates secrets (see [`Driver::forget_secrets`]).
    pub fn makes_secrets(name: &str) -> bool {
        postgres::SECRET_KINDS.contains(&name)
    }

    /// The inputs a primitive kind takes, as its driver declares them;
    /// `None` for a kind this build does not have (catalog-load check).
    pub fn inputs_of(kind: &str) -> Option<&'static [&'static str]> {
        postgres::inputs_of(kind)
    }

    /// Plan-time checks of a primitive's known inputs (those not yet known
    /// are left out and checked at apply). Static per kind: plan has no
    /// connection. Each error names the input it is about. Nothing for a
    /// kind this build does not have (plan warns about it separately).
    pub fn validate(kind: &str, inputs: &Values) -> Vec<DriverError> {
        postgres::validate(kind, inputs).unwrap_or_default()
    }

    /// Drivers connected with the provider block's settings.
    pub fn connect(settings: &postgres::Settings) -> Registry {
        let mut registry = Registry::default();
        let postgres = Arc::new(postgres::Postgres::new(settings.clone()));
        for (name, driver) in postgres.drivers() {
            registry.drivers.insert(name.to_owned(), driver);
        }
        registry.postgres = Some(postgres);
        registry
    }

    pub fn register(&mut self, name: &str, driver: Arc<dyn Driver>) {
        self.drivers.insert(name.to_owned(), driver);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Driver>> {
        self.drivers.get(name)
    }
}
