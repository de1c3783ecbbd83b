//! From HCL sources to the model, reporting every problem on the way.
//!
//! The loader walks hcl-edit's tree (it keeps byte spans) block by block. Each block's body is
//! first split into known attributes and blocks (unknown and duplicate ones are reported), then
//! each attribute is evaluated as a constant with hcl-rs and type-checked. A problem is reported
//! and the offending item skipped; the walk always continues, so one run shows every problem.

mod body;
mod compose;
mod input;
mod tier;

use std::collections::HashMap;
use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::structure::Block;

use crate::Source;
use crate::diag::{Diagnostic, FileDiags};
use crate::model::{Catalog, Deprecation, Offering, Owner, SemVer, Status, Version};
use crate::refs::RefEnv;

use body::{no_labels, one_label, split_body};
use compose::{load_compose, load_outputs};
use input::load_inputs;
use tier::load_tiers;

type SpanR = Option<Range<usize>>;

/// Attribute names the provider adds to every resource; inputs and outputs cannot use them.
pub const RESERVED_ATTRIBUTES: [&str; 8] = [
    "id",
    "tier",
    "team",
    "labels",
    "offering_version",
    "monthly_cost",
    "status",
    "secret_version",
];

pub(crate) const DEFAULT_PROVIDER_PREFIX: &str = "platform";

/// Offerings and the catalog block found so far, across files.
#[derive(Default)]
struct State {
    prefix: Option<(String, String)>, // (prefix, where the catalog block is)
    offerings: Vec<Offering>,
    offering_locations: HashMap<String, String>,
}

pub(crate) fn load(mut sources: Vec<Source>, diags: &mut Vec<Diagnostic>) -> Catalog {
    // Sorting makes "first declared" (and so every diagnostic) independent of the given order.
    sources.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.text.cmp(&b.text)));
    let digest = crate::digest(&sources);
    let mut state = State::default();
    let mut regexes = HashMap::new();
    for source in &sources {
        let n_before = diags.len();
        let mut fd = FileDiags::new(&source.name, &source.text, diags, &mut regexes);
        load_file(&mut fd, &source.text, &mut state);
        // Checks run in passes (names, then references, ...); readers want file order.
        diags[n_before..].sort_by_key(|diag| (diag.line, diag.col));
    }
    // Names are unique (duplicates are skipped above), so an unstable sort is deterministic.
    state.offerings.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Catalog {
        provider_prefix: state
            .prefix
            .map_or_else(|| DEFAULT_PROVIDER_PREFIX.to_string(), |(prefix, _)| prefix),
        offerings: state.offerings,
        digest,
    }
}

fn load_file(fd: &mut FileDiags, text: &str, state: &mut State) {
    if let Err(too_deep) = crate::nesting::check_nesting(text) {
        let pos = fd.pos_of_offset(too_deep.offset);
        fd.error_at(pos, too_deep.message);
        return;
    }
    let body = match hcl_edit::parser::parse_body(text) {
        Ok(body) => body,
        Err(err) => {
            let offset = err.location().offset();
            if let Some((span, literal)) = overflowing_number(text, offset) {
                fd.error_detail(
                    &Some(span),
                    format!("number {literal} is out of range"),
                    "numbers are 64-bit floats; their magnitude must be below about 1.8e308",
                );
                return;
            }
            let pos = fd.pos_of_offset(offset);
            fd.error_at(pos, format!("syntax error: {}", err.message()));
            return;
        }
    };
    let fields = split_body(fd, &body, "at the top level", &[], &["catalog", "offering"]);
    for block in fields.blocks("catalog") {
        load_catalog_block(fd, block, state);
    }
    for block in fields.blocks("offering") {
        if let Some(offering) = load_offering(fd, block, state) {
            state.offerings.push(offering);
        }
    }
}

