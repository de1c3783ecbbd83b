//! Which functions a policy may call, checked when a set is loaded.
//!
//! regorus reports a call to a function it does not know in confusing ways:
//! `walk(x, [path, value])` without the builtin is "use of undefined variable
//! `path` is unsafe", other calls fail only when evaluated. Before a set is
//! prepared, every call in its modules is resolved here, and the first one
//! that cannot be is reported at its `file:line:col`, naming the function:
//!
//! * builtins that reach outside the plan (network, randomness, the
//!   process environment) are refused: a policy's verdict must follow from
//!   its input, so that the same plan gets the same verdict when reviewed
//!   and when applied;
//! * OPA builtins the broker does not provide are named as such;
//! * anything else is neither a builtin nor a function of the set.
//!
//! `docs/policy-builtins.md` lists what is available.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use regorus::unstable::{BUILTINS, Expr, Literal, Module, Query, Ref, Rule, RuleHead, Span};
use regorus::{Engine, Value};
use sha2::{Digest, Sha256};

/// Builtins refused at load time, with the reason.
pub const REFUSED: &[(&str, &str)] = &[
    ("http.send", "it reaches the network"),
    ("net.lookup_ip_addr", "it reaches the network (DNS)"),
    ("providers.aws.sign_req", "it signs network requests"),
    ("rand.intn", "its result is random"),
    ("uuid.rfc4122", "its result is random"),
    ("opa.runtime", "it reads the process's environment"),
    ("test.sleep", "it only waits"),
];

/// OPA (1.x) builtins the broker does not provide. Checked against OPA
/// itself: each name is known to OPA's compiler.
pub const NOT_PROVIDED: &[&str] = &[
    "crypto.hmac.equal",
    "crypto.hmac.md5",
    "crypto.hmac.sha1",
    "crypto.hmac.sha256",
    "crypto.hmac.sha512",
    "crypto.md5",
    "crypto.parse_private_keys",
    "crypto.sha1",
    "crypto.x509.parse_and_verify_certificates",
    "crypto.x509.parse_and_verify_certificates_with_options",
    "crypto.x509.parse_certificate_request",
    "crypto.x509.parse_certificates",
    "crypto.x509.parse_keypair",
    "crypto.x509.parse_rsa_private_key",
    "graphql.is_valid",
    "graphql.parse",
    "graphql.parse_and_verify",
    "graphql.parse_query",
    "graphql.parse_schema",
    "graphql.schema_is_valid",
    "io.jwt.decode",
    "io.jwt.decode_verify",
    "io.jwt.encode_sign",
    "io.jwt.encode_sign_raw",
    "io.jwt.verify_eddsa",
    "io.jwt.verify_es256",
    "io.jwt.verify_es384",
    "io.jwt.verify_es512",
    "io.jwt.verify_hs256",
    "io.jwt.verify_hs384",
    "io.jwt.verify_hs512",
    "io.jwt.verify_ps256",
    "io.jwt.verify_ps384",
    "io.jwt.verify_ps512",
    "io.jwt.verify_rs256",
    "io.jwt.verify_rs384",
    "io.jwt.verify_rs512",
    "net.cidr_contains_matches",
    "net.cidr_merge",
    "rego.metadata.chain",
    "rego.metadata.rule",
    "rego.parse_module",
    "strings.render_template",
    "yaml.marshal",
    "yaml.unmarshal",
    "yaml.is_valid",
    "json.match_schema",
    "json.verify_schema",
];

pub type Builtin = fn(Vec<Value>) -> Result<Value>;

/// OPA builtins regorus lacks, added to every engine the broker builds.
const ADDED: &[(&str, u8, Builtin)] = &[
    ("net.cidr_intersects", 2, cidr_intersects),
    ("crypto.sha256", 1, sha256),
];

