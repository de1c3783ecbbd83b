//! Markdown pages in the Terraform registry's layout, rendered from the
//! schemas the provider serves (`engine::schema`) and the catalog behind
//! them. Names, types, required/optional/computed and sensitivity come from
//! the schema; defaults, guardrails, tiers and lifecycle from the catalog.

use platform_catalog::{Catalog, Offering, Status, Tier, Version};
use platform_value::Type;

use super::Examples;
// Prices are worded with the catalog: the JSON Schemas' tier descriptions use
// the same text.
use crate::engine::compose::id_inputs;
use crate::engine::schema::{AttrKind, AttrSchema, BlockSchema, Flags, Schemas, guardrails};
pub use platform_catalog::describe::price_text;

/// The provider's name in page titles.
const PROVIDER: &str = "terraform-provider-platform";

/// What a page adds to one attribute beyond its schema entry.
#[derive(Default)]
struct Extra {
    /// Replaces the schema description (inputs: the catalog's description,
    /// whose guardrail sentences then follow as bullets).
    description: Option<String>,
    /// Appended to the description.
    suffix: String,
    bullets: Vec<String>,
}

pub fn index_page(
    catalog: &Catalog,
    schemas: &Schemas,
    examples: &Examples,
) -> Result<String, String> {
    let prefix = &catalog.provider_prefix;
    let mut out = front_matter(
        &format!("{prefix} Provider"),
        "",
        &schemas.provider.description,
    );
    out.push_str(&format!("# {prefix} Provider\n\n"));
    out.push_str(&format!(
        "{} Every offering of the platform catalog is a resource type \
         (`{prefix}_<offering>`) whose arguments are the offering's inputs, checked against \
         the catalog's guardrails at plan time, with the monthly price of the chosen tier \
         and dated deprecation warnings.\n\n",
        schemas.provider.description
    ));
    out.push_str(
        "The catalog is the directory named by `PLATFORM_CATALOG` (its `*.hcl` files), else the \
         examples catalog compiled into the provider: Terraform asks for the schema before it \
         sends any provider configuration, so the catalog cannot be set in the provider block. \
         These pages describe the catalog they were generated from.\n\n",
    );
    if let Some(example) = examples.read("provider/provider.tf")? {
        example_section(&mut out, "Example Usage", "terraform", &example);
    }
    out.push_str("## Offerings\n\n");
    out.push_str("| Resource | Offering | Owner | Current version | Tiers |\n");
    out.push_str("|----------|----------|-------|-----------------|-------|\n");
    for offering in &catalog.offerings {
        let resource_type = catalog.resource_type(offering);
        let version = offering.current();
        let tiers: Vec<String> = version
            .tiers
            .iter()
            .map(|t| format!("`{}` {}", t.name, price_text(t)))
            .collect();
        out.push_str(&row(&[
            format!(
                "[{resource_type}](resources/{}.md)",
                page_name(prefix, &resource_type)
            ),
            offering.title.clone(),
            owner_text(offering),
            format!("{} ({})", version.version, version.status.as_str()),
            tiers.join(", "),
        ]));
    }
    out.push('\n');
    out.push_str("## Data Sources and Ephemeral Resources\n\n");
    for (type_name, schema) in &schemas.data_sources {
        out.push_str(&format!(
            "- [{type_name}](data-sources/{}.md) (data source): {}\n",
            page_name(prefix, type_name),
            first_sentence(&schema.description)
        ));
    }
    for (type_name, schema) in &schemas.ephemeral {
        out.push_str(&format!(
            "- [{type_name}](ephemeral-resources/{}.md) (ephemeral resource): {}\n",
            page_name(prefix, type_name),
            first_sentence(&schema.description)
        ));
    }
    out.push('\n');
    out.push_str("## Argument Reference\n\n");
    attribute_sections(
        &mut out,
        &schemas.provider,
        &|_| Extra::default(),
        Layout::Provider,
    );
    Ok(out)
}

