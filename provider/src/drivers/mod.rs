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

pub mod common;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;

use platform_value::Value;

use crate::engine::Diag;
use crate::engine::schema::BlockSchema;

/// The backends compiled into this build (each behind its cargo feature, all
/// on by default), in the order the provider block lists their sections.
/// Adding a backend: its folder under `drivers/` and one line here.
pub fn backends() -> &'static [&'static dyn Backend] {
    BACKENDS
}

static BACKENDS: &[&dyn Backend] = &[
    #[cfg(feature = "postgres")]
    &postgres::BACKEND,
    #[cfg(feature = "redis")]
    &redis::BACKEND,
];

/// One primitive kind of a backend, as the catalog names it (`postgres.role`).
pub struct Kind {
    pub name: &'static str,
    /// The inputs it takes (a catalog naming another is refused at load).
    pub inputs: &'static [&'static str],
    /// Whether it generates secrets (see [`Driver::forget_secrets`]).
    pub makes_secrets: bool,
    /// Plan-time checks of its known inputs: static, plan has no connection.
    pub validate: fn(&Values) -> Vec<DriverError>,
}

/// A primitive input that hands an existing object's privileges on (a role to
/// join, a role to grant to): plan refuses a known name the backend's
/// settings refuse by name alone ([`Configured::refuses`]).
pub struct Handover {
    pub kind: &'static str,
    pub input: &'static str,
    /// "join", "grant to": for the diagnostic.
    pub verb: &'static str,
}

/// An ephemeral resource type a backend offers (Terraform ≥ 1.10), named
/// `PREFIX_SUFFIX` in the provider.
pub struct Ephemeral {
    pub suffix: &'static str,
    pub schema: fn() -> BlockSchema,
}

/// What an opened ephemeral resource gives Terraform, and the private data its
/// close needs.
pub struct Opened {
    pub result: Value,
    pub private: Vec<u8>,
}

/// A backend: everything the engine knows of it comes from here. The engine
/// names no backend.
pub trait Backend: Send + Sync {
    /// Its name: the prefix of its kinds and its provider block section.
    fn name(&self) -> &'static str;
    /// Its primitive kinds.
    fn kinds(&self) -> &'static [Kind];
    /// The schema of its section of the provider block (`NAME { … }`).
    fn section(&self) -> BlockSchema;
    /// Its settings from that section (`None`: the section is absent) over
    /// the environment; diagnostics point into the section.
    fn configure(&self, section: Option<&Value>) -> (Arc<dyn Configured>, Vec<Diag>);
    /// Inputs that hand privileges on, checked at plan.
    fn handovers(&self) -> &'static [Handover] {
        &[]
    }
    /// Its ephemeral resource types.
    fn ephemerals(&self) -> &'static [Ephemeral] {
        &[]
    }
    /// ValidateEphemeralResourceConfig for one of them (no connection).
    fn validate_ephemeral(&self, _suffix: &str, _config: &Value) -> Vec<Diag> {
        Vec::new()
    }
}

/// A backend's settings, as one provider configuration made them.
#[async_trait::async_trait]
pub trait Configured: Send + Sync + std::fmt::Debug {
    /// For [`Configured::same`].
    fn as_any(&self) -> &dyn std::any::Any;
    /// Equal settings: the engine keeps the connections it has (reattach mode
    /// configures one process many times).
    fn same(&self, other: &dyn Configured) -> bool;
    /// Checks at ConfigureProvider that need the network (a TLS handshake);
    /// an unreachable server is not an error here.
    async fn probe(&self) -> Vec<Diag> {
        Vec::new()
    }
    /// Why `name`, handed on through a [`Handover`], is refused by its name
    /// alone; `None`: not refused at plan (apply checks what needs a server).
    fn refuses(&self, _name: &str) -> Option<String> {
        None
    }
    /// The backend's drivers on these settings (connections made lazily).
    fn connect(&self) -> Arc<dyn Connection>;
}

/// A backend connected: its drivers and its ephemeral resources.
#[async_trait::async_trait]
pub trait Connection: Send + Sync {
    /// One driver per kind of [`Backend::kinds`].
    fn drivers(&self) -> Vec<(&'static str, Arc<dyn Driver>)>;
    async fn open_ephemeral(&self, _suffix: &str, _config: &Value) -> Result<Opened, Vec<Diag>> {
        Err(vec![Diag::error(
            "No such ephemeral resource",
            "This backend has none of that type.",
        )])
    }
    async fn close_ephemeral(&self, _suffix: &str, _private: &[u8]) -> Vec<Diag> {
        Vec::new()
    }
}

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

/// The primitive kinds this build has, by catalog name, and — once
/// connected — their drivers and each backend's connection.
#[derive(Default, Clone)]
pub struct Registry {
    drivers: BTreeMap<String, Arc<dyn Driver>>,
    connections: BTreeMap<&'static str, Arc<dyn Connection>>,
}

impl Registry {
    /// The kind of that name in this build.
    pub fn kind(name: &str) -> Option<&'static Kind> {
        backends()
            .iter()
            .flat_map(|b| b.kinds())
            .find(|k| k.name == name)
    }

    /// Whether this build has a driver of that name (plan-time check).
    pub fn knows(name: &str) -> bool {
        Registry::kind(name).is_some()
    }

    /// Whether that kind generates secrets (see [`Driver::forget_secrets`]).
    pub fn makes_secrets(name: &str) -> bool {
        Registry::kind(name).is_some_and(|k| k.makes_secrets)
    }

    /// The inputs a primitive kind takes, as its driver declares them;
    /// `None` for a kind this build does not have (catalog-load check).
    pub fn inputs_of(kind: &str) -> Option<&'static [&'static str]> {
        Registry::kind(kind).map(|k| k.inputs)
    }

    /// Plan-time checks of a primitive's known inputs (those not yet known
    /// are left out and checked at apply). Static per kind: plan has no
    /// connection. Each error names the input it is about. Nothing for a
    /// kind this build does not have (plan warns about it separately).
    pub fn validate(kind: &str, inputs: &Values) -> Vec<DriverError> {
        Registry::kind(kind).map_or_else(Vec::new, |k| (k.validate)(inputs))
    }

    /// Every backend connected with its settings (`configured[i]` is
    /// `backends()[i]`'s).
    pub fn connect(configured: &[Arc<dyn Configured>]) -> Registry {
        let mut registry = Registry::default();
        for (backend, settings) in backends().iter().zip(configured) {
            let connection = settings.connect();
            for (name, driver) in connection.drivers() {
                registry.drivers.insert(name.to_owned(), driver);
            }
            registry.connections.insert(backend.name(), connection);
        }
        registry
    }

    pub fn register(&mut self, name: &str, driver: Arc<dyn Driver>) {
        self.drivers.insert(name.to_owned(), driver);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Driver>> {
        self.drivers.get(name)
    }

    /// The connection of the backend `name`.
    pub fn connection(&self, name: &str) -> Option<&Arc<dyn Connection>> {
        self.connections.get(name)
    }
}
