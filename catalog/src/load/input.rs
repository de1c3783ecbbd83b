//! `input` blocks: type expressions, guardrails and defaults.

use std::collections::HashMap;

use hcl::Value;
use hcl_edit::Span;
use hcl_edit::expr::Expression as EditExpr;
use hcl_edit::structure::Block;

use crate::diag::FileDiags;
use crate::model::{Input, InputType, OnChange};

use super::body::{Fields, one_label, split_body};
use super::check_item_name;

pub(super) fn load_inputs(fd: &mut FileDiags, fields: &Fields) -> Vec<Input> {
    let mut inputs: Vec<Input> = Vec::new();
    let mut locations: HashMap<String, String> = HashMap::new();
    for block in fields.blocks("input") {
        let Some((name, span)) = one_label(fd, block) else {
            continue;
        };
        if !check_item_name(fd, "input", &name, &span, &mut locations) {
            continue;
        }
        if let Some(input) = load_input(fd, block, name) {
            inputs.push(input);
        }
    }
    inputs
}

const INPUT_ATTRIBUTES: [&str; 11] = [
    "type",
    "description",
    "default",
    "enum",
    "pattern",
    "min",
    "max",
    "min_length",
    "max_length",
    "on_change",
    "sensitive",
];

fn load_input(fd: &mut FileDiags, block: &Block, name: String) -> Option<Input> {
    let what = format!("in input \"{name}\"");
    let fields = split_body(fd, &block.body, &what, &INPUT_ATTRIBUTES, &[]);
    let ty = match fields.attr("type") {
        Some(attr) => {
            let ty = parse_type(&attr.value);
            if ty.is_none() {
                fd.error_detail(
                    &attr.value.span(),
                    format!("invalid type \"{}\"", fd.snippet(&attr.value.span())),
                    "expected string, number, bool, list(T), set(T) or map(T) where T is string, number or bool",
                );
            }
            ty
        }
        None => {
            fd.error(
                &block.span(),
                format!("missing required attribute \"type\" {what}"),
            );
            None
        }
    };
    let description = fields.string(fd, "description").map(|(text, _)| text);
    let on_change = match fields.string(fd, "on_change") {
        None => OnChange::Update,
        Some((text, span)) => OnChange::parse(&text).unwrap_or_else(|| {
            fd.error(
                &span,
                format!(
                    "invalid on_change \"{text}\"; expected update, replace, reject or grow_only"
                ),
            );
            OnChange::Update
        }),
    };
    let sensitive = fields.bool(fd, "sensitive").unwrap_or(false);
    let scalar = ty.as_ref().map(|ty| ty.scalar().clone());
    let scalar_is = |wanted: InputType| scalar.as_ref().is_none_or(|scalar| *scalar == wanted);

    let enum_values = fields.attr("enum").and_then(|attr| {
        let value = fields.literal(fd, attr)?;
        let Value::Array(elements) = value else {
            fd.error(&attr.value.span(), "attribute \"enum\" must be a list");
            return None;
        };
        let mut ok = true;
        if let Some(scalar) = &scalar {
            for element in &elements {
                if !scalar_matches(scalar, element) {
                    ok = false;
                    fd.error(
                        &attr.value.span(),
                        format!(
                            "enum value {} is not a {scalar}",
                            crate::guardrail::fmt_value(element)
                        ),
                    );
                }
            }
        }
        ok.then_some(elements)
    });

    let pattern = fields.string(fd, "pattern").and_then(|(text, span)| {
        if !scalar_is(InputType::String) {
            fd.error(
                &span,
                format!(
                    "pattern applies only to string values, not {}",
                    type_name(&ty)
                ),
            );
            return None;
        }
        if let Some(regex) = fd.regexes.get(&text) {
            return Some(regex.clone());
        }
        match regex::Regex::new(&text) {
            Ok(regex) => {
                fd.regexes.insert(text, regex.clone());
                Some(regex)
            }
            Err(err) => {
                fd.error(
                    &span,
                    format!("invalid regex \"{text}\": {}", regex_error_message(&err)),
                );
                None
            }
        }
    });

    let mut number_bound = |key: &str| -> Option<f64> {
        let (number, span) = fields.number(fd, key)?;
        if !scalar_is(InputType::Number) {
            fd.error(
                &span,
                format!(
                    "{key} applies only to number values, not {}",
                    type_name(&ty)
                ),
            );
            return None;
        }
        Some(number)
    };
    let min = number_bound("min");
    let max = number_bound("max");
    if let (Some(min), Some(max), Some(attr)) = (min, max, fields.attr("max"))
        && min > max
    {
        fd.error(&attr.value.span(), "max is less than min");
    }

    let mut length_bound = |key: &str| -> Option<u64> {
        let (length, span) = fields.length(fd, key)?;
        let applies = ty
            .as_ref()
            .is_none_or(|ty| ty.is_collection() || *ty == InputType::String);
        if !applies {
            fd.error(
                &span,
                format!(
                    "{key} applies only to strings and collections, not {}",
                    type_name(&ty)
                ),
            );
            return None;
        }
        Some(length)
    };
    let min_length = length_bound("min_length");
    let max_length = length_bound("max_length");
    if let (Some(min), Some(max), Some(attr)) = (min_length, max_length, fields.attr("max_length"))
        && min > max
    {
        fd.error(&attr.value.span(), "max_length is less than min_length");
    }

    let mut input = Input {
        name,
        ty: ty?,
        description,
        default: None,
        enum_values,
        pattern,
        min,
        max,
        min_length,
        max_length,
        on_change,
        sensitive,
    };
    if let Some(attr) = fields.attr("default")
        && let Some(value) = fields.literal(fd, attr)
    {
        let violations = input.check(&value);
        for violation in &violations {
            let path: String = violation
                .path
                .iter()
                .map(|step| match step {
                    crate::PathStep::Index(idx) => format!("[{idx}]"),
                    crate::PathStep::Key(key) => format!("[{key:?}]"),
                })
                .collect();
            let path = if path.is_empty() {
                String::new()
            } else {
                format!("element {path}: ")
            };
            fd.error(
                &attr.value.span(),
                format!(
                    "default violates the input's own guardrails: {path}{}",
                    violation.message
                ),
            );
        }
        if violations.is_empty() {
            input.default = Some(value);
        }
    }
    Some(input)
}

