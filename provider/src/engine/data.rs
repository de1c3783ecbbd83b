//! The `<prefix>_catalog` and `<prefix>_offering` data sources: the catalog
//! as Terraform values, so configurations and policies can read prices,
//! owners and lifecycle dates.

use std::collections::BTreeMap;

use platform_catalog::{Catalog, Offering};
use platform_value::{Number, Path, Value};

use super::{Diag, Engine};

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn opt_string(s: Option<impl ToString>) -> Value {
    s.map_or(Value::Null, |s| Value::String(s.to_string()))
}

fn input_type_name(ty: &platform_catalog::InputType) -> String {
    use platform_catalog::InputType as T;
    match ty {
        T::String => "string".into(),
        T::Number => "number".into(),
        T::Bool => "bool".into(),
        T::List(inner) => format!("list({})", input_type_name(inner)),
        T::Set(inner) => format!("set({})", input_type_name(inner)),
        T::Map(inner) => format!("map({})", input_type_name(inner)),
    }
}

/// One offering as the object type `schema::offering_object_type` describes.
pub fn offering_value(catalog: &Catalog, offering: &Offering) -> Value {
    let current = offering.current();
    let versions = offering
        .versions
        .iter()
        .map(|v| {
            let deprecation = v.deprecation.as_ref();
            Value::Object(BTreeMap::from([
                ("version".into(), string(&v.version)),
                ("status".into(), string(v.status.as_str())),
                (
                    "create_until".into(),
                    opt_string(deprecation.and_then(|d| d.create_until)),
                ),
                (
                    "update_until".into(),
                    opt_string(deprecation.and_then(|d| d.update_until)),
                ),
                (
                    "successor".into(),
                    opt_string(deprecation.and_then(|d| d.successor.as_deref())),
                ),
            ]))
        })
        .collect();
    let tiers = current
        .tiers
        .iter()
        .map(|t| {
            Value::Object(BTreeMap::from([
                ("name".into(), string(&t.name)),
                (
                    "amount".into(),
                    Number::from_f64(t.price.amount).map_or(Value::Null, Value::Number),
                ),
                ("unit".into(), string(&t.price.unit)),
                ("currency".into(), string(&t.price.currency)),
                ("requires_approval".into(), Value::Bool(t.requires_approval)),
            ]))
        })
        .collect();
    let inputs = current
        .inputs
        .iter()
        .map(|i| {
            Value::Object(BTreeMap::from([
                ("name".into(), string(&i.name)),
                ("type".into(), string(input_type_name(&i.ty))),
                ("required".into(), Value::Bool(i.default.is_none())),
                ("description".into(), opt_string(i.description.as_deref())),
                (
                    "on_change".into(),
                    string(match i.on_change {
                        platform_catalog::OnChange::Update => "update",
                        platform_catalog::OnChange::Replace => "replace",
                        platform_catalog::OnChange::Reject => "reject",
                        platform_catalog::OnChange::GrowOnly => "grow_only",
                    }),
                ),
            ]))
        })
        .collect();
    Value::Object(BTreeMap::from([
        ("name".into(), string(&offering.name)),
        ("title".into(), string(&offering.title)),
        ("description".into(), string(&offering.description)),
        ("owner_team".into(), string(&offering.owner.team)),
        (
            "owner_contact".into(),
            opt_string(offering.owner.contact.as_deref()),
        ),
        (
            "resource_type".into(),
            string(catalog.resource_type(offering)),
        ),
        ("current_version".into(), string(&current.version)),
        ("status".into(), string(current.status.as_str())),
        ("versions".into(), Value::List(versions)),
        ("tiers".into(), Value::List(tiers)),
        ("inputs".into(), Value::List(inputs)),
    ]))
}

impl Engine {
    pub fn validate_data_source(&self, type_name: &str, config: &Value) -> Vec<Diag> {
        let loaded = match self.loaded() {
            Ok(loaded) => loaded,
            Err(diags) => return diags,
        };
        if type_name == loaded.schemas.offering_data_type
            && let Some(Value::String(name)) = config.get_attr("name")
            && loaded.catalog.offering(name).is_none()
        {
            return vec![unknown_offering(&loaded.catalog, name)];
        }
        Vec::new()
    }

    /// Reads a data source; the result is always wholly known and non-null.
    pub fn read_data_source(&self, type_name: &str, config: &Value) -> Result<Value, Vec<Diag>> {
        let loaded = self.loaded()?;
        let catalog = &loaded.catalog;
        if type_name == loaded.schemas.catalog_data_type {
            let offerings = catalog
                .offerings
                .iter()
                .map(|o| offering_value(catalog, o))
                .collect();
            return Ok(Value::Object(BTreeMap::from([
                ("id".into(), string(&catalog.digest)),
                ("digest".into(), string(&catalog.digest)),
                ("offerings".into(), Value::List(offerings)),
            ])));
        }
        if type_name == loaded.schemas.offering_data_type {
            let Some(Value::String(name)) = config.get_attr("name") else {
                return Err(vec![
                    Diag::error(
                        "Missing offering name",
                        "Set `name` to an offering of the catalog.",
                    )
                    .at(Path::root().attr("name")),
                ]);
            };
            let Some(offering) = catalog.offering(name) else {
                return Err(vec![unknown_offering(catalog, name)]);
            };
            let Value::Object(mut attrs) = offering_value(catalog, offering) else {
                return Err(vec![Diag::error(
                    "Internal error",
                    "offering value is not an object",
                )]);
            };
            attrs.insert("id".into(), string(&offering.name));
            return Ok(Value::Object(attrs));
        }
        Err(vec![Diag::error(
            format!("Unknown data source {type_name}"),
            "This provider has no such data source.",
        )])
    }
}

fn unknown_offering(catalog: &Catalog, name: &str) -> Diag {
    let names: Vec<&str> = catalog.offerings.iter().map(|o| o.name.as_str()).collect();
    Diag::error(
        "Unknown offering",
        format!(
            "The catalog has no offering {name:?}; offerings: {}.",
            names.join(", ")
        ),
    )
    .at(Path::root().attr("name"))
}
