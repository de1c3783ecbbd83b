//! `tier` blocks and their prices.

use std::collections::HashMap;

use hcl::Value;
use hcl_edit::Span;
use hcl_edit::expr::Expression as EditExpr;
use hcl_edit::structure::Block;

use crate::diag::FileDiags;
use crate::model::{Input, Price, Tier};
use crate::refs::{RefEnv, check_refs};

use super::body::{Fields, check_number_literals, no_labels, one_label, split_body};
use super::{SpanR, check_item_name};

pub(super) fn load_tiers(fd: &mut FileDiags, fields: &Fields, inputs: &[Input]) -> Vec<Tier> {
    let mut tiers: Vec<Tier> = Vec::new();
    let mut transitions: Vec<(String, String, SpanR)> = Vec::new();
    let mut locations = HashMap::new();
    for block in fields.blocks("tier") {
        let Some((name, span)) = one_label(fd, block) else {
            continue;
        };
        if !check_item_name(fd, "tier", &name, &span, &mut locations) {
            continue;
        }
        if let Some(tier) = load_tier(fd, block, name, inputs, &mut transitions) {
            tiers.push(tier);
        }
    }
    for (from, to, span) in transitions {
        if !tiers.iter().any(|tier| tier.name == to) {
            fd.error(
                &span,
                format!("unknown transition target \"{to}\" in tier \"{from}\""),
            );
        }
    }
    tiers
}

fn load_tier(
    fd: &mut FileDiags,
    block: &Block,
    name: String,
    inputs: &[Input],
    transitions: &mut Vec<(String, String, SpanR)>,
) -> Option<Tier> {
    let what = format!("in tier \"{name}\"");
    let fields = split_body(
        fd,
        &block.body,
        &what,
        &["values", "requires_approval", "transitions_to"],
        &["price"],
    );
    let price_blocks = fields.blocks("price");
    let price = match price_blocks.first() {
        Some(price_block) => load_price(fd, price_block, inputs),
        None => {
            fd.error(
                &block.span(),
                format!("missing required block \"price\" {what}"),
            );
            None
        }
    };
    for extra in price_blocks.iter().skip(1) {
        fd.error(&extra.span(), format!("duplicate price block {what}"));
    }
    let values = match fields.attr("values") {
        None => hcl::Map::new(),
        Some(attr) => match fields.literal(fd, attr) {
            Some(Value::Object(values)) => values,
            Some(_) => {
                fd.error(&attr.value.span(), "attribute \"values\" must be an object");
                hcl::Map::new()
            }
            None => hcl::Map::new(),
        },
    };
    let requires_approval = fields.bool(fd, "requires_approval").unwrap_or(false);
    let transitions_to = fields.attr("transitions_to").and_then(|attr| {
        let EditExpr::Array(array) = &attr.value else {
            fd.error(
                &attr.value.span(),
                "attribute \"transitions_to\" must be a list of tier names",
            );
            return None;
        };
        let mut targets = Vec::new();
        for element in array.iter() {
            match element {
                EditExpr::String(target) => {
                    transitions.push((name.clone(), target.to_string(), element.span()));
                    targets.push(target.to_string());
                }
                other => fd.error(
                    &other.span(),
                    "a transitions_to entry must be a tier name string",
                ),
            }
        }
        Some(targets)
    });
    Some(Tier {
        name,
        price: price?,
        values,
        requires_approval,
        transitions_to,
    })
}

fn load_price(fd: &mut FileDiags, block: &Block, inputs: &[Input]) -> Option<Price> {
    if !no_labels(fd, block) {
        return None;
    }
    let what = "in price block";
    let fields = split_body(
        fd,
        &block.body,
        what,
        &["amount", "unit", "currency", "quantity"],
        &[],
    );
    let amount = match fields.attr("amount") {
        Some(_) => fields.number(fd, "amount").and_then(|(amount, span)| {
            if amount < 0.0 {
                fd.error(
                    &span,
                    format!(
                        "price amount must not be negative, got {}",
                        fd.snippet(&span).trim()
                    ),
                );
                None
            } else {
                Some(amount)
            }
        }),
        None => {
            fd.error(
                &block.span(),
                format!("missing required attribute \"amount\" {what}"),
            );
            None
        }
    };
    let unit = fields
        .required_string_with_span(fd, block, what, "unit")
        .and_then(|(unit, span)| {
            if unit == "month" || unit == "hour" {
                Some(unit)
            } else {
                fd.error(
                    &span,
                    format!("invalid unit \"{unit}\"; expected month or hour"),
                );
                None
            }
        });
    let currency = fields
        .string(fd, "currency")
        .map_or_else(|| "USD".to_string(), |(text, _)| text);
    let quantity = fields.attr("quantity").map(|attr| {
        let env = RefEnv {
            inputs,
            tiers: &[],
            primitives: None,
            tier_values: false,
        };
        check_number_literals(fd, &attr.value);
        check_refs(fd, &attr.value, &env);
        hcl::Expression::from(attr.value.clone())
    });
    Some(Price {
        amount: amount?,
        unit: unit?,
        currency,
        quantity,
    })
}
