//! One JSON Schema (draft 2020-12) per offering version, for portal forms:
//! the inputs with their types, defaults and guardrails, plus the reserved
//! arguments a user sets (`tier`, `team`, `labels`, `offering_version`).
//!
//! Catalog patterns are unanchored like JSON Schema's `pattern`, so they are
//! copied as they are. Guardrails on collections apply to each element,
//! exactly as `Input::check` applies them.
//!
//! A pure function of the catalog: the provider's `docs` writes these
//! documents, `platform-broker serve` serves them, byte for byte the same.

use crate::describe::{LABELS_DESCRIPTION, TEAM_DESCRIPTION, input_description, price_text};
use crate::json::Json;
use crate::{Catalog, Input, InputType, Offering, OnChange, Status, Tier, Version};

pub const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// `<offering>/<version>.schema.json` → document, for every version.
pub fn offering_schemas(catalog: &Catalog, offering: &Offering) -> Vec<(String, String)> {
    offering
        .versions
        .iter()
        .map(|version| {
            (
                format!("{}/{}.schema.json", offering.name, version.version),
                version_schema(catalog, offering, version).pretty(),
            )
        })
        .collect()
}

pub fn version_schema(catalog: &Catalog, offering: &Offering, version: &Version) -> Json {
    let resource_type = catalog.resource_type(offering);
    let mut properties = Vec::new();
    for input in &version.inputs {
        properties.push((input.name.clone(), input_property(input)));
    }
    properties.push(("tier".into(), tier_property(&version.tiers)));
    properties.push((
        "team".into(),
        Json::Object(vec![
            ("description".into(), Json::str(TEAM_DESCRIPTION)),
            ("type".into(), Json::str("string")),
        ]),
    ));
    properties.push((
        "labels".into(),
        Json::Object(vec![
            ("description".into(), Json::str(LABELS_DESCRIPTION)),
            ("type".into(), Json::str("object")),
            (
                "additionalProperties".into(),
                Json::Object(vec![("type".into(), Json::str("string"))]),
            ),
        ]),
    ));
    properties.push((
        "offering_version".into(),
        Json::Object(vec![
            (
                "description".into(),
                Json::str("Catalog version of the offering this form describes."),
            ),
            ("const".into(), Json::str(&version.version)),
        ]),
    ));
    let required: Vec<Json> = version
        .inputs
        .iter()
        .filter(|i| i.default.is_none())
        .map(|i| Json::str(&i.name))
        .collect();
    let mut description = offering.title.clone();
    if !offering.description.is_empty() {
        description = format!("{description}: {}", offering.description);
    }
    let mut root = vec![
        ("$schema".into(), Json::str(DRAFT)),
        (
            "$id".into(),
            Json::str(format!(
                "urn:platform-catalog:{resource_type}:{}",
                version.version
            )),
        ),
        (
            "title".into(),
            Json::str(format!("{resource_type} {}", version.version)),
        ),
        ("description".into(), Json::str(description)),
    ];
    if matches!(version.status, Status::Deprecated | Status::Retired) {
        root.push(("deprecated".into(), Json::Bool(true)));
    }
    root.extend([
        ("type".into(), Json::str("object")),
        ("properties".into(), Json::Object(properties)),
        ("required".into(), Json::Array(required)),
        ("additionalProperties".into(), Json::Bool(false)),
        (
            "x-platform".into(),
            platform_annotations(&resource_type, offering, version),
        ),
    ]);
    Json::Object(root)
}

fn input_property(input: &Input) -> Json {
    let mut fields = Vec::new();
    let description = input_description(input);
    if !description.is_empty() {
        fields.push(("description".into(), Json::str(description)));
    }
    match &input.ty {
        InputType::List(element) | InputType::Set(element) => {
            fields.push(("type".into(), Json::str("array")));
            fields.push(("items".into(), Json::Object(element_fields(element, input))));
            if matches!(input.ty, InputType::Set(_)) {
                fields.push(("uniqueItems".into(), Json::Bool(true)));
            }
            push_opt(&mut fields, "minItems", input.min_length.map(Json::u64));
            push_opt(&mut fields, "maxItems", input.max_length.map(Json::u64));
        }
        InputType::Map(element) => {
            fields.push(("type".into(), Json::str("object")));
            fields.push((
                "additionalProperties".into(),
                Json::Object(element_fields(element, input)),
            ));
            push_opt(
                &mut fields,
                "minProperties",
                input.min_length.map(Json::u64),
            );
            push_opt(
                &mut fields,
                "maxProperties",
                input.max_length.map(Json::u64),
            );
        }
        scalar => {
            fields.extend(element_fields(scalar, input));
            if *scalar == InputType::String {
                push_opt(&mut fields, "minLength", input.min_length.map(Json::u64));
                push_opt(&mut fields, "maxLength", input.max_length.map(Json::u64));
            }
        }
    }
    // A sensitive default stays in the catalog; a form need not show it.
    if !input.sensitive {
        push_opt(
            &mut fields,
            "default",
            input.default.as_ref().map(Json::from_hcl),
        );
    }
    if input.sensitive {
        fields.push(("writeOnly".into(), Json::Bool(true)));
        fields.push(("x-sensitive".into(), Json::Bool(true)));
    }
    if input.on_change != OnChange::Update {
        fields.push(("x-on-change".into(), Json::str(input.on_change.as_str())));
    }
    Json::Object(fields)
}

