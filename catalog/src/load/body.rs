//! Generic body handling: known attributes and blocks, constants, labels.

use hcl::Value;
use hcl::eval::Context;
use hcl_edit::Span;
use hcl_edit::expr::Expression as EditExpr;
use hcl_edit::structure::{Attribute, Block, Body, Structure};
use hcl_edit::visit::{self, Visit};

use crate::diag::FileDiags;

use super::SpanR;

/// The known attributes and blocks of one body.
pub(super) struct Fields<'b> {
    attrs: Vec<&'b Attribute>,
    blocks: Vec<&'b Block>,
}

/// Splits a body, reporting unknown attributes, unknown block types and duplicate attributes.
pub(super) fn split_body<'b>(
    fd: &mut FileDiags,
    body: &'b Body,
    what: &str,
    attrs: &[&str],
    blocks: &[&str],
) -> Fields<'b> {
    let mut out = Fields {
        attrs: Vec::new(),
        blocks: Vec::new(),
    };
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.as_str();
                if !attrs.contains(&key) {
                    fd.error_detail(
                        &attr.span(),
                        format!("unknown attribute \"{key}\" {what}"),
                        expected(attrs, "attributes"),
                    );
                } else if let Some(first) = out.attr(key) {
                    let first = fd.location(&first.span());
                    fd.error_detail(
                        &attr.span(),
                        format!("duplicate attribute \"{key}\" {what}"),
                        format!("first set at {first}"),
                    );
                } else {
                    out.attrs.push(attr);
                }
            }
            Structure::Block(block) => {
                let ident = block.ident.as_str();
                if blocks.contains(&ident) {
                    out.blocks.push(block);
                } else {
                    fd.error_detail(
                        &block.span(),
                        format!("unknown block type \"{ident}\" {what}"),
                        expected(blocks, "blocks"),
                    );
                }
            }
        }
    }
    out
}

pub(super) fn expected(names: &[&str], kind: &str) -> String {
    if names.is_empty() {
        format!("no {kind} are allowed here")
    } else {
        format!("expected one of: {}", names.join(", "))
    }
}