pub fn resource_page(
    catalog: &Catalog,
    offering: &Offering,
    type_name: &str,
    schema: &BlockSchema,
    examples: &Examples,
) -> Result<String, String> {
    let version = offering.current();
    let description = offering_description(offering);
    let mut out = front_matter(
        &format!("{type_name} Resource - {PROVIDER}"),
        &offering.owner.team,
        &description,
    );
    out.push_str(&format!("# {type_name} (Resource)\n\n{description}\n\n"));
    out.push_str(&format!("- **Offering:** `{}`\n", offering.name));
    out.push_str(&format!("- **Owner:** {}\n", owner_text(offering)));
    out.push_str(&format!(
        "- **Schema version:** {} ({}); the arguments below are this version's inputs.\n\n",
        version.version,
        version.status.as_str()
    ));
    if let Some(example) = examples.read(&format!("resources/{type_name}/resource.tf"))? {
        example_section(&mut out, "Example Usage", "terraform", &example);
    }
    let extra = |attr: &AttrSchema| resource_extra(version, attr);
    attribute_sections(&mut out, schema, &extra, Layout::Managed);
    tiers_section(&mut out, version);
    lifecycle_section(&mut out, offering);
    import_section(&mut out, catalog, offering, type_name, examples)?;
    Ok(out)
}

fn resource_extra(version: &Version, attr: &AttrSchema) -> Extra {
    match attr.kind {
        AttrKind::Input => {
            let Some(input) = version.input(&attr.name) else {
                return Extra::default();
            };
            let suffix = match &input.default {
                Some(_) if input.sensitive => "Has a default (sensitive, not shown).".to_owned(),
                Some(default) => format!(
                    "Defaults to {}.",
                    crate::engine::schema::code_value(default)
                ),
                None => String::new(),
            };
            Extra {
                description: Some(input.description.clone().unwrap_or_default()),
                suffix,
                bullets: guardrails(input),
            }
        }
        AttrKind::Reserved if attr.name == "tier" => Extra {
            suffix: "See [Tiers](#tiers).".into(),
            ..Extra::default()
        },
        AttrKind::Reserved if attr.name == "team" => Extra {
            suffix: "A plan with neither fails.".into(),
            ..Extra::default()
        },
        AttrKind::Reserved if attr.name == "offering_version" => Extra {
            suffix: "See [Versions and Lifecycle](#versions-and-lifecycle).".into(),
            ..Extra::default()
        },
        _ => Extra::default(),
    }
}

/// A data source or ephemeral resource page.
pub fn plain_page(
    type_name: &str,
    kind: &str,
    schema: &BlockSchema,
    example: Option<String>,
    subcategory: &str,
) -> String {
    let mut out = front_matter(
        &format!("{type_name} {kind} - {PROVIDER}"),
        subcategory,
        &schema.description,
    );
    out.push_str(&format!(
        "# {type_name} ({kind})\n\n{}\n\n",
        schema.description
    ));
    if let Some(example) = example {
        example_section(&mut out, "Example Usage", "terraform", &example);
    }
    let layout = if kind == "Ephemeral Resource" {
        Layout::Ephemeral
    } else {
        Layout::Managed
    };
    attribute_sections(&mut out, schema, &|_| Extra::default(), layout);
    out
}

/// The registry page name of a type: without the provider prefix.
pub fn page_name<'a>(prefix: &str, type_name: &'a str) -> &'a str {
    type_name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(type_name)
}

fn offering_description(offering: &Offering) -> String {
    if offering.description.is_empty() {
        format!("{}.", offering.title)
    } else {
        format!("{}: {}", offering.title, offering.description)
    }
}

fn owner_text(offering: &Offering) -> String {
    match &offering.owner.contact {
        Some(contact) => format!("{} ({contact})", offering.owner.team),
        None => offering.owner.team.clone(),
    }
}

fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text,
    }
}

fn front_matter(title: &str, subcategory: &str, description: &str) -> String {
    let mut out = String::from("---\n");
    out.push_str(&format!("page_title: {}\n", yaml_string(title)));
    out.push_str(&format!("subcategory: {}\n", yaml_string(subcategory)));
    out.push_str("description: |-\n");
    for line in description.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("---\n\n");
    out
}

