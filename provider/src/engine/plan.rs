//! ValidateResourceConfig and PlanResourceChange for catalog offerings.
//!
//! Terraform's rules on a plan (shared/notes/protocol.md §4): non-computed
//! attributes must equal the config; computed ones with a null config may be
//! anything, including unknown; the apply-time re-plan must agree with the
//! saved plan. So every value planned here is a pure function of config,
//! prior state, the catalog and the provider block.

use std::collections::BTreeMap;

use platform_catalog::{Input, Offering, OnChange, PathStep as CatalogStep, Status, Version};
use platform_value::{Number, Path, Value};

use super::convert::{from_hcl, to_hcl};
use super::driver_check;
use super::schema::{AttrKind, BlockSchema, SECRET_VERSION};
use super::{Diag, Engine, Loaded, today};

pub struct PlanRequest {
    pub type_name: String,
    pub prior: Value,
    pub proposed: Value,
    pub config: Value,
    pub prior_private: Vec<u8>,
}

#[derive(Debug)]
pub struct PlanResponse {
    pub planned: Value,
    pub requires_replace: Vec<Path>,
    pub private: Vec<u8>,
    pub diags: Vec<Diag>,
}

/// The offering and schema behind a resource type name.
pub(super) fn resolve<'a>(
    loaded: &'a Loaded,
    type_name: &str,
) -> Result<(&'a Offering, &'a BlockSchema), Diag> {
    loaded
        .schemas
        .resources
        .get(type_name)
        .and_then(|(offering, schema)| Some((loaded.catalog.offering(offering)?, schema)))
        .ok_or_else(|| {
            Diag::error(
                format!("Unknown resource type {type_name}"),
                "The platform catalog has no offering for this resource type.",
            )
        })
}

/// The path of a guardrail violation inside an input. Set elements have no
/// address in Terraform, so a path stops at the set.
fn violation_path(input: &Input, steps: &[CatalogStep]) -> Path {
    let mut path = Path::root().attr(&input.name);
    if matches!(input.ty, platform_catalog::InputType::Set(_)) {
        return path;
    }
    for step in steps {
        path = match step {
            CatalogStep::Index(i) => path.index(i64::try_from(*i).unwrap_or(i64::MAX)),
            CatalogStep::Key(k) => path.key(k),
        };
    }
    path
}

fn check_input(input: &Input, value: &Value, diags: &mut Vec<Diag>) {
    if value.is_null() {
        return;
    }
    let Some(known) = to_hcl(value) else { return };
    for violation in input.check(&known) {
        diags.push(
            Diag::error(
                format!("Invalid value for {}", input.name),
                violation.message,
            )
            .at(violation_path(input, &violation.path)),
        );
    }
}

fn check_tier(version: &Version, tier: &Value, diags: &mut Vec<Diag>) {
    let Value::String(name) = tier else { return };
    if version.tier(name).is_none() {
        let names: Vec<&str> = version.tiers.iter().map(|t| t.name.as_str()).collect();
        diags.push(
            Diag::error(
                "Unknown tier",
                format!(
                    "Tier {name:?} does not exist in version {}; choose one of: {}.",
                    version.version,
                    names.join(", ")
                ),
            )
            .at(Path::root().attr("tier")),
        );
    }
}

/// Picks the version a config asks for: its `offering_version`, else the one
/// already in state, else the offering's current version.
fn select_version<'a>(
    offering: &'a Offering,
    config: &Value,
    prior: Option<&Value>,
) -> Result<Option<&'a Version>, Diag> {
    let requested = match config.get_attr("offering_version") {
        Some(Value::String(v)) => Some(v.clone()),
        Some(Value::Unknown(_)) => return Ok(None),
        _ => match prior.and_then(|p| p.get_attr("offering_version")) {
            Some(Value::String(v)) => Some(v.clone()),
            _ => None,
        },
    };
    match requested {
        None => Ok(Some(offering.current())),
        Some(v) => offering.version(&v).map(Some).ok_or_else(|| {
            let known: Vec<&str> = offering
                .versions
                .iter()
                .map(|v| v.version.as_str())
                .collect();
            Diag::error(
                "Unknown offering version",
                format!(
                    "{} has no version {v:?}; versions: {}.",
                    offering.name,
                    known.join(", ")
                ),
            )
            .at(Path::root().attr("offering_version"))
        }),
    }
}