impl<'b> Fields<'b> {
    pub(super) fn attr(&self, key: &str) -> Option<&'b Attribute> {
        self.attrs
            .iter()
            .copied()
            .find(|attr| attr.key.as_str() == key)
    }

    pub(super) fn blocks(&self, ident: &str) -> Vec<&'b Block> {
        self.blocks
            .iter()
            .copied()
            .filter(|block| block.ident.as_str() == ident)
            .collect()
    }

    /// Evaluates an attribute as a constant (no variables, no functions). A number literal
    /// that a 64-bit float cannot hold exactly is an error, not a silently different value.
    pub(super) fn literal(&self, fd: &mut FileDiags, attr: &Attribute) -> Option<Value> {
        use hcl::eval::Evaluate;
        if !check_number_literals(fd, &attr.value) {
            return None;
        }
        let expr = hcl::Expression::from(attr.value.clone());
        if let Err(why) = crate::eval::check_arithmetic(&expr, &Context::new()) {
            fd.error(
                &attr.value.span(),
                format!(
                    "attribute \"{}\" must be a constant: {why}",
                    attr.key.as_str()
                ),
            );
            return None;
        }
        match expr.evaluate(&Context::new()) {
            Ok(value) => Some(value),
            Err(err) => {
                fd.error(
                    &attr.value.span(),
                    format!(
                        "attribute \"{}\" must be a constant: {}",
                        attr.key.as_str(),
                        err.kind()
                    ),
                );
                None
            }
        }
    }

    fn typed<T>(
        &self,
        fd: &mut FileDiags,
        key: &str,
        type_name: &str,
        convert: impl Fn(&Value) -> Option<T>,
    ) -> Option<(T, SpanR)> {
        let attr = self.attr(key)?;
        let value = self.literal(fd, attr)?;
        match convert(&value) {
            Some(converted) => Some((converted, attr.value.span())),
            None => {
                fd.error(
                    &attr.value.span(),
                    format!(
                        "attribute \"{key}\" must be {type_name}, got {}",
                        crate::guardrail::fmt_value(&value)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn string(&self, fd: &mut FileDiags, key: &str) -> Option<(String, SpanR)> {
        self.typed(fd, key, "a string", |value| {
            value.as_str().map(str::to_string)
        })
    }

    pub(super) fn bool(&self, fd: &mut FileDiags, key: &str) -> Option<bool> {
        self.typed(fd, key, "a bool", Value::as_bool)
            .map(|(b, _)| b)
    }

    pub(super) fn number(&self, fd: &mut FileDiags, key: &str) -> Option<(f64, SpanR)> {
        self.typed(fd, key, "a number", |value| {
            value.as_number().and_then(|n| n.as_f64())
        })
    }

    pub(super) fn length(&self, fd: &mut FileDiags, key: &str) -> Option<(u64, SpanR)> {
        self.typed(fd, key, "a non-negative integer", |value| {
            value.as_number().and_then(|n| n.as_u64())
        })
    }

    pub(super) fn required_string_with_span(
        &self,
        fd: &mut FileDiags,
        block: &Block,
        what: &str,
        key: &str,
    ) -> Option<(String, SpanR)> {
        if self.attr(key).is_none() {
            fd.error(
                &block.span(),
                format!("missing required attribute \"{key}\" {what}"),
            );
            return None;
        }
        self.string(fd, key)
    }

    pub(super) fn required_string(
        &self,
        fd: &mut FileDiags,
        block: &Block,
        what: &str,
        key: &str,
    ) -> Option<String> {
        self.required_string_with_span(fd, block, what, key)
            .map(|(text, _)| text)
    }
}

pub(super) fn one_label(fd: &mut FileDiags, block: &Block) -> Option<(String, SpanR)> {
    match block.labels.as_slice() {
        [label] => Some((label.as_str().to_string(), label.span())),
        _ => {
            let ident = block.ident.as_str();
            fd.error(
                &block.span(),
                format!(
                    "block \"{ident}\" needs exactly one label, e.g. {ident} \"name\" {{ ... }}"
                ),
            );
            None
        }
    }
}

pub(super) fn no_labels(fd: &mut FileDiags, block: &Block) -> bool {
    if block.labels.is_empty() {
        return true;
    }
    fd.error(
        &block.span(),
        format!("block \"{}\" takes no labels", block.ident.as_str()),
    );
    false
}

/// Reports every number literal in `expr` whose value as a 64-bit float differs from what is
/// written (e.g. `123456789012345678901234567890` would become 1.2345678901234568e29, and
/// `1e-400` would become 0). Returns false when there was one.
pub(super) fn check_number_literals(fd: &mut FileDiags, expr: &EditExpr) -> bool {
    struct Numbers {
        floats: Vec<(SpanR, f64)>,
    }
    impl Visit for Numbers {
        fn visit_expr(&mut self, expr: &EditExpr) {
            match expr {
                EditExpr::Number(number) => {
                    if let Some(value) = number.value().as_f64() {
                        self.floats.push((expr.span(), value));
                    }
                }
                other => visit::visit_expr(self, other),
            }
        }
    }
    let mut numbers = Numbers { floats: Vec::new() };
    numbers.visit_expr(expr);
    let mut ok = true;
    for (span, value) in numbers.floats {
        let written = fd.snippet(&span).trim();
        if written.parse::<u64>().is_ok() {
            continue; // Integers that fit in a u64 are held exactly, not as floats.
        }
        let Some(literal) = decimal(written) else {
            continue; // Not plain decimal text (should not happen); nothing to compare.
        };
        if decimal(&format!("{value:e}")) != Some(literal) {
            ok = false;
            fd.error_detail(
                &span,
                format!("number {written} cannot be represented exactly"),
                format!(
                    "numbers are 64-bit floats (about 15 significant digits, magnitudes up to 1.8e308); this one would become {value:e}"
                ),
            );
        }
    }
    ok
}

/// A decimal number's significant digits (no leading or trailing zeros) and the power of ten
/// of the last one, ignoring the sign: "120.50" and "1.205e2" both give ("1205", -1).
pub(super) fn decimal(text: &str) -> Option<(String, i128)> {
    let text = text.trim_start_matches(['-', '+']);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(idx) => (&text[..idx], text[idx + 1..].parse::<i128>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    let mut exponent = exponent - frac.len() as i128;
    let digits = digits.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    exponent += (digits.len() - trimmed.len()) as i128;
    if trimmed.is_empty() {
        return Some((String::new(), 0));
    }
    Some((trimmed.to_string(), exponent))
}