fn yaml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn example_section(out: &mut String, heading: &str, language: &str, example: &str) {
    out.push_str(&format!(
        "## {heading}\n\n```{language}\n{}\n```\n\n",
        example.trim_end()
    ));
}

/// Whose attributes a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// The provider block: sections only, under the page's own heading.
    Provider,
    /// A resource or data source.
    Managed,
    /// An ephemeral resource: results never reach the state.
    Ephemeral,
}

/// Required / Optional / Read-Only, as the registry lays them out, then the
/// nested schemas of object-typed attributes and single nested blocks.
fn attribute_sections(
    out: &mut String,
    schema: &BlockSchema,
    extra: &dyn Fn(&AttrSchema) -> Extra,
    layout: Layout,
) {
    let required: Vec<&AttrSchema> = schema
        .attributes
        .iter()
        .filter(|a| a.flags == Flags::Required)
        .collect();
    let optional: Vec<&AttrSchema> = schema
        .attributes
        .iter()
        .filter(|a| matches!(a.flags, Flags::Optional | Flags::OptionalComputed))
        .collect();
    let computed: Vec<&AttrSchema> = schema
        .attributes
        .iter()
        .filter(|a| a.flags == Flags::Computed)
        .collect();
    let mut nested = Vec::new();
    if layout != Layout::Provider {
        out.push_str("## Argument Reference\n\n");
    }
    if required.is_empty() && optional.is_empty() && schema.blocks.is_empty() {
        out.push_str("This has no arguments.\n\n");
    }
    if !required.is_empty() {
        out.push_str("### Required\n\n");
        for attr in &required {
            attribute_line(out, attr, &extra(attr), "nestedatt-", &mut nested);
        }
        out.push('\n');
    }
    if !optional.is_empty() || !schema.blocks.is_empty() {
        out.push_str("### Optional\n\n");
        for attr in &optional {
            attribute_line(out, attr, &extra(attr), "nestedatt-", &mut nested);
        }
        for (name, block) in &schema.blocks {
            let anchor = format!("nestedblock--{name}");
            out.push_str(&format!(
                "- `{name}` (Block, Optional) {} (see [below for nested schema](#{anchor}))\n",
                block.description
            ));
        }
        out.push('\n');
    }
    if !computed.is_empty() {
        let has_arguments = !required.is_empty() || !optional.is_empty();
        out.push_str(match layout {
            Layout::Provider => "### Read-Only\n\n",
            Layout::Ephemeral => {
                "## Attribute Reference\n\nIn addition to the arguments above, these attributes \
                 are available while it is open; they are never stored in the state:\n\n"
            }
            Layout::Managed if has_arguments => {
                "## Attribute Reference\n\nIn addition to the arguments above, these attributes \
                 are exported:\n\n"
            }
            Layout::Managed => "## Attribute Reference\n\nThese attributes are exported:\n\n",
        });
        for attr in &computed {
            attribute_line(out, attr, &extra(attr), "nestedatt-", &mut nested);
        }
        out.push('\n');
    }
    for (name, block) in &schema.blocks {
        out.push_str(&format!(
            "<a id=\"nestedblock--{name}\"></a>\n### Nested Schema for `{name}`\n\n"
        ));
        for (label, flags) in [
            ("Required", &[Flags::Required][..]),
            ("Optional", &[Flags::Optional, Flags::OptionalComputed][..]),
            ("Read-Only", &[Flags::Computed][..]),
        ] {
            let attrs: Vec<&AttrSchema> = block
                .attributes
                .iter()
                .filter(|a| flags.contains(&a.flags))
                .collect();
            if attrs.is_empty() {
                continue;
            }
            out.push_str(&format!("{label}:\n\n"));
            for attr in attrs {
                attribute_line(
                    out,
                    attr,
                    &Extra::default(),
                    &format!("nestedblock--{name}-"),
                    &mut nested,
                );
            }
            out.push('\n');
        }
    }
    while !nested.is_empty() {
        let (anchor, name, ty) = nested.remove(0);
        nested_object_section(out, &anchor, &name, &ty, &mut nested);
    }
}

