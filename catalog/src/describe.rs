//! The words the platform uses for a catalog: guardrail sentences, input
//! descriptions, prices. The provider's resource schemas, its generated docs
//! and the JSON Schema of an offering version ([`crate::json_schema`]) all
//! read them from here, so a form, a page and `terraform providers schema`
//! say the same thing.

use crate::Tier;

/// The description of the reserved `team` argument.
pub const TEAM_DESCRIPTION: &str =
    "Owning team (cost and policy attribution). Defaults to the provider's default_team.";

/// The description of the reserved `labels` argument.
pub const LABELS_DESCRIPTION: &str = "Free-form labels.";

/// The schema description of an input attribute: the catalog's description
/// followed by its guardrails, as [`guardrails`] words them.
pub fn input_description(input: &crate::Input) -> String {
    let mut description = input.description.clone().unwrap_or_default();
    for sentence in guardrails(input) {
        if !description.is_empty() {
            description.push(' ');
        }
        description.push_str(&sentence);
    }
    description
}

/// The guardrails of an input, one sentence each: allowed values, pattern,
/// range, length, and what a change does. The schema descriptions and the
/// generated docs both use these words.
pub fn guardrails(input: &crate::Input) -> Vec<String> {
    use crate::{InputType, OnChange};
    // Enum, pattern and range apply to each element (map value) of a
    // collection; lengths to its number of elements (entries).
    let (each, count) = match input.ty {
        InputType::List(_) | InputType::Set(_) => ("Each element ", "elements"),
        InputType::Map(_) => ("Each value ", "entries"),
        _ => ("", ""),
    };
    let sentence = |text: String| -> String {
        if each.is_empty() {
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => text,
            }
        } else {
            format!("{each}{text}")
        }
    };
    let mut parts = Vec::new();
    if let Some(values) = &input.enum_values {
        let values: Vec<String> = values.iter().map(code_value).collect();
        parts.push(sentence(format!("one of: {}.", values.join(", "))));
    }
    if let Some(pattern) = &input.pattern {
        parts.push(sentence(format!("must match `{}`.", pattern.as_str())));
    }
    match (input.min, input.max) {
        (Some(min), Some(max)) => parts.push(sentence(format!("between {min} and {max}."))),
        (Some(min), None) => parts.push(sentence(format!("at least {min}."))),
        (None, Some(max)) => parts.push(sentence(format!("at most {max}."))),
        (None, None) => {}
    }
    match (input.min_length, input.max_length, count) {
        (Some(min), Some(max), "") => parts.push(format!("Length {min} to {max}.")),
        (Some(min), None, "") => parts.push(format!("Length at least {min}.")),
        (None, Some(max), "") => parts.push(format!("Length at most {max}.")),
        (Some(min), Some(max), count) => parts.push(format!("{min} to {max} {count}.")),
        (Some(min), None, count) => parts.push(format!("At least {min} {count}.")),
        (None, Some(max), count) => parts.push(format!("At most {max} {count}.")),
        (None, None, _) => {}
    }
    match input.on_change {
        OnChange::Update => {}
        OnChange::Replace => parts.push("Changing it replaces the instance.".into()),
        OnChange::Reject => {
            parts.push("Cannot be changed after creation (a change is a plan error).".into())
        }
        OnChange::GrowOnly => parts.push(
            "Can only grow: numbers may not decrease, collections may only gain elements, \
             other values may not change (a shrinking change is a plan error)."
                .into(),
        ),
    }
    parts
}

/// A catalog value in backticks: strings bare (`pgcrypto`), anything else
/// (and the empty string) in HCL notation (`20`, `["a"]`, `""`).
pub fn code_value(value: &hcl::Value) -> String {
    match value {
        hcl::Value::String(text) if !text.is_empty() && !text.contains('`') => {
            format!("`{text}`")
        }
        other => format!("`{}`", crate::fmt_value(other)),
    }
}

/// A money amount: whole amounts without decimals, others with two.
pub fn money(amount: f64, currency: &str) -> String {
    let cents = (amount * 100.0).round();
    if cents % 100.0 == 0.0 {
        format!("{:.0} {currency}", cents / 100.0)
    } else {
        format!("{:.2} {currency}", cents / 100.0)
    }
}

/// The monthly price of a tier as the provider computes it
/// (`Tier::monthly_price`): `25 USD`, `0.05 USD/hour = 36.50 USD`, or the
/// formula when the price depends on inputs.
pub fn price_text(tier: &Tier) -> String {
    let price = &tier.price;
    let base = match price.unit.as_str() {
        "hour" => format!(
            "{} {}/hour",
            hcl::Number::from_f64(price.amount)
                .map(|n| n.to_string())
                .unwrap_or_else(|| price.amount.to_string()),
            price.currency
        ),
        _ => money(price.amount, &price.currency),
    };
    match &price.quantity {
        Some(quantity) => {
            let hours = if price.unit == "hour" {
                " × 730 h"
            } else {
                ""
            };
            format!("{base}{hours} × `{quantity}` per month")
        }
        None => match tier.monthly_price(&hcl::Map::new()) {
            Ok(monthly) if price.unit == "hour" => {
                format!("{base} = {} per month", money(monthly, &price.currency))
            }
            Ok(monthly) => format!("{} per month", money(monthly, &price.currency)),
            Err(message) => message,
        },
    }
}