/// OPA's deprecated builtins: Rego v0 sets may call them (as OPA's v0
/// compatibility does); in v1 OPA refuses them, and so does the broker.
const DEPRECATED: &[(&str, u8, Builtin, &str)] = &[
    ("any", 1, any, "`some x in xs; x == true`"),
    ("all", 1, all, "`every x in xs { x == true }`"),
    ("re_match", 2, re_match, "`regex.match`"),
    ("set_diff", 2, set_diff, "`a - b`"),
    ("net.cidr_overlap", 2, cidr_overlap, "`net.cidr_contains`"),
    ("cast_array", 1, cast_array, "an array comprehension"),
    ("cast_set", 1, cast_set, "a set comprehension"),
    ("cast_string", 1, cast_string, "`is_string`"),
    ("cast_boolean", 1, cast_boolean, "`is_boolean`"),
    ("cast_null", 1, cast_null, "`is_null`"),
    ("cast_object", 1, cast_object, "`is_object`"),
];

/// One of the (non-deprecated) builtins the broker adds, for the compiled
/// evaluator; the deprecated ones are left to regorus.
pub fn added_builtin(name: &str, nargs: usize) -> Option<Builtin> {
    ADDED
        .iter()
        .find(|(n, a, _)| *n == name && usize::from(*a) == nargs)
        .map(|(_, _, f)| *f)
}

/// The builtins the broker adds for a set of this dialect.
fn added(rego_v0: bool) -> impl Iterator<Item = (&'static str, u8, Builtin)> {
    let deprecated = DEPRECATED
        .iter()
        .filter(move |_| rego_v0)
        .map(|(name, nargs, f, _)| (*name, *nargs, *f));
    ADDED.iter().map(|(n, a, f)| (*n, *a, *f)).chain(deprecated)
}

/// Adds the broker's builtins to `engine` (the deprecated ones only for
/// Rego v0).
pub fn register(engine: &mut Engine, rego_v0: bool) -> Result<()> {
    for (name, nargs, f) in added(rego_v0) {
        engine.add_extension(name.to_owned(), nargs, Box::new(f))?;
    }
    Ok(())
}

/// Checks every call in `modules` (of a set in Rego v0 or not). Returns the
/// first problem as `file:line:col: error: ...`.
pub fn check(modules: &[Ref<Module>], rego_v0: bool) -> Result<(), String> {
    let extensions: Vec<&str> = added(rego_v0).map(|(name, ..)| name).collect();
    // Functions the set defines, by their last name segment: a call through
    // an import alias or a full `data.` path resolves to one of these.
    let mut defined = BTreeSet::new();
    for module in modules {
        for rule in &module.policy {
            let refr = match rule.as_ref() {
                Rule::Spec {
                    head: RuleHead::Func { refr, .. },
                    ..
                } => refr,
                Rule::Default { refr, args, .. } if !args.is_empty() => refr,
                _ => continue,
            };
            if let Some(last) = compact(refr.span().text()).rsplit('.').next() {
                defined.insert(last.to_owned());
            }
        }
    }
    let mut calls = Found::default();
    for module in modules {
        for rule in &module.policy {
            visit_rule(rule, &mut calls);
        }
    }
    for (span, name) in calls.calls {
        if let Some(problem) = resolve(&name, &extensions, &defined) {
            return Err(format!(
                "{}:{}:{}: error: {problem}",
                span.source.file(),
                span.line,
                span.col
            ));
        }
    }
    Ok(())
}

/// Everything evaluated in a rule: its head's expressions and its bodies.
fn visit_rule(rule: &Ref<Rule>, found: &mut Found) {
    match rule.as_ref() {
        Rule::Spec { head, bodies, .. } => {
            match head {
                RuleHead::Compr { refr, assign, .. } => {
                    expr(refr, found);
                    if let Some(a) = assign {
                        expr(&a.value, found);
                    }
                }
                RuleHead::Set { refr, key, .. } => {
                    expr(refr, found);
                    if let Some(k) = key {
                        expr(k, found);
                    }
                }
                RuleHead::Func {
                    refr, args, assign, ..
                } => {
                    expr(refr, found);
                    for a in args {
                        expr(a, found);
                    }
                    if let Some(a) = assign {
                        expr(&a.value, found);
                    }
                }
            }
            for body in bodies {
                if let Some(a) = &body.assign {
                    expr(&a.value, found);
                }
                query(&body.query, found);
            }
        }
        Rule::Default { args, value, .. } => {
            for a in args {
                expr(a, found);
            }
            expr(value, found);
        }
    }
}

