//! Reference checking for compose inputs, outputs and price quantities.
//!
//! References are found on the hcl-edit tree (which keeps spans) so that a bad reference is
//! reported at its exact position; evaluation itself happens later on the hcl-rs tree.

use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::expr::{Expression, ForExpr, FuncCall, TraversalOperator};
use hcl_edit::visit::{self, Visit};

use crate::diag::FileDiags;
use crate::model::{Input, Tier};

/// A reference as written, before it is checked against the version.
#[derive(Debug)]
enum RefKind {
    Input(String),
    TierValue(String),
    Primitive(String),
    Bad(String),
}

struct Collector {
    /// Variables bound by enclosing `for` expressions.
    locals: Vec<String>,
    refs: Vec<(Option<Range<usize>>, RefKind)>,
}

const EXPECTED_ROOTS: &str =
    "expressions can reference input.<name>, tier.values.<key> and primitive.<name>.outputs.<key>";

impl Collector {
    fn classify(root: &str, operators: &[&TraversalOperator]) -> RefKind {
        let attr = |idx: usize| match operators.get(idx) {
            Some(TraversalOperator::GetAttr(ident)) => Some(ident.as_str().to_string()),
            _ => None,
        };
        match root {
            "input" => match attr(0) {
                Some(name) => RefKind::Input(name),
                None => RefKind::Bad("an input reference must look like input.<name>".into()),
            },
            "tier" => match (attr(0).as_deref(), attr(1)) {
                (Some("values"), Some(key)) => RefKind::TierValue(key),
                _ => RefKind::Bad("a tier reference must look like tier.values.<key>".into()),
            },
            "primitive" => match (attr(0), attr(1).as_deref(), operators.len()) {
                (Some(name), Some("outputs"), 3..) => RefKind::Primitive(name),
                _ => RefKind::Bad(
                    "a primitive reference must look like primitive.<name>.outputs.<key>".into(),
                ),
            },
            other => RefKind::Bad(format!("unknown reference \"{other}\"; {EXPECTED_ROOTS}")),
        }
    }
}

impl Visit for Collector {
    fn visit_expr(&mut self, expr: &Expression) {
        match expr {
            Expression::Variable(ident) => {
                let name = ident.as_str();
                if !self.locals.iter().any(|local| local == name) {
                    self.refs
                        .push((expr.span(), Collector::classify(name, &[])));
                }
            }
            Expression::Traversal(traversal) => {
                let operators: Vec<&TraversalOperator> =
                    traversal.operators.iter().map(|op| op.value()).collect();
                match &traversal.expr {
                    Expression::Variable(root)
                        if !self.locals.iter().any(|local| local == root.as_str()) =>
                    {
                        let kind = Collector::classify(root.as_str(), &operators);
                        self.refs.push((expr.span(), kind));
                    }
                    other => self.visit_expr(other),
                }
                for op in operators {
                    if let TraversalOperator::Index(index) = op {
                        self.visit_expr(index);
                    }
                }
            }
            other => visit::visit_expr(self, other),
        }
    }

    fn visit_for_expr(&mut self, node: &ForExpr) {
        self.visit_expr(&node.intro.collection_expr);
        let n_locals = self.locals.len();
        if let Some(key_var) = &node.intro.key_var {
            self.locals.push(key_var.as_str().to_string());
        }
        self.locals.push(node.intro.value_var.as_str().to_string());
        if let Some(key_expr) = &node.key_expr {
            self.visit_expr(key_expr);
        }
        self.visit_expr(&node.value_expr);
        if let Some(cond) = &node.cond {
            self.visit_expr(&cond.expr);
        }
        self.locals.truncate(n_locals);
    }

    fn visit_func_call(&mut self, node: &FuncCall) {
        // No functions are declared in the evaluation context, so a call could only fail later.
        self.refs.push((
            node.span(),
            RefKind::Bad(format!(
                "unknown function \"{}\"; catalog expressions cannot call functions",
                node.name.name.as_str()
            )),
        ));
        visit::visit_func_args(self, &node.args);
    }
}

/// What a checked expression may see.
pub(crate) struct RefEnv<'v> {
    pub(crate) inputs: &'v [Input],
    pub(crate) tiers: &'v [Tier],
    /// Declared primitive names; `None` where primitives cannot be referenced (price quantity).
    pub(crate) primitives: Option<&'v [String]>,
    /// Whether `tier.values.*` may be referenced.
    pub(crate) tier_values: bool,
}

/// Reports every bad reference in `expr`; returns the primitives it references (first-reference
/// order, without duplicates).
pub(crate) fn check_refs(fd: &mut FileDiags, expr: &Expression, env: &RefEnv) -> Vec<String> {
    let mut collector = Collector {
        locals: Vec::new(),
        refs: Vec::new(),
    };
    collector.visit_expr(expr);
    let mut primitives: Vec<String> = Vec::new();
    for (span, kind) in collector.refs {
        match kind {
            RefKind::Bad(message) => fd.error(&span, message),
            RefKind::Input(name) => {
                if !env.inputs.iter().any(|input| input.name == name) {
                    fd.error(&span, format!("unknown input \"{name}\""));
                }
            }
            RefKind::TierValue(key) if !env.tier_values => fd.error(
                &span,
                format!("tier.values.{key} cannot be referenced here; only input.<name> can"),
            ),
            RefKind::TierValue(key) => {
                let missing: Vec<String> = env
                    .tiers
                    .iter()
                    .filter(|tier| !tier.values.contains_key(&key))
                    .map(|tier| format!("\"{}\"", tier.name))
                    .collect();
                if env.tiers.is_empty() {
                    fd.error(
                        &span,
                        format!("tier value \"{key}\" is referenced but this version has no tiers"),
                    );
                } else if !missing.is_empty() {
                    let noun = if missing.len() == 1 { "tier" } else { "tiers" };
                    fd.error(
                        &span,
                        format!(
                            "tier value \"{key}\" is not defined by {noun} {}",
                            missing.join(", ")
                        ),
                    );
                }
            }
            RefKind::Primitive(name) => match env.primitives {
                None => fd.error(
                    &span,
                    format!("primitive.{name} cannot be referenced here; only input.<name> can"),
                ),
                Some(declared) if !declared.contains(&name) => {
                    fd.error(&span, format!("unknown primitive \"{name}\""));
                }
                Some(_) => {
                    if !primitives.contains(&name) {
                        primitives.push(name);
                    }
                }
            },
        }
    }
    primitives
}