impl Engine {
    pub fn validate_resource(&self, type_name: &str, config: &Value) -> Vec<Diag> {
        let loaded = match self.loaded() {
            Ok(loaded) => loaded,
            Err(diags) => return diags,
        };
        let (offering, _) = match resolve(&loaded, type_name) {
            Ok(found) => found,
            Err(diag) => return vec![diag],
        };
        let mut diags = Vec::new();
        let version = match select_version(offering, config, None) {
            Ok(Some(version)) => version,
            Ok(None) => offering.current(),
            Err(diag) => return vec![diag],
        };
        for input in &version.inputs {
            if let Some(value) = config.get_attr(&input.name) {
                check_input(input, value, &mut diags);
            }
        }
        if let Some(tier) = config.get_attr("tier") {
            check_tier(version, tier, &mut diags);
        }
        // Without `offering_version` an existing resource keeps the version
        // in its state, which only plan knows: the composition is certain
        // here when the config names the version or there is only one. A
        // null tier is likewise the first on create but the prior on update,
        // so inputs reading tier values wait for plan.
        let certain = offering.versions.len() == 1
            || matches!(config.get_attr("offering_version"), Some(Value::String(_)));
        if certain {
            driver_check::check_primitives(
                offering,
                version,
                &driver_check::known_inputs(version, |name| config.get_attr(name)),
                &driver_check::known_tier_values(version, config.get_attr("tier")),
                &mut diags,
            );
        }
        diags
    }