/// Why `name` cannot be called, or `None` when it can.
fn resolve(name: &str, extensions: &[&str], defined: &BTreeSet<String>) -> Option<String> {
    if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
        return Some(format!(
            "`{name}` is refused in policies: {why}, and a verdict must follow from the plan alone"
        ));
    }
    if name == "print" || extensions.contains(&name) || BUILTINS.contains_key(name) {
        return None;
    }
    if let Some((_, _, _, instead)) = DEPRECATED.iter().find(|(n, ..)| *n == name) {
        return Some(format!(
            "`{name}` is a deprecated builtin, refused in Rego v1 (as OPA does): use {instead}, or mark the set `rego_v0`"
        ));
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if defined.contains(last) {
        return None;
    }
    if NOT_PROVIDED.contains(&name) {
        return Some(format!(
            "`{name}` is an OPA builtin the broker does not provide (see docs/policy-builtins.md)"
        ));
    }
    Some(format!(
        "`{name}` is neither a builtin nor a function defined in this policy set"
    ))
}

/// The text of a reference without whitespace (`lib . f` is `lib.f`).
fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// What a traversal of a set's modules finds.
#[derive(Default)]
struct Found {
    /// Every call: where its name starts, and the name.
    calls: Vec<(Span, String)>,
    /// Statements `[path, value] := walk(x)`, with the relation form that
    /// replaces them.
    walks: Vec<(Span, String)>,
}

/// `[path, value] := walk(x)` (or `=`): in OPA, `walk` called as a function
/// yields one `[path, value]` pair per solution, exactly as the relation
/// `walk(x, [path, value])` does; regorus knows only the relation. Returns
/// the statement's span and the relation's text.
fn walk_function_form(stmt: &Span, e: &Ref<Expr>) -> Option<(Span, String)> {
    let Expr::AssignExpr { lhs, rhs, .. } = e.as_ref() else {
        return None;
    };
    let Expr::Array { items, .. } = lhs.as_ref() else {
        return None;
    };
    let Expr::Call { fcn, params, .. } = rhs.as_ref() else {
        return None;
    };
    if items.len() != 2 || params.len() != 1 || compact(fcn.span().text()) != "walk" {
        return None;
    }
    Some((
        stmt.clone(),
        format!("walk({}, {})", params[0].span().text(), lhs.span().text()),
    ))
}

/// The text of each module whose statements `[path, value] := walk(x)` must
/// become `walk(x, [path, value])` for regorus (see [`walk_function_form`]),
/// keyed by the module's file name. The replacement is padded with spaces to
/// the statement's length when shorter, so that positions after it on the
/// line stay where the author sees them.
pub fn walk_rewrites(modules: &[Ref<Module>]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for module in modules {
        let mut found = Found::default();
        for rule in &module.policy {
            visit_rule(rule, &mut found);
        }
        if found.walks.is_empty() {
            continue;
        }
        let source = &module.package.span.source;
        let mut text = source.contents().clone();
        // From the end, so earlier offsets stay valid.
        found
            .walks
            .sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
        for (span, replacement) in found.walks {
            let (start, end) = (span.start as usize, span.end as usize);
            let Some(original) = text.get(start..end) else {
                continue;
            };
            let padded = format!(
                "{replacement}{}",
                " ".repeat(original.len().saturating_sub(replacement.len()))
            );
            text.replace_range(start..end, &padded);
        }
        out.push((source.file().clone(), text));
    }
    out
}

/// Where a function's name starts (a call's own span starts at `(`, and a
/// dotted name's at its last dot).
fn name_start(fcn: &Ref<Expr>) -> &Span {
    match fcn.as_ref() {
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => name_start(refr),
        other => other.span(),
    }
}