/// The type of one value (a scalar input, or one element of a collection)
/// with the guardrails that apply to it: enum, pattern, minimum, maximum.
fn element_fields(ty: &InputType, input: &Input) -> Vec<(String, Json)> {
    let mut fields = type_fields(ty);
    if let Some(values) = &input.enum_values {
        fields.push((
            "enum".into(),
            Json::Array(values.iter().map(Json::from_hcl).collect()),
        ));
    }
    match ty {
        InputType::String => {
            push_opt(
                &mut fields,
                "pattern",
                input.pattern.as_ref().map(|p| Json::str(p.as_str())),
            );
        }
        InputType::Number => {
            push_opt(&mut fields, "minimum", input.min.map(Json::f64));
            push_opt(&mut fields, "maximum", input.max.map(Json::f64));
        }
        _ => {}
    }
    fields
}

fn type_fields(ty: &InputType) -> Vec<(String, Json)> {
    match ty {
        InputType::String => vec![("type".into(), Json::str("string"))],
        InputType::Number => vec![("type".into(), Json::str("number"))],
        InputType::Bool => vec![("type".into(), Json::str("boolean"))],
        InputType::List(element) => vec![
            ("type".into(), Json::str("array")),
            ("items".into(), Json::Object(type_fields(element))),
        ],
        InputType::Set(element) => vec![
            ("type".into(), Json::str("array")),
            ("items".into(), Json::Object(type_fields(element))),
            ("uniqueItems".into(), Json::Bool(true)),
        ],
        InputType::Map(element) => vec![
            ("type".into(), Json::str("object")),
            (
                "additionalProperties".into(),
                Json::Object(type_fields(element)),
            ),
        ],
    }
}

fn tier_property(tiers: &[Tier]) -> Json {
    let described: Vec<String> = tiers
        .iter()
        .map(|tier| {
            let mut text = format!("{} ({}", tier.name, price_text(tier));
            if tier.requires_approval {
                text.push_str(", requires approval");
            }
            text.push(')');
            text
        })
        .collect();
    let mut fields = vec![
        (
            "description".into(),
            Json::str(format!("Service tier: {}.", described.join("; "))),
        ),
        ("type".into(), Json::str("string")),
    ];
    if !tiers.is_empty() {
        fields.push((
            "enum".into(),
            Json::Array(tiers.iter().map(|t| Json::str(&t.name)).collect()),
        ));
    }
    push_opt(
        &mut fields,
        "default",
        tiers.first().map(|t| Json::str(&t.name)),
    );
    Json::Object(fields)
}

/// What a portal needs besides the form: owner, lifecycle, tier prices.
fn platform_annotations(resource_type: &str, offering: &Offering, version: &Version) -> Json {
    let mut owner = vec![("team".into(), Json::str(&offering.owner.team))];
    push_opt(
        &mut owner,
        "contact",
        offering.owner.contact.as_ref().map(Json::str),
    );
    let mut fields = vec![
        ("resource_type".into(), Json::str(resource_type)),
        ("offering".into(), Json::str(&offering.name)),
        ("version".into(), Json::str(&version.version)),
        ("status".into(), Json::str(version.status.as_str())),
        ("owner".into(), Json::Object(owner)),
    ];
    if let Some(deprecation) = &version.deprecation {
        let mut dates = Vec::new();
        push_opt(
            &mut dates,
            "create_until",
            deprecation.create_until.map(|d| Json::str(d.to_string())),
        );
        push_opt(
            &mut dates,
            "update_until",
            deprecation.update_until.map(|d| Json::str(d.to_string())),
        );
        push_opt(
            &mut dates,
            "successor",
            deprecation.successor.as_ref().map(Json::str),
        );
        fields.push(("deprecation".into(), Json::Object(dates)));
    }
    let tiers = version
        .tiers
        .iter()
        .map(|tier| {
            let mut t = vec![
                ("name".into(), Json::str(&tier.name)),
                ("amount".into(), Json::f64(tier.price.amount)),
                ("unit".into(), Json::str(&tier.price.unit)),
                ("currency".into(), Json::str(&tier.price.currency)),
            ];
            if let Some(quantity) = &tier.price.quantity {
                t.push(("quantity".into(), Json::str(quantity.to_string())));
            } else if let Ok(monthly) = tier.monthly_price(&hcl::Map::new()) {
                t.push(("monthly_price".into(), Json::f64(monthly)));
            }
            t.push((
                "requires_approval".into(),
                Json::Bool(tier.requires_approval),
            ));
            push_opt(
                &mut t,
                "transitions_to",
                tier.transitions_to
                    .as_ref()
                    .map(|to| Json::Array(to.iter().map(Json::str).collect())),
            );
            Json::Object(t)
        })
        .collect();
    fields.push(("tiers".into(), Json::Array(tiers)));
    Json::Object(fields)
}

fn push_opt(fields: &mut Vec<(String, Json)>, key: &str, value: Option<Json>) {
    if let Some(value) = value {
        fields.push((key.to_owned(), value));
    }
}
