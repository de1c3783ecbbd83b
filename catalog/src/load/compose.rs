//! `compose` and `output` blocks: references, dependencies and their order.

use std::collections::HashMap;

use hcl_edit::Span;
use hcl_edit::expr::Expression as EditExpr;
use hcl_edit::structure::{Attribute, Block};

use crate::diag::FileDiags;
use crate::model::{Input, Output, Primitive, Tier};
use crate::refs::{RefEnv, check_refs};

use super::body::{Fields, check_number_literals, no_labels, one_label, split_body};
use super::{SpanR, check_item_name, is_driver};

/// Parses the compose block, checks references, and returns primitives in dependency order.
pub(super) fn load_compose(
    fd: &mut FileDiags,
    fields: &Fields,
    inputs: &[Input],
    tiers: &[Tier],
) -> Vec<Primitive> {
    let compose_blocks = fields.blocks("compose");
    for extra in compose_blocks.iter().skip(1) {
        fd.error(&extra.span(), "duplicate compose block");
    }
    let Some(compose_block) = compose_blocks.first() else {
        return Vec::new();
    };
    if !no_labels(fd, compose_block) {
        return Vec::new();
    }
    let compose_fields = split_body(
        fd,
        &compose_block.body,
        "in compose block",
        &[],
        &["primitive"],
    );

    // First pass: names and drivers, so that references can point forward.
    struct Draft<'b> {
        primitive: Primitive,
        span: SpanR,
        exprs: Vec<(String, SpanR, &'b EditExpr)>,
    }
    let mut drafts: Vec<Draft> = Vec::new();
    let mut locations = HashMap::new();
    for block in compose_fields.blocks("primitive") {
        let Some((name, span)) = one_label(fd, block) else {
            continue;
        };
        if !check_item_name(fd, "primitive", &name, &span, &mut locations) {
            continue;
        }
        let what = format!("in primitive \"{name}\"");
        let fields = split_body(fd, &block.body, &what, &["driver", "inputs"], &[]);
        let driver = fields
            .required_string_with_span(fd, block, &what, "driver")
            .and_then(|(driver, span)| {
                if is_driver(&driver) {
                    Some(driver)
                } else {
                    fd.error(
                        &span,
                        format!(
                            "invalid driver \"{driver}\"; expected backend.kind, e.g. postgres.role"
                        ),
                    );
                    None
                }
            });
        let mut exprs = Vec::new();
        if let Some(attr) = fields.attr("inputs") {
            exprs = object_items(fd, attr);
        }
        let Some(driver) = driver else { continue };
        drafts.push(Draft {
            primitive: Primitive {
                name,
                driver,
                inputs: Vec::new(),
                depends_on: Vec::new(),
                input_locations: Default::default(),
            },
            span: block.span(),
            exprs,
        });
    }
    let names: Vec<String> = drafts
        .iter()
        .map(|draft| draft.primitive.name.clone())
        .collect();
    let env = RefEnv {
        inputs,
        tiers,
        primitives: Some(&names),
        tier_values: true,
    };
    for Draft {
        primitive, exprs, ..
    } in &mut drafts
    {
        for (key, key_span, expr) in exprs.iter() {
            check_number_literals(fd, expr);
            for dependency in check_refs(fd, expr, &env) {
                if !primitive.depends_on.contains(&dependency) {
                    primitive.depends_on.push(dependency);
                }
            }
            primitive
                .inputs
                .push((key.clone(), hcl::Expression::from((*expr).clone())));
            primitive
                .input_locations
                .insert(key.clone(), fd.located(key_span));
        }
    }
    let (primitives, spans): (Vec<Primitive>, Vec<SpanR>) = drafts
        .into_iter()
        .map(|draft| (draft.primitive, draft.span))
        .unzip();
    topo_sort(fd, primitives, &spans)
}