fn query(q: &Ref<Query>, calls: &mut Found) {
    for stmt in &q.stmts {
        match &stmt.literal {
            Literal::SomeVars { .. } => {}
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    expr(k, calls);
                }
                expr(value, calls);
                expr(collection, calls);
            }
            Literal::Expr { expr: e, .. } => {
                if let Some(rewrite) = walk_function_form(&stmt.span, e) {
                    calls.walks.push(rewrite);
                }
                expr(e, calls)
            }
            Literal::NotExpr { expr: e, .. } => expr(e, calls),
            Literal::Every {
                domain, query: q, ..
            } => {
                expr(domain, calls);
                query(q, calls);
            }
        }
        for with in &stmt.with_mods {
            // The target of `with` is a reference, not a call; only the
            // replacement value is evaluated.
            expr(&with.r#as, calls);
        }
    }
}

fn expr(e: &Ref<Expr>, calls: &mut Found) {
    match e.as_ref() {
        Expr::String { .. }
        | Expr::RawString { .. }
        | Expr::Number { .. }
        | Expr::Bool { .. }
        | Expr::Null { .. }
        | Expr::Var { .. } => {}
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            for i in items {
                expr(i, calls);
            }
        }
        Expr::Object { fields, .. } => {
            for (_, k, v) in fields {
                expr(k, calls);
                expr(v, calls);
            }
        }
        Expr::ArrayCompr { term, query: q, .. } | Expr::SetCompr { term, query: q, .. } => {
            expr(term, calls);
            query(q, calls);
        }
        Expr::ObjectCompr {
            key,
            value,
            query: q,
            ..
        } => {
            expr(key, calls);
            expr(value, calls);
            query(q, calls);
        }
        Expr::Call { fcn, params, .. } => {
            calls
                .calls
                .push((name_start(fcn).clone(), compact(fcn.span().text())));
            for p in params {
                expr(p, calls);
            }
        }
        Expr::UnaryExpr { expr: inner, .. } => expr(inner, calls),
        Expr::RefDot { refr, .. } => expr(refr, calls),
        Expr::RefBrack { refr, index, .. } => {
            expr(refr, calls);
            expr(index, calls);
        }
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => {
            expr(lhs, calls);
            expr(rhs, calls);
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                expr(k, calls);
            }
            expr(value, calls);
            expr(collection, calls);
        }
    }
}

// --- the added builtins: OPA's semantics, errors where OPA errors ---------

fn string_arg<'a>(name: &str, v: &'a Value) -> Result<&'a str> {
    match v {
        Value::String(s) => Ok(s),
        other => bail!("{name}: operand must be a string, got {}", kind(other)),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}

/// The elements of an array or a set.
fn elements<'a>(name: &str, v: &'a Value) -> Result<Vec<&'a Value>> {
    match v {
        Value::Array(a) => Ok(a.iter().collect()),
        Value::Set(s) => Ok(s.iter().collect()),
        other => bail!(
            "{name}: operand must be an array or a set, got {}",
            kind(other)
        ),
    }
}

fn net(name: &str, v: &Value) -> Result<ipnet::IpNet> {
    let text = string_arg(name, v)?;
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| anyhow::anyhow!("{name}: {text:?} is not a CIDR or an IP address"))
}

fn cidr(name: &str, v: &Value) -> Result<ipnet::IpNet> {
    let text = string_arg(name, v)?;
    text.parse::<ipnet::IpNet>()
        .map_err(|_| anyhow::anyhow!("{name}: {text:?} is not a CIDR"))
}

fn cidr_intersects(args: Vec<Value>) -> Result<Value> {
    let a = cidr("net.cidr_intersects", &args[0])?;
    let b = cidr("net.cidr_intersects", &args[1])?;
    Ok(Value::Bool(
        a.contains(&b.network()) || b.contains(&a.network()),
    ))
}

fn cidr_overlap(args: Vec<Value>) -> Result<Value> {
    let outer = cidr("net.cidr_overlap", &args[0])?;
    let inner = net("net.cidr_overlap", &args[1])?;
    Ok(Value::Bool(outer.contains(&inner)))
}

fn sha256(args: Vec<Value>) -> Result<Value> {
    let text = string_arg("crypto.sha256", &args[0])?;
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Value::from(hex))
}