/// hcl-edit rejects a number literal too large for a float (`1e400`) with a generic syntax
/// error near it; this finds such a literal on the error's line, covering or next to the error
/// offset, so the diagnostic can say what is wrong.
fn overflowing_number(text: &str, offset: usize) -> Option<(Range<usize>, &str)> {
    let offset = offset.min(text.len());
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |idx| idx + 1);
    let line_end = text
        .get(offset..)?
        .find('\n')
        .map_or(text.len(), |idx| offset + idx);
    let line = text.get(line_start..line_end)?;
    let literal = regex::Regex::new(r"[0-9]+(\.[0-9]+)?[eE][+-]?[0-9]+").ok()?;
    literal
        .find_iter(line)
        .map(|found| {
            (
                line_start + found.start()..line_start + found.end(),
                found.as_str(),
            )
        })
        .find(|(range, literal)| {
            range.start <= offset
                && offset <= range.end
                && literal.parse::<f64>().is_ok_and(f64::is_infinite)
        })
}

fn load_catalog_block(fd: &mut FileDiags, block: &Block, state: &mut State) {
    if !no_labels(fd, block) {
        return;
    }
    if let Some((_, first)) = &state.prefix {
        fd.error_detail(
            &block.span(),
            "duplicate catalog block",
            format!("first declared at {first}"),
        );
        return;
    }
    let fields = split_body(
        fd,
        &block.body,
        "in the catalog block",
        &["provider_prefix"],
        &[],
    );
    let mut prefix = DEFAULT_PROVIDER_PREFIX.to_string();
    if let Some((value, span)) = fields.string(fd, "provider_prefix") {
        if is_name(&value, false) {
            prefix = value;
        } else {
            fd.error(
                &span,
                format!(
                    "invalid provider_prefix \"{value}\"; expected lowercase letters and digits, starting with a letter"
                ),
            );
        }
    }
    state.prefix = Some((prefix, fd.location(&block.span())));
}

fn load_offering(fd: &mut FileDiags, block: &Block, state: &mut State) -> Option<Offering> {
    let (name, label_span) = one_label(fd, block)?;
    if !is_name(&name, true) {
        fd.error(&label_span, invalid_name("offering", &name));
    }
    let here = fd.location(&label_span);
    if let Some(first) = state.offering_locations.get(&name) {
        fd.error_detail(
            &label_span,
            format!("duplicate offering \"{name}\""),
            format!("first declared at {first}"),
        );
        return None;
    }
    state.offering_locations.insert(name.clone(), here);

    let what = format!("in offering \"{name}\"");
    let fields = split_body(
        fd,
        &block.body,
        &what,
        &["title", "description"],
        &["owner", "version"],
    );
    let title = fields
        .required_string(fd, block, &what, "title")
        .unwrap_or_default();
    let description = fields
        .string(fd, "description")
        .map(|(text, _)| text)
        .unwrap_or_default();

    let owner_blocks = fields.blocks("owner");
    let owner = match owner_blocks.first() {
        Some(owner_block) => load_owner(fd, owner_block),
        None => {
            fd.error(
                &block.span(),
                format!("missing required block \"owner\" {what}"),
            );
            None
        }
    };
    for extra in owner_blocks.iter().skip(1) {
        fd.error(&extra.span(), format!("duplicate owner block {what}"));
    }

    let mut versions: Vec<Version> = Vec::new();
    let mut version_locations: HashMap<String, String> = HashMap::new();
    let mut successors: Vec<(String, SpanR)> = Vec::new();
    for version_block in fields.blocks("version") {
        let Some((label, label_span)) = one_label(fd, version_block) else {
            continue;
        };
        if SemVer::parse(&label).is_none() {
            fd.error(
                &label_span,
                format!("invalid version \"{label}\"; expected a semantic version like 1.2.0"),
            );
        }
        if let Some(first) = version_locations.get(&label) {
            fd.error_detail(
                &label_span,
                format!("duplicate version \"{label}\""),
                format!("first declared at {first}"),
            );
            continue;
        }
        version_locations.insert(label.clone(), fd.location(&label_span));
        if let Some((version, successor)) = load_version(fd, version_block, label) {
            successors.extend(successor);
            versions.push(version);
        }
    }
    for (successor, span) in successors {
        if !version_locations.contains_key(&successor) {
            fd.error(
                &span,
                format!("unknown successor version \"{successor}\" of offering \"{name}\""),
            );
        }
    }
    if version_locations.is_empty() {
        fd.error(
            &block.span(),
            format!("offering \"{name}\" has no versions"),
        );
        return None;
    }
    let mut offering = Offering {
        name,
        title,
        description,
        owner: owner?,
        versions,
    };
    let current = offering.current();
    // Without any loaded version, the version errors already say what is wrong.
    if current.inherits_schema && !offering.versions.is_empty() {
        // Neither it nor the versions that inherit from it have tiers (see load_version).
        fd.error_detail(
            &block.span(),
            format!("offering \"{}\" has no tiers", offering.name),
            format!(
                "its current version \"{}\" declares no input, tier, compose or output blocks; every resource chooses a tier, so declare at least one tier block there",
                current.version
            ),
        );
    }
    inherit_schema(&mut offering);
    Some(offering)
}