    pub fn plan_resource(&self, req: &PlanRequest) -> PlanResponse {
        let mut response = PlanResponse {
            planned: req.proposed.clone(),
            requires_replace: Vec::new(),
            private: req.prior_private.clone(),
            diags: Vec::new(),
        };
        // Destroy: with the plan_destroy capability Terraform asks us to plan
        // deletes too; the answer is always null.
        if req.proposed.is_null() {
            response.planned = Value::Null;
            return response;
        }
        let loaded = match self.loaded() {
            Ok(loaded) => loaded,
            Err(diags) => {
                response.diags = diags;
                return response;
            }
        };
        let (offering, schema) = match resolve(&loaded, &req.type_name) {
            Ok(found) => found,
            Err(diag) => {
                response.diags.push(diag);
                return response;
            }
        };
        let prior = (!req.prior.is_null()).then_some(&req.prior);
        let version = match select_version(offering, &req.config, prior) {
            Ok(Some(version)) => version,
            Ok(None) => {
                response.diags.push(
                    Diag::error(
                        "offering_version must be known at plan time",
                        "The catalog version decides the schema rules; it cannot depend on values known only after apply.",
                    )
                    .at(Path::root().attr("offering_version")),
                );
                return response;
            }
            Err(diag) => {
                response.diags.push(diag);
                return response;
            }
        };
        let mut diags = Vec::new();
        let mut planned: BTreeMap<String, Value> = BTreeMap::new();

        // Inputs: the config, else the catalog default.
        for attr in schema
            .attributes
            .iter()
            .filter(|a| a.kind == AttrKind::Input)
        {
            let config_value = req
                .config
                .get_attr(&attr.name)
                .cloned()
                .unwrap_or(Value::Null);
            let value = if config_value.is_null() {
                match version.input(&attr.name).and_then(|i| i.default.as_ref()) {
                    Some(default) => from_hcl(default, &attr.ty).unwrap_or(Value::Null),
                    None => Value::Null,
                }
            } else {
                config_value
            };
            if let Some(input) = version.input(&attr.name) {
                check_input(input, &value, &mut diags);
            }
            planned.insert(attr.name.clone(), value);
        }

        let prior_attr = |name: &str| prior.and_then(|p| p.get_attr(name)).cloned();
        let config_or_prior = |name: &str| match req.config.get_attr(name) {
            Some(v) if !v.is_null() => Some(v.clone()),
            _ => prior_attr(name).filter(|v| !v.is_null()),
        };

        let tier = config_or_prior("tier").unwrap_or_else(|| match version.tiers.first() {
            Some(first) => Value::String(first.name.clone()),
            None => Value::Null,
        });
        check_tier(version, &tier, &mut diags);

        let team = match config_or_prior("team") {
            Some(team) => team,
            None => match self.provider_config().default_team {
                Some(team) => Value::String(team),
                None => {
                    diags.push(
                        Diag::error(
                            "Missing team",
                            format!(
                                "Every {} needs an owning team: set `team` on the resource, or `default_team` in the provider block.",
                                offering.name
                            ),
                        )
                        .at(Path::root().attr("team")),
                    );
                    Value::Null
                }
            },
        };
        planned.insert("tier".into(), tier.clone());
        planned.insert("team".into(), team);
        planned.insert(
            "labels".into(),
            req.config
                .get_attr("labels")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if schema.attr(SECRET_VERSION).is_some() {
            planned.insert(
                SECRET_VERSION.into(),
                req.config
                    .get_attr(SECRET_VERSION)
                    .cloned()
                    .unwrap_or(Value::Null),
            );
        }
        planned.insert(
            "offering_version".into(),
            Value::String(version.version.clone()),
        );
        planned.insert(
            "status".into(),
            Value::String(version.status.as_str().to_owned()),
        );
        planned.insert(
            "id".into(),
            prior_attr("id")
                .filter(|v| !v.is_null())
                .unwrap_or_else(Value::unknown),
        );
        planned.insert(
            "monthly_cost".into(),
            monthly_cost(version, &tier, &planned, &mut diags),
        );

        // Changes against the prior state.
        let mut changed = prior.is_none();
        // Parts of the composition the state does not record (an import of
        // a half-made resource, a part dropped out of band): apply makes them.
        let recorded = super::compose::ResourcePrivate::decode(&req.prior_private)
            .map(|p| p.primitives)
            .unwrap_or_default();
        if prior.is_some() && !recorded.is_empty() {
            let missing: Vec<&str> = version
                .compose
                .iter()
                .filter(|p| !recorded.contains_key(&p.name))
                .map(|p| p.name.as_str())
                .collect();
            if !missing.is_empty() {
                changed = true;
                diags.push(Diag::warning(
                    format!("Parts of this {} are missing", offering.name),
                    format!(
                        "The state records no {}; apply creates {}.",
                        missing.join(", "),
                        if missing.len() == 1 { "it" } else { "them" }
                    ),
                ));
            }
        }
        if let Some(prior) = prior {
            for (name, value) in &planned {
                if prior.get_attr(name) != Some(value) {
                    changed = true;
                }
            }
            for input in &version.inputs {
                let (Some(old), Some(new)) =
                    (prior.get_attr(&input.name), planned.get(&input.name))
                else {
                    continue;
                };
                if old == new {
                    continue;
                }
                match input.on_change {
                    OnChange::Update => {}
                    OnChange::Replace => response
                        .requires_replace
                        .push(Path::root().attr(&input.name)),
                    OnChange::Reject | OnChange::GrowOnly => {
                        if let (Some(old), Some(new)) = (to_hcl(old), to_hcl(new))
                            && let Some(message) = input.check_change(&old, &new)
                        {
                            diags.push(
                                Diag::error(
                                    format!("{} cannot change this way", input.name),
                                    message,
                                )
                                .at(Path::root().attr(&input.name)),
                            );
                        }
                    }
                }
            }
            if let (Some(Value::String(old)), Value::String(new)) = (prior.get_attr("tier"), &tier)
                && old != new
                && let Some(old_tier) = version.tier(old)
                && !old_tier.allows_transition_to(new)
            {
                let allowed = old_tier
                    .transitions_to
                    .as_ref()
                    .map(|t| t.join(", "))
                    .unwrap_or_default();
                diags.push(
                    Diag::error(
                        "Tier transition not allowed",
                        format!(
                            "{} cannot move from tier {old:?} to {new:?}; from {old:?} it may move to: {}.",
                            offering.name,
                            if allowed.is_empty() { "no other tier" } else { &allowed }
                        ),
                    )
                    .at(Path::root().attr("tier")),
                );
            }
        }

        // Outputs: known from state while nothing changes, else after apply.
        for attr in schema
            .attributes
            .iter()
            .filter(|a| a.kind == AttrKind::Output)
        {
            let value = match prior_attr(&attr.name) {
                Some(v) if !changed && !v.is_null() => v,
                _ => Value::unknown(),
            };
            planned.insert(attr.name.clone(), value);
        }

        lifecycle(offering, version, prior.is_none(), changed, &mut diags);
        if changed {
            self.check_drivers(offering, version, &mut diags);
            self.check_grantees(version, &planned, &mut diags);
            driver_check::check_primitives(
                offering,
                version,
                &driver_check::known_inputs(version, |name| planned.get(name)),
                &driver_check::known_tier_values(version, Some(&tier)),
                &mut diags,
            );
        }

        response.planned = Value::Object(planned);
        // Carry the primitives recorded in state over to the apply — also on
        // the create half of a replace (prior null): Terraform hands that
        // plan's private data to the *delete* half, which must know what to
        // drop. A create itself ignores them. See the replace step of the
        // acceptance lifecycle tests.
        response.private = super::compose::ResourcePrivate {
            catalog_digest: loaded.catalog.digest.clone(),
            primitives: recorded,
        }
        .encode();
        response.diags = diags;
        response
    }

    /// The plan-time half of the drivers' least-privilege rule (the apply
    /// half, in each driver, is the guarantee): a known name that a resource
    /// input feeds straight into a backend's [`crate::drivers::Handover`]
    /// (PostgreSQL: `postgres.role` `member_of`, `postgres.grant` `roles`) is
    /// refused when the backend's settings refuse it by name alone
    /// (PostgreSQL: `pg_*`, PUBLIC, the provider's own login role). What
    /// needs the server (markers, superusers, role attributes) is checked at
    /// apply.
    fn check_grantees(
        &self,
        version: &Version,
        planned: &BTreeMap<String, Value>,
        diags: &mut Vec<Diag>,
    ) {
        let config = self.provider_config();
        let mut seen: Vec<(String, String)> = Vec::new();
        for primitive in &version.compose {
            for (key, expr) in &primitive.inputs {
                let Some((backend, handover)) = crate::drivers::backends().iter().find_map(|b| {
                    b.handovers()
                        .iter()
                        .find(|h| h.kind == primitive.driver && h.input == key.as_str())
                        .map(|h| (b.name(), h))
                }) else {
                    continue;
                };
                let Some(settings) = config.backend(backend) else {
                    continue;
                };
                let verb = handover.verb;
                let Some(("input", attribute)) = super::compose::direct_ref(expr) else {
                    continue;
                };
                let names = match planned.get(&attribute) {
                    Some(Value::List(items) | Value::Set(items) | Value::Tuple(items)) => items,
                    _ => continue,
                };
                for item in names {
                    let Value::String(role) = item else { continue };
                    if seen.contains(&(attribute.clone(), role.clone())) {
                        continue;
                    }
                    seen.push((attribute.clone(), role.clone()));
                    if let Some(why) = settings.refuses(role) {
                        diags.push(
                            Diag::error(
                                format!("Role {role:?} cannot be handed out"),
                                format!("{attribute}: refused to {verb} role {role:?}: {why}."),
                            )
                            .at(Path::root().attr(&attribute)),
                        );
                    }
                }
            }
        }
    }

    fn check_drivers(&self, offering: &Offering, version: &Version, diags: &mut Vec<Diag>) {
        for primitive in &version.compose {
            if !crate::drivers::Registry::knows(&primitive.driver) {
                diags.push(Diag::warning(
                    format!("No driver for {}", primitive.driver),
                    format!(
                        "{} composes primitive {:?} with driver {:?}, which this provider build does not have. The plan is shown, but apply will fail.",
                        offering.name, primitive.name, primitive.driver
                    ),
                ));
            }
        }
    }
}

fn monthly_cost(
    version: &Version,
    tier: &Value,
    planned: &BTreeMap<String, Value>,
    diags: &mut Vec<Diag>,
) -> Value {
    let Value::String(tier_name) = tier else {
        return if tier.is_unknown() {
            Value::unknown()
        } else {
            Value::Null
        };
    };
    let Some(tier) = version.tier(tier_name) else {
        return Value::Null;
    };
    let mut inputs = hcl::Map::new();
    for input in &version.inputs {
        match planned.get(&input.name).map(to_hcl) {
            Some(Some(value)) => {
                inputs.insert(input.name.clone(), value);
            }
            // An unknown input only matters when the price depends on inputs.
            _ if tier.price.quantity.is_some() => return Value::unknown(),
            _ => {}
        }
    }
    match tier.monthly_price(&inputs) {
        Ok(price) => Number::from_f64(price)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Err(message) => {
            diags
                .push(Diag::error("Cannot price this tier", message).at(Path::root().attr("tier")));
            Value::Null
        }
    }
}

/// The dated deprecation state machine (DESIGN §3).
fn lifecycle(
    offering: &Offering,
    version: &Version,
    create: bool,
    changed: bool,
    diags: &mut Vec<Diag>,
) {
    let path = Path::root().attr("offering_version");
    let name = format!("{} {}", offering.name, version.version);
    let successor = version
        .deprecation
        .as_ref()
        .and_then(|d| d.successor.as_deref())
        .map(|s| format!(" Move to version {s}."))
        .unwrap_or_default();
    let today = today();
    match version.status {
        Status::Current => {}
        Status::Preview => {
            if create {
                diags.push(
                    Diag::warning(
                        format!("{name} is a preview"),
                        "Preview versions may change incompatibly before they become current.",
                    )
                    .at(path),
                );
            }
        }
        // An untouched existing instance may stay while it waits for its
        // destroy: refusing its no-op would block every other change of the
        // workspace.
        Status::Retired if !create && !changed => diags.push(
            Diag::warning(
                format!("{name} is retired"),
                format!("Retired versions can only be destroyed; plan its removal.{successor}"),
            )
            .at(path),
        ),
        Status::Retired => diags.push(
            Diag::error(
                format!("{name} is retired"),
                format!("Retired versions can only be destroyed.{successor}"),
            )
            .at(path),
        ),
        Status::Deprecated => {
            let deprecation = version.deprecation.as_ref();
            let create_until = deprecation.and_then(|d| d.create_until);
            let update_until = deprecation.and_then(|d| d.update_until);
            if create && create_until.is_some_and(|until| today > until) {
                diags.push(
                    Diag::error(
                        format!("{name} no longer accepts new instances"),
                        format!(
                            "New instances were accepted until {}.{successor}",
                            create_until.map(|d| d.to_string()).unwrap_or_default()
                        ),
                    )
                    .at(path),
                );
            } else if !create && changed && update_until.is_some_and(|until| today > until) {
                diags.push(
                    Diag::error(
                        format!("{name} no longer accepts updates"),
                        format!(
                            "Updates were accepted until {}; only destroy is possible now.{successor}",
                            update_until.map(|d| d.to_string()).unwrap_or_default()
                        ),
                    )
                    .at(path),
                );
            } else {
                let mut dates = Vec::new();
                if let Some(until) = create_until {
                    dates.push(format!("new instances until {until}"));
                }
                if let Some(until) = update_until {
                    dates.push(format!("updates until {until}"));
                }
                let dates = if dates.is_empty() {
                    String::new()
                } else {
                    format!(" It accepts {}.", dates.join(", "))
                };
                diags.push(
                    Diag::warning(
                        format!("{name} is deprecated"),
                        format!("{dates}{successor}").trim().to_owned(),
                    )
                    .at(path),
                );
            }
        }
    }
}