fn type_name(ty: &Option<InputType>) -> String {
    ty.as_ref()
        .map_or_else(|| "this type".to_string(), ToString::to_string)
}

fn scalar_matches(scalar: &InputType, value: &Value) -> bool {
    matches!(
        (scalar, value),
        (InputType::String, Value::String(_))
            | (InputType::Number, Value::Number(_))
            | (InputType::Bool, Value::Bool(_))
    )
}

/// The last line of regex's multi-line error text, which holds the actual reason.
fn regex_error_message(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}

/// Reads a bare type expression: `string`, `number`, `bool`, `list(T)`, `set(T)`, `map(T)`.
fn parse_type(expr: &EditExpr) -> Option<InputType> {
    let primitive = |expr: &EditExpr| match expr {
        EditExpr::Variable(ident) => match ident.as_str() {
            "string" => Some(InputType::String),
            "number" => Some(InputType::Number),
            "bool" => Some(InputType::Bool),
            _ => None,
        },
        _ => None,
    };
    match expr {
        EditExpr::FuncCall(call) if !call.name.is_namespaced() && call.args.len() == 1 => {
            let element = Box::new(primitive(call.args.get(0)?)?);
            match call.name.name.as_str() {
                "list" => Some(InputType::List(element)),
                "set" => Some(InputType::Set(element)),
                "map" => Some(InputType::Map(element)),
                _ => None,
            }
        }
        other => primitive(other),
    }
}