/// Versions that declare no schema of their own take it from the schema version.
fn inherit_schema(offering: &mut Offering) {
    let schema = offering.current();
    if schema.inherits_schema {
        return;
    }
    let schema_version = schema.version.clone();
    let Some(idx) = offering
        .versions
        .iter()
        .position(|version| version.version == schema_version)
    else {
        return;
    };
    let (schema, others) = {
        let (before, rest) = offering.versions.split_at_mut(idx);
        let (schema, after) = rest.split_at_mut(1);
        (&schema[0], before.iter_mut().chain(after.iter_mut()))
    };
    for version in others {
        if version.inherits_schema {
            version.inputs = schema.inputs.clone();
            version.tiers = schema.tiers.clone();
            version.compose = schema.compose.clone();
            version.outputs = schema.outputs.clone();
        }
    }
}

fn load_owner(fd: &mut FileDiags, block: &Block) -> Option<Owner> {
    if !no_labels(fd, block) {
        return None;
    }
    let what = "in owner block";
    let fields = split_body(fd, &block.body, what, &["team", "contact"], &[]);
    let team = fields.required_string(fd, block, what, "team");
    let contact = fields.string(fd, "contact").map(|(text, _)| text);
    Some(Owner {
        team: team?,
        contact,
    })
}

/// Returns the version and, when declared, its successor (checked by the caller once all
/// versions are known).
fn load_version(
    fd: &mut FileDiags,
    block: &Block,
    label: String,
) -> Option<(Version, Option<(String, SpanR)>)> {
    let what = format!("in version \"{label}\"");
    let fields = split_body(
        fd,
        &block.body,
        &what,
        &["status"],
        &["deprecation", "input", "tier", "compose", "output"],
    );
    let status = match fields.required_string_with_span(fd, block, &what, "status") {
        Some((text, span)) => match Status::parse(&text) {
            Some(status) => Some(status),
            None => {
                fd.error(
                    &span,
                    format!("invalid status \"{text}\"; expected preview, current, deprecated or retired"),
                );
                None
            }
        },
        None => None,
    };

    let mut deprecation = None;
    let mut successor = None;
    for (idx, deprecation_block) in fields.blocks("deprecation").into_iter().enumerate() {
        if idx > 0 {
            fd.error(
                &deprecation_block.span(),
                format!("duplicate deprecation block {what}"),
            );
            continue;
        }
        if let Some((parsed, successor_span)) = load_deprecation(fd, deprecation_block) {
            if let (Some(name), Some(span)) = (&parsed.successor, successor_span) {
                successor = Some((name.clone(), Some(span)));
            }
            deprecation = Some(parsed);
        }
    }

    let inherits_schema = ["input", "tier", "compose", "output"]
        .iter()
        .all(|ident| fields.blocks(ident).is_empty());

    let inputs = load_inputs(fd, &fields);
    let tiers = load_tiers(fd, &fields, &inputs);
    // A version without tiers could never be used (every resource picks a tier); a version
    // that declares no schema at all takes its tiers from the schema version instead, and
    // the offering reports there when that one has none.
    if !inherits_schema && fields.blocks("tier").is_empty() {
        fd.error_detail(
            &block.span(),
            format!("version \"{label}\" has no tiers"),
            "every resource chooses a tier; declare at least one tier block, e.g. tier \"standard\" { price { amount = 0, unit = \"month\" } }",
        );
    }
    let outputs_blocks = fields.blocks("output");
    let compose = load_compose(fd, &fields, &inputs, &tiers);
    let primitive_names: Vec<String> = compose.iter().map(|p| p.name.clone()).collect();
    let env = RefEnv {
        inputs: &inputs,
        tiers: &tiers,
        primitives: Some(&primitive_names),
        tier_values: true,
    };
    let outputs = load_outputs(fd, &outputs_blocks, &inputs, &env);
    Some((
        Version {
            version: label,
            status: status?,
            deprecation,
            inputs,
            tiers,
            compose,
            outputs,
            inherits_schema,
        },
        successor,
    ))
}