fn any(args: Vec<Value>) -> Result<Value> {
    let items = elements("any", &args[0])?;
    Ok(Value::Bool(items.iter().any(|v| **v == Value::Bool(true))))
}

fn all(args: Vec<Value>) -> Result<Value> {
    let items = elements("all", &args[0])?;
    Ok(Value::Bool(items.iter().all(|v| **v == Value::Bool(true))))
}

fn re_match(args: Vec<Value>) -> Result<Value> {
    let pattern = string_arg("re_match", &args[0])?;
    let value = string_arg("re_match", &args[1])?;
    let re = regex::Regex::new(pattern)
        .map_err(|e| anyhow::anyhow!("re_match: invalid pattern {pattern:?}: {e}"))?;
    Ok(Value::Bool(re.is_match(value)))
}

fn set_diff(args: Vec<Value>) -> Result<Value> {
    match (&args[0], &args[1]) {
        (Value::Set(a), Value::Set(b)) => Ok(Value::from(
            a.iter()
                .filter(|v| !b.contains(v))
                .cloned()
                .collect::<BTreeSet<Value>>(),
        )),
        (a, b) => bail!(
            "set_diff: operands must be sets, got {} and {}",
            kind(a),
            kind(b)
        ),
    }
}

fn cast_array(args: Vec<Value>) -> Result<Value> {
    match &args[0] {
        Value::Array(_) => Ok(args[0].clone()),
        Value::Set(s) => Ok(Value::from(s.iter().cloned().collect::<Vec<Value>>())),
        other => bail!(
            "cast_array: operand must be an array or a set, got {}",
            kind(other)
        ),
    }
}

fn cast_set(args: Vec<Value>) -> Result<Value> {
    let items = elements("cast_set", &args[0])?;
    Ok(Value::from(
        items.into_iter().cloned().collect::<BTreeSet<Value>>(),
    ))
}

fn cast_same(name: &str, want: &str, v: &Value) -> Result<Value> {
    if kind(v) == want {
        Ok(v.clone())
    } else {
        bail!("{name}: operand must be a {want}, got {}", kind(v))
    }
}

fn cast_string(args: Vec<Value>) -> Result<Value> {
    cast_same("cast_string", "string", &args[0])
}

fn cast_boolean(args: Vec<Value>) -> Result<Value> {
    cast_same("cast_boolean", "boolean", &args[0])
}

fn cast_null(args: Vec<Value>) -> Result<Value> {
    cast_same("cast_null", "null", &args[0])
}

fn cast_object(args: Vec<Value>) -> Result<Value> {
    cast_same("cast_object", "object", &args[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function a policy can call, as docs/policy-builtins.md lists it.
    fn available() -> Vec<String> {
        let mut names: Vec<String> = BUILTINS
            .keys()
            .filter(|n| !n.starts_with("__builtin") && !n.starts_with("azure."))
            .filter(|n| !REFUSED.iter().any(|(r, _)| r == *n))
            .map(|n| (*n).to_owned())
            .chain(ADDED.iter().map(|(n, ..)| (*n).to_owned()))
            .chain(std::iter::once("print".to_owned()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn docs_list_every_builtin_and_every_refusal() {
        let docs = include_str!("../../../docs/policy-builtins.md");
        let mentioned = |name: &str| docs.contains(&format!("`{name}`"));
        let mut missing: Vec<String> = available()
            .into_iter()
            .chain(REFUSED.iter().map(|(n, _)| (*n).to_owned()))
            .chain(NOT_PROVIDED.iter().map(|n| (*n).to_owned()))
            .chain(DEPRECATED.iter().map(|(n, ..)| (*n).to_owned()))
            .filter(|n| !mentioned(n))
            .collect();
        missing.dedup();
        assert!(
            missing.is_empty(),
            "docs/policy-builtins.md does not mention: {missing:?}"
        );
    }

    #[test]
    fn no_name_is_both_provided_and_refused_or_missing() {
        let provided = available();
        for name in NOT_PROVIDED
            .iter()
            .chain(DEPRECATED.iter().map(|(n, ..)| n))
        {
            assert!(!provided.contains(&(*name).to_owned()), "{name}");
        }
    }
}