/// Object types below an attribute: (anchor, attribute name, object type).
type Nested = Vec<(String, String, Type)>;

fn object_of(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Object(_) => Some(ty),
        Type::List(e) | Type::Set(e) | Type::Map(e) => object_of(e),
        _ => None,
    }
}

fn attribute_line(
    out: &mut String,
    attr: &AttrSchema,
    extra: &Extra,
    anchor_prefix: &str,
    nested: &mut Nested,
) {
    let mut label = type_label(&attr.ty);
    if attr.sensitive {
        label.push_str(", Sensitive");
    }
    let mut text = extra
        .description
        .clone()
        .unwrap_or_else(|| attr.description.clone());
    for part in [extra.suffix.as_str()] {
        if !part.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(part);
        }
    }
    if let Some(object) = object_of(&attr.ty) {
        let anchor = format!("{anchor_prefix}-{}", attr.name);
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("(see [below for nested schema](#{anchor}))"));
        nested.push((anchor, attr.name.clone(), object.clone()));
    }
    out.push_str(&format!("- `{}` ({label})", attr.name));
    if !text.is_empty() {
        out.push(' ');
        out.push_str(&text);
    }
    out.push('\n');
    for bullet in &extra.bullets {
        out.push_str(&format!("  - {bullet}\n"));
    }
}