fn load_deprecation(fd: &mut FileDiags, block: &Block) -> Option<(Deprecation, SpanR)> {
    if !no_labels(fd, block) {
        return None;
    }
    let fields = split_body(
        fd,
        &block.body,
        "in deprecation block",
        &["create_until", "update_until", "successor"],
        &[],
    );
    let mut date = |key: &str| -> Option<time::Date> {
        let (text, span) = fields.string(fd, key)?;
        let format = time::macros::format_description!("[year]-[month]-[day]");
        match time::Date::parse(&text, &format) {
            Ok(date) => Some(date),
            Err(_) => {
                fd.error(
                    &span,
                    format!("invalid date \"{text}\" in {key}; expected YYYY-MM-DD"),
                );
                None
            }
        }
    };
    let create_until = date("create_until");
    let update_until = date("update_until");
    let successor = fields.string(fd, "successor");
    let successor_span = successor.as_ref().and_then(|(_, span)| span.clone());
    Some((
        Deprecation {
            create_until,
            update_until,
            successor: successor.map(|(name, _)| name),
        },
        successor_span,
    ))
}
/// Name syntax, reserved names and duplicates for inputs and outputs (and syntax and
/// duplicates for tiers and primitives). Returns false when the item must be skipped.
pub(super) fn check_item_name(
    fd: &mut FileDiags,
    kind: &str,
    name: &str,
    span: &SpanR,
    locations: &mut HashMap<String, String>,
) -> bool {
    if !is_name(name, true) {
        fd.error(span, invalid_name(kind, name));
    }
    if (kind == "input" || kind == "output") && RESERVED_ATTRIBUTES.contains(&name) {
        fd.error_detail(
            span,
            format!("{kind} name \"{name}\" is reserved"),
            format!(
                "resources carry attributes of these names themselves: {}",
                RESERVED_ATTRIBUTES.join(", ")
            ),
        );
    }
    if let Some(first) = locations.get(name) {
        fd.error_detail(
            span,
            format!("duplicate {kind} \"{name}\""),
            format!("first declared at {first}"),
        );
        return false;
    }
    locations.insert(name.to_string(), fd.location(span));
    true
}

/// `^[a-z][a-z0-9_]*$`, or `^[a-z][a-z0-9]*$` without underscores.
pub(super) fn is_name(text: &str, underscores: bool) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || (underscores && c == '_'))
}

pub(super) fn is_driver(text: &str) -> bool {
    text.split_once('.')
        .is_some_and(|(backend, kind)| is_name(backend, true) && is_name(kind, true))
}

fn invalid_name(kind: &str, name: &str) -> String {
    format!(
        "invalid {kind} name \"{name}\"; expected lowercase letters, digits and underscores, starting with a letter"
    )
}

#[cfg(test)]
mod tests;