/// The `inputs = { key = expr }` object of a primitive, keys checked for duplicates.
fn object_items<'b>(fd: &mut FileDiags, attr: &'b Attribute) -> Vec<(String, SpanR, &'b EditExpr)> {
    let EditExpr::Object(object) = &attr.value else {
        fd.error(&attr.value.span(), "attribute \"inputs\" must be an object");
        return Vec::new();
    };
    let mut items: Vec<(String, SpanR, &EditExpr)> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (key, value) in object.iter() {
        let (name, span) = match key {
            hcl_edit::expr::ObjectKey::Ident(ident) => (ident.as_str().to_string(), ident.span()),
            hcl_edit::expr::ObjectKey::Expression(EditExpr::String(text)) => {
                (text.to_string(), text.span())
            }
            hcl_edit::expr::ObjectKey::Expression(other) => {
                fd.error(&other.span(), "an inputs key must be a name");
                continue;
            }
        };
        if !seen.insert(name.clone()) {
            fd.error(&span, format!("duplicate key \"{name}\" in inputs"));
            continue;
        }
        items.push((name, span, value.expr()));
    }
    items
}

/// Orders primitives so that dependencies come first, keeping declaration order otherwise;
/// reports each cycle once, at the primitive where it closes.
fn topo_sort(fd: &mut FileDiags, primitives: Vec<Primitive>, spans: &[SpanR]) -> Vec<Primitive> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let indices: HashMap<&str, usize> = primitives
        .iter()
        .enumerate()
        .map(|(idx, primitive)| (primitive.name.as_str(), idx))
        .collect();
    let index_of = |name: &str| indices.get(name).copied();
    let mut marks = vec![Mark::New; primitives.len()];
    let mut order: Vec<usize> = Vec::new();
    let mut reported: Vec<Vec<usize>> = Vec::new();
    for root in 0..primitives.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next dependency to look at).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::Active;
        while let Some((node, next)) = stack.last().copied() {
            let dependency = primitives[node]
                .depends_on
                .get(next)
                .and_then(|name| index_of(name));
            if next >= primitives[node].depends_on.len() {
                marks[node] = Mark::Done;
                order.push(node);
                stack.pop();
                continue;
            }
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            let Some(dependency) = dependency else {
                continue;
            };
            match marks[dependency] {
                Mark::Done => {}
                Mark::New => {
                    marks[dependency] = Mark::Active;
                    stack.push((dependency, 0));
                }
                Mark::Active => {
                    let start = stack
                        .iter()
                        .position(|(n, _)| *n == dependency)
                        .unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[start..].iter().map(|(n, _)| *n).collect();
                    let mut key = cycle.clone();
                    key.sort_unstable();
                    if reported.contains(&key) {
                        continue;
                    }
                    reported.push(key);
                    cycle.push(dependency);
                    let names: Vec<&str> =
                        cycle.iter().map(|n| primitives[*n].name.as_str()).collect();
                    let span = spans.get(dependency).cloned().flatten();
                    fd.error(
                        &span,
                        format!("cycle between primitives: {}", names.join(" -> ")),
                    );
                }
            }
        }
    }
    let mut slots: Vec<Option<Primitive>> = primitives.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|idx| slots.get_mut(idx).and_then(Option::take))
        .collect()
}

pub(super) fn load_outputs(
    fd: &mut FileDiags,
    blocks: &[&Block],
    inputs: &[Input],
    env: &RefEnv,
) -> Vec<Output> {
    let mut outputs = Vec::new();
    let mut locations = HashMap::new();
    for block in blocks {
        let Some((name, span)) = one_label(fd, block) else {
            continue;
        };
        if !check_item_name(fd, "output", &name, &span, &mut locations) {
            continue;
        }
        if inputs.iter().any(|input| input.name == name) {
            fd.error(
                &span,
                format!("output \"{name}\" has the same name as an input; both would be the attribute \"{name}\""),
            );
        }
        let what = format!("in output \"{name}\"");
        let fields = split_body(
            fd,
            &block.body,
            &what,
            &["value", "sensitive", "description"],
            &[],
        );
        let description = fields.string(fd, "description").map(|(text, _)| text);
        let sensitive = fields.bool(fd, "sensitive").unwrap_or(false);
        let value = match fields.attr("value") {
            Some(attr) => {
                check_number_literals(fd, &attr.value);
                check_refs(fd, &attr.value, env);
                Some(hcl::Expression::from(attr.value.clone()))
            }
            None => {
                fd.error(
                    &block.span(),
                    format!("missing required attribute \"value\" {what}"),
                );
                None
            }
        };
        if let Some(value) = value {
            outputs.push(Output {
                name,
                description,
                value,
                sensitive,
            });
        }
    }
    outputs
}