fn nested_object_section(
    out: &mut String,
    anchor: &str,
    name: &str,
    ty: &Type,
    nested: &mut Nested,
) {
    let Type::Object(attrs) = ty else { return };
    out.push_str(&format!(
        "<a id=\"{anchor}\"></a>\n### Nested Schema for `{name}`\n\nRead-Only:\n\n"
    ));
    for (attr_name, attr_ty) in attrs {
        let mut line = format!("- `{attr_name}` ({})", type_label(attr_ty));
        if let Some(object) = object_of(attr_ty) {
            let inner = format!("{anchor}--{attr_name}");
            line.push_str(&format!(" (see [below for nested schema](#{inner}))"));
            nested.push((inner, format!("{name}.{attr_name}"), object.clone()));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
}

/// The registry's type words: `String`, `Set of String`, `List of Object`.
pub fn type_label(ty: &Type) -> String {
    match ty {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_label(e)),
        Type::Set(e) => format!("Set of {}", type_label(e)),
        Type::Map(e) => format!("Map of {}", type_label(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

fn row(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |\n", cells.join(" | "))
}

pub fn tier_row(tier: &Tier, first: bool) -> String {
    let name = if first {
        format!("`{}` (default)", tier.name)
    } else {
        format!("`{}`", tier.name)
    };
    let approval = if tier.requires_approval {
        "required"
    } else {
        "not required"
    };
    let transitions = match &tier.transitions_to {
        None => "any tier".to_owned(),
        Some(to) if to.is_empty() => "none".to_owned(),
        Some(to) => to
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let values = if tier.values.is_empty() {
        "—".to_owned()
    } else {
        tier.values
            .iter()
            .map(|(k, v)| format!("`{k} = {}`", platform_catalog::fmt_value(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    row(&[name, price_text(tier), approval.into(), transitions, values])
}

fn tiers_section(out: &mut String, version: &Version) {
    out.push_str("## Tiers\n\n");
    if version.tiers.is_empty() {
        out.push_str("This version has no tiers.\n\n");
        return;
    }
    out.push_str(
        "`tier` picks one; `monthly_cost` is its price. Whether a tier requires approval reaches \
         the broker's policy (`input.catalog`), which can hold the plan for an approval. Moving \
         an instance to a tier not listed under \"May change to\" is a plan error.\n\n",
    );
    out.push_str("| Tier | Monthly price | Approval | May change to | Values |\n");
    out.push_str("|------|---------------|----------|---------------|--------|\n");
    for (i, tier) in version.tiers.iter().enumerate() {
        out.push_str(&tier_row(tier, i == 0));
    }
    out.push('\n');
}

fn date_cell(date: Option<time::Date>) -> String {
    date.map_or_else(|| "—".to_owned(), |d| d.to_string())
}

pub fn version_row(version: &Version) -> String {
    let deprecation = version.deprecation.as_ref();
    row(&[
        format!("`{}`", version.version),
        version.status.as_str().to_owned(),
        date_cell(deprecation.and_then(|d| d.create_until)),
        date_cell(deprecation.and_then(|d| d.update_until)),
        deprecation
            .and_then(|d| d.successor.as_ref())
            .map_or_else(|| "—".to_owned(), |s| format!("`{s}`")),
    ])
}

/// What the plan-time deprecation state machine does with a version.
pub fn lifecycle_line(offering: &Offering, version: &Version) -> String {
    let v = &version.version;
    let deprecation = version.deprecation.as_ref();
    let successor = deprecation
        .and_then(|d| d.successor.as_ref())
        .map(|s| format!(" Successor: `{s}`."))
        .unwrap_or_default();
    let text = match version.status {
        Status::Current if offering.current().version == *v => {
            "new instances get this version unless `offering_version` names another.".to_owned()
        }
        Status::Current => format!("available with `offering_version = \"{v}\"`."),
        Status::Preview => {
            "plans that create an instance warn: a preview may change incompatibly before it \
             becomes current."
                .to_owned()
        }
        Status::Deprecated => {
            let mut text = "plans warn.".to_owned();
            match deprecation.and_then(|d| d.create_until) {
                Some(until) => text.push_str(&format!(
                    " New instances are accepted until {until}; creating one later is a plan error."
                )),
                None => text.push_str(" New instances are still accepted."),
            }
            match deprecation.and_then(|d| d.update_until) {
                Some(until) => text.push_str(&format!(
                    " Updates are accepted until {until}; after that only destroy is possible."
                )),
                None => text.push_str(" Updates are still accepted."),
            }
            text
        }
        Status::Retired => {
            "can only be destroyed: a plan that creates or changes an instance fails.".to_owned()
        }
    };
    format!("- `{v}` ({}): {text}{successor}", version.status.as_str())
}

fn lifecycle_section(out: &mut String, offering: &Offering) {
    out.push_str("## Versions and Lifecycle\n\n");
    out.push_str(
        "Each instance records its catalog version in `offering_version`. Dates are checked at \
         plan time against today's date (UTC) and are inclusive; `PLATFORM_TODAY=YYYY-MM-DD` \
         previews a later day.\n\n",
    );
    out.push_str("| Version | Status | New instances until | Updates until | Successor |\n");
    out.push_str("|---------|--------|---------------------|---------------|-----------|\n");
    for version in &offering.versions {
        out.push_str(&version_row(version));
    }
    out.push('\n');
    for version in &offering.versions {
        out.push_str(&lifecycle_line(offering, version));
        out.push('\n');
    }
    out.push('\n');
}

fn import_section(
    out: &mut String,
    catalog: &Catalog,
    offering: &Offering,
    type_name: &str,
    examples: &Examples,
) -> Result<(), String> {
    out.push_str("## Import\n\n");
    let parts: Vec<String> = id_inputs(offering.current())
        .map(|i| format!("<{}>", i.name))
        .collect();
    if parts.is_empty() {
        out.push_str(&format!(
            "`{}` cannot be imported: the offering has no required string input to identify an \
             instance by.\n",
            catalog.resource_type(offering)
        ));
        return Ok(());
    }
    out.push_str(&format!(
        "Import takes the ID `{}`: the offering's required string inputs joined with `/`. The \
         import reads the objects back through the drivers; `labels` cannot be recovered and \
         `team` is set from the provider's `default_team`.\n\n",
        parts.join("/")
    ));
    match examples.read(&format!("resources/{type_name}/import.sh"))? {
        Some(script) => out.push_str(&format!("```shell\n{}\n```\n", script.trim_end())),
        None => out.push_str(&format!(
            "```shell\nterraform import {type_name}.example {}\n```\n",
            parts.join("/")
        )),
    }
    Ok(())
}
