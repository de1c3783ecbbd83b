//! A compiled evaluator for the common subset of Rego, reading the input JSON
//! where it lies.
//!
//! regorus's interpreter spends about a microsecond per expression and first
//! needs the whole input converted into its own values. Policies over large
//! plans mostly walk `input.plan.resource_changes` and test a few fields of
//! each entry; here the rules of a package are compiled once, at load time,
//! into a small expression tree (local variables resolved to slots, rules to
//! indexes) and evaluated against the `serde_json` input directly.
//!
//! It gives the answer regorus gives, or none:
//! * a rule that uses anything outside the subset (imports other than
//!   `rego.v1`/`future.keywords` and `data.` packages, `data.` references
//!   that name no rule, `with`,
//!   unary minus, non-deterministic builtins, a loop inside `not`,
//!   variables bound out of order, ...) is not compiled, and regorus
//!   evaluates it;
//! * at run time, anything regorus would report as an error (a builtin
//!   failing under strict errors, a complete rule or function with two
//!   values, an object comprehension with a conflicting key) stops this
//!   evaluator with [`Stop::Bail`], and the caller evaluates that rule with
//!   regorus, which reports the error. Failing closed stays regorus's job.
//!
//! Operators and builtins take regorus's own code where it is public
//! (comparison is `regorus::Value`'s ordering, arithmetic, set operators and
//! every builtin but a few hot ones call regorus's implementations), so the
//! subset shares its semantics rather than re-deriving them. `sprintf` is the
//! broker's own OPA-conformant one ([`super::sprintf`]), the extension every
//! regorus engine of the broker has too. A differential
//! test evaluates policies both ways and compares.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use regorus::Value as RV;
use regorus::unstable::comparison::compare;
use regorus::unstable::numbers::arithmetic_operation;
use regorus::unstable::sets::{intersection, union};
use regorus::unstable::{
    ArithOp, AssignOp, BUILTINS, BinOp, BoolOp, Expr, Literal, Module, Query, Ref, Rule, RuleBody,
    RuleHead, Span,
};
use serde_json::Value as Json;

use super::input::json_to_rego;

type ExprRef = Ref<Expr>;
type BuiltinFn = fn(&Span, &[ExprRef], &[RV], bool) -> anyhow::Result<RV>;

/// Why an evaluation stopped early.
#[derive(Debug)]
pub enum Stop {
    /// Something regorus would treat as an error (or that this evaluator
    /// does not settle itself): evaluate the rule with regorus instead.
    Bail(String),
    /// The time limit passed.
    Timeout,
    /// Internal: the first witness of a `not` was found.
    Cut,
}

type Flow = Result<(), Stop>;

/// `r`, with a [`Stop::Cut`] (an early stop that found what it looked for)
/// turned back into success.
fn uncut(r: Flow) -> Flow {
    match r {
        Err(Stop::Cut) => Ok(()),
        r => r,
    }
}

fn bail<T>(why: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Bail(why.into()))
}

/// Deepest nesting of function calls evaluated here.
const MAX_CALL_DEPTH: u32 = 64;

/// Deepest expression compiled here (evaluation recurses along it).
const MAX_EXPR_DEPTH: u32 = 128;

/// Longest non-constant array, set or object literal compiled here.
const MAX_LITERAL_LEN: usize = 64;

/// Builtins this evaluator never calls: their result depends on the clock,
/// randomness, the network or the runtime, or they have side effects.
const NOT_COMPILED_BUILTINS: &[&str] = &[
    "time.now_ns",
    "rand.",
    "uuid.",
    "http.",
    "opa.",
    "net.lookup",
    "io.jwt.",
    "crypto.x509.",
    "trace",
    "print",
];

/// A value during evaluation: a part of the input (borrowed), a borrowed
/// object key of the input, or a value built by the policy.
#[derive(Clone, Debug)]
pub enum V<'a> {
    Undef,
    J(&'a Json),
    S(&'a str),
    R(RV),
    /// An array built by an array comprehension, its elements as they were
    /// (parts of the input stay borrowed): collecting resources costs no
    /// conversion until something needs a regorus value.
    L(std::rc::Rc<Vec<V<'a>>>),
}

impl<'a> V<'a> {
    fn from_rv(v: RV) -> V<'a> {
        match v {
            RV::Undefined => V::Undef,
            v => V::R(v),
        }
    }

    fn is_undef(&self) -> bool {
        matches!(self, V::Undef | V::R(RV::Undefined))
    }

    fn str(&self) -> Option<&str> {
        match self {
            V::J(Json::String(s)) => Some(s),
            V::S(s) => Some(s),
            V::R(RV::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Rego truth: anything defined but `false`.
    fn truthy(&self) -> bool {
        !matches!(
            self,
            V::Undef | V::R(RV::Undefined) | V::J(Json::Bool(false)) | V::R(RV::Bool(false))
        )
    }

    pub fn to_rv(&self) -> RV {
        match self {
            V::Undef => RV::Undefined,
            V::J(j) => json_to_rego(j),
            V::S(s) => RV::from(*s),
            V::R(v) => v.clone(),
            V::L(items) => RV::from(items.iter().map(V::to_rv).collect::<Vec<_>>()),
        }
    }
}

/// Equality as regorus sees it (`Undefined` equals only itself).
fn eq(a: &V, b: &V) -> bool {
    match (a.is_undef(), b.is_undef()) {
        (true, true) => return true,
        (true, false) | (false, true) => return false,
        _ => {}
    }
    match (a.str(), b.str()) {
        (Some(x), Some(y)) => x == y,
        (Some(_), None) | (None, Some(_)) => false,
        (None, None) => match (a, b) {
            (V::J(Json::Bool(x)), V::J(Json::Bool(y))) => x == y,
            (V::J(Json::Null), V::J(Json::Null)) => true,
            _ => a.to_rv() == b.to_rv(),
        },
    }
}

/// `base[key]` as regorus indexes (`Undefined` when absent or not a collection).
fn index<'a>(base: &V<'a>, key: &V<'a>) -> V<'a> {
    match base {
        V::J(Json::Object(m)) => match key.str() {
            Some(k) => m.get(k).map_or(V::Undef, V::J),
            None => V::Undef,
        },
        V::J(Json::Array(items)) => match key.to_rv() {
            RV::Number(n) => match n.as_u64() {
                Some(i) => usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .map_or(V::Undef, V::J),
                None => V::Undef,
            },
            _ => V::Undef,
        },
        V::R(v @ (RV::Object(_) | RV::Set(_) | RV::Array(_))) => {
            V::from_rv(v[&key.to_rv()].clone())
        }
        V::L(items) => match key.to_rv() {
            RV::Number(n) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| items.get(i).cloned())
                .unwrap_or(V::Undef),
            _ => V::Undef,
        },
        _ => V::Undef,
    }
}

/// `base.key` for a constant key.
fn field<'a>(base: &V<'a>, key: &str, rkey: &RV) -> V<'a> {
    match base {
        V::J(Json::Object(m)) => m.get(key).map_or(V::Undef, V::J),
        V::R(v @ (RV::Object(_) | RV::Set(_))) => V::from_rv(v[rkey].clone()),
        _ => V::Undef,
    }
}

// ---------------------------------------------------------------------------
// The compiled form.

#[derive(Debug)]
enum E {
    Const(RV),
    Local(usize),
    Input,
    Rule(usize),
    Dot(Box<E>, Box<str>, RV),
    Index(Box<E>, Box<E>),
    /// Every element of a collection, binding its key to the slot if any.
    Iter(Box<E>, Option<usize>),
    Array(Vec<E>),
    Set(Vec<E>),
    Object(Vec<(E, E)>),
    ArrayCompr(Box<E>, Vec<Stmt>),
    SetCompr(Box<E>, Vec<Stmt>),
    ObjectCompr(Box<E>, Box<E>, Vec<Stmt>),
    /// A comprehension whose value depends only on the input, rules and
    /// the outer locals in these slots: computed once per evaluation for
    /// each combination of their values when those are scalars (OPA's
    /// comprehension indexing, in general form: `[x | x := xs[_]; x.type
    /// == t]` inside a loop over `t` costs one pass per distinct `t`).
    Memo(Box<E>, Vec<usize>),
    /// `walk(x, [path, value])`: every node of `x`, the root first, then
    /// children in key order; binds the slots given and yields `true`.
    Walk(Box<E>, Option<usize>, Option<usize>),
    Native(Native, Vec<E>),
    Builtin {
        f: BuiltinFn,
        call: ExprRef,
        params: Vec<ExprRef>,
        args: Vec<E>,
    },
    CallFn(usize, Vec<E>),
    /// A builtin the broker adds to regorus (`super::builtins`).
    Added(super::builtins::Builtin, Vec<E>),
    Cmp(BoolOp, Box<E>, Box<E>),
    /// Arithmetic and set operators, computed by regorus.
    Binary {
        op: Operator,
        call: ExprRef,
        lhs_expr: ExprRef,
        rhs_expr: ExprRef,
        lhs: Box<E>,
        rhs: Box<E>,
    },
    In(Option<Box<E>>, Box<E>, Box<E>),
    /// Binds a fresh local; `true` when the value is defined.
    Assign(usize, Box<E>),
    /// `a = b` with both sides bound: equality.
    Unify(Box<E>, Box<E>),
}

#[derive(Debug)]
enum Operator {
    Arith(ArithOp),
    Set(BinOp),
}

/// Builtins evaluated here without converting their arguments.
#[derive(Debug, Clone, Copy)]
enum Native {
    Count,
    ObjectGet,
    IsObject,
    IsString,
    IsArray,
    IsSet,
    IsNumber,
    IsBoolean,
    IsNull,
    StartsWith,
    EndsWith,
    /// OPA's `sprintf` ([`super::sprintf`]), not regorus's.
    Sprintf,
}

impl Native {
    fn by_name(name: &str, nargs: usize) -> Option<Native> {
        let (n, want) = match name {
            "count" => (Native::Count, 1),
            "object.get" => (Native::ObjectGet, 3),
            "is_object" => (Native::IsObject, 1),
            "is_string" => (Native::IsString, 1),
            "is_array" => (Native::IsArray, 1),
            "is_set" => (Native::IsSet, 1),
            "is_number" => (Native::IsNumber, 1),
            "is_boolean" => (Native::IsBoolean, 1),
            "is_null" => (Native::IsNull, 1),
            "startswith" => (Native::StartsWith, 2),
            "endswith" => (Native::EndsWith, 2),
            "sprintf" => (Native::Sprintf, 2),
            _ => return None,
        };
        (nargs == want).then_some(n)
    }
}

#[derive(Debug)]
enum Stmt {
    Test(E),
    Not(E),
    SomeIn {
        key: Option<Option<usize>>,
        value: Option<usize>,
        collection: E,
    },
    /// `every [key,] value in domain { body }`.
    Every {
        key: Option<usize>,
        value: usize,
        domain: E,
        body: Vec<Stmt>,
    },
}

#[derive(Debug)]
enum Arg {
    Bind(usize),
    Wild,
    Const(RV),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Complete,
    Set,
    Object,
    Func(usize),
}

#[derive(Debug)]
struct Def {
    args: Vec<Arg>,
    body: Vec<Stmt>,
    key: Option<E>,
    value: Option<E>,
    /// The `else` chain of a complete rule or function, in order: each
    /// body with its value (`None`: `true`), tried when everything before
    /// it gave no value.
    elses: Vec<(Vec<Stmt>, Option<E>)>,
    slots: usize,
}

#[derive(Debug)]
struct CRule {
    kind: Kind,
    defs: Vec<Def>,
    default: Option<RV>,
    deps: Vec<usize>,
    /// `Err(reason)` when this rule (or one it uses) is not compiled.
    status: Result<(), String>,
}

/// The compiled rules of one policy set.
#[derive(Debug, Default)]
pub struct Program {
    rules: Vec<CRule>,
    by_path: HashMap<String, usize>,
}

/// A rule head: its name, kind, and parts.
struct Head<'m> {
    name: String,
    kind: Kind,
    args: &'m [ExprRef],
    key: Option<&'m ExprRef>,
    value: Option<&'m ExprRef>,
}

fn var_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Var { value, .. } => value.as_string().ok().map(|s| s.as_ref()),
        _ => None,
    }
}

fn head(h: &RuleHead) -> Result<Head<'_>, String> {
    let plain = |refr: &ExprRef| {
        var_name(refr)
            .map(str::to_string)
            .ok_or_else(|| format!("rule head `{}` is a path", refr.span().text()))
    };
    match h {
        RuleHead::Set {
            refr, key: Some(k), ..
        } => Ok(Head {
            name: plain(refr)?,
            kind: Kind::Set,
            args: &[],
            key: Some(k),
            value: None,
        }),
        RuleHead::Set { refr, .. } => Err(format!("rule head `{}`", refr.span().text())),
        RuleHead::Compr { refr, assign, .. } => match refr.as_ref() {
            Expr::Var { .. } => Ok(Head {
                name: plain(refr)?,
                kind: Kind::Complete,
                args: &[],
                key: None,
                value: assign.as_ref().map(|a| &a.value),
            }),
            Expr::RefBrack {
                refr: inner, index, ..
            } if assign.is_some() => Ok(Head {
                name: plain(inner)?,
                kind: Kind::Object,
                args: &[],
                key: Some(index),
                value: assign.as_ref().map(|a| &a.value),
            }),
            _ => Err(format!("rule head `{}`", refr.span().text())),
        },
        RuleHead::Func {
            refr, args, assign, ..
        } => Ok(Head {
            name: plain(refr)?,
            kind: Kind::Func(args.len()),
            args,
            key: None,
            value: assign.as_ref().map(|a| &a.value),
        }),
    }
}

impl Program {
    /// Compiles every rule of `modules` it can; the others are left to regorus.
    pub fn compile(modules: &[Ref<Module>]) -> Program {
        // Pass 1: name every rule group (package, name) and its kind.
        let mut ids: HashMap<(String, String), usize> = HashMap::new();
        let mut rules: Vec<CRule> = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        let mut bad_packages: BTreeMap<String, String> = BTreeMap::new();
        // (rule id, package, definition) in source order, for pass 2.
        let mut specs: Vec<(usize, String, std::rc::Rc<Imports>, &Ref<Rule>)> = Vec::new();
        let mut kinded: Vec<bool> = Vec::new();
        for module in modules {
            let pkg = module.package.refr.span().text().trim().to_string();
            let mut imports = Imports::new();
            for import in &module.imports {
                let text: String = import
                    .refr
                    .span()
                    .text()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                if text == "rego.v1" || text.starts_with("future.keywords") {
                    continue;
                }
                // `import data.a.b` (as `b`) or `import data.a.b as c`: a
                // package, or a rule, by a short name.
                match text.strip_prefix("data.") {
                    Some(target)
                        if !target.is_empty()
                            && target.split('.').all(|s| {
                                !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                            }) =>
                    {
                        let alias = match &import.r#as {
                            Some(a) => a.text().to_string(),
                            None => target.rsplit('.').next().unwrap_or(target).to_string(),
                        };
                        imports.insert(alias, target.to_string());
                    }
                    _ => {
                        bad_packages.insert(pkg.clone(), format!("import {text}"));
                    }
                }
            }
            let imports = std::rc::Rc::new(imports);
            for rule in &module.policy {
                let (name, kind) = match rule.as_ref() {
                    Rule::Spec { head: h, .. } => match head(h) {
                        Ok(h) => (h.name, Some(h.kind)),
                        Err(why) => {
                            bad_packages.insert(pkg.clone(), why);
                            continue;
                        }
                    },
                    Rule::Default { refr, args, .. } => match var_name(refr) {
                        Some(n) if args.is_empty() => (n.to_string(), None),
                        _ => {
                            bad_packages.insert(pkg.clone(), "default function".into());
                            continue;
                        }
                    },
                };
                let id = *ids.entry((pkg.clone(), name.clone())).or_insert_with(|| {
                    rules.push(CRule {
                        kind: Kind::Complete,
                        defs: Vec::new(),
                        default: None,
                        deps: Vec::new(),
                        status: Ok(()),
                    });
                    paths.push(format!("data.{pkg}.{name}"));
                    kinded.push(false);
                    rules.len() - 1
                });
                if let Some(kind) = kind {
                    let r = &mut rules[id];
                    if !kinded[id] {
                        kinded[id] = true;
                        r.kind = kind;
                    } else if r.kind != kind {
                        r.status = Err(format!("rule {name} is defined with two kinds"));
                    }
                }
                specs.push((id, pkg.clone(), imports.clone(), rule));
            }
        }
        let kinds: Vec<Kind> = rules.iter().map(|r| r.kind).collect();
        // Pass 2: compile every definition.
        for (id, pkg, imports, rule) in specs {
            if rules[id].status.is_err() {
                continue;
            }
            let mut cx = Compiler {
                pkg: &pkg,
                imports: &imports,
                ids: &ids,
                kinds: &kinds,
                vars: Vec::new(),
                slots: 0,
                deps: Vec::new(),
                depth: 0,
                reads: Vec::new(),
                late_binds: Vec::new(),
            };
            let compiled = match rule.as_ref() {
                Rule::Default { value, .. } => match cx.expr(value) {
                    Ok(E::Const(v)) => {
                        rules[id].default = Some(v);
                        Ok(())
                    }
                    Ok(_) => Err("default value is not a literal".to_string()),
                    Err(e) => Err(e),
                },
                Rule::Spec {
                    head: h, bodies, ..
                } => cx.spec(h, bodies).map(|defs| rules[id].defs.extend(defs)),
            };
            let deps = std::mem::take(&mut cx.deps);
            rules[id].deps.extend(deps);
            if let Err(why) = compiled {
                rules[id].status = Err(why);
            }
        }
        for (pkg, why) in &bad_packages {
            for ((p, _), id) in &ids {
                if p == pkg {
                    rules[*id].status = Err(why.clone());
                }
            }
        }
        // A rule is compiled only if everything it uses is.
        loop {
            let mut changed = false;
            for i in 0..rules.len() {
                if rules[i].status.is_ok()
                    && let Some(d) = rules[i].deps.iter().find(|d| rules[**d].status.is_err())
                {
                    rules[i].status = Err(format!("uses {}", paths[*d]));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let by_path = paths.into_iter().enumerate().map(|(i, p)| (p, i)).collect();
        Program { rules, by_path }
    }

    /// The compiled rule at `path` (`data.<package>.<name>`), if it was compiled.
    pub fn rule(&self, path: &str) -> Option<usize> {
        let id = *self.by_path.get(path)?;
        let r = &self.rules[id];
        (r.status.is_ok() && !matches!(r.kind, Kind::Func(_))).then_some(id)
    }

    /// Why the rule at `path` was not compiled (for diagnostics and tests).
    pub fn why_not(&self, path: &str) -> Option<String> {
        match self.by_path.get(path) {
            None => Some("no such rule".into()),
            Some(id) => self.rules[*id].status.clone().err(),
        }
    }
}

/// A module's `import data.…` aliases: short name -> `a.b.c` (no `data.`).
type Imports = HashMap<String, String>;

struct Compiler<'c> {
    pkg: &'c str,
    imports: &'c Imports,
    ids: &'c HashMap<(String, String), usize>,
    kinds: &'c [Kind],
    /// Local variables in scope: name, slot, bound yet.
    vars: Vec<(String, usize, bool)>,
    slots: usize,
    deps: Vec<usize>,
    depth: u32,
    /// Every local slot read, and every earlier-declared slot bound, in
    /// order: what a comprehension uses from outside itself.
    reads: Vec<usize>,
    late_binds: Vec<usize>,
}

impl Compiler<'_> {
    /// Wraps the comprehension compiled from `compile` in [`E::Memo`]
    /// when it binds nothing declared outside it.
    fn comprehension(
        &mut self,
        compile: impl FnOnce(&mut Self) -> Result<E, String>,
    ) -> Result<E, String> {
        let (start, reads, binds) = (self.slots, self.reads.len(), self.late_binds.len());
        let compiled = compile(self)?;
        if self.late_binds[binds..].iter().any(|s| *s < start) {
            return Ok(compiled);
        }
        let mut free: Vec<usize> = self.reads[reads..]
            .iter()
            .copied()
            .filter(|s| *s < start)
            .collect();
        free.sort_unstable();
        free.dedup();
        Ok(E::Memo(Box::new(compiled), free))
    }

    fn rule_id(&self, name: &str) -> Option<usize> {
        self.ids
            .get(&(self.pkg.to_string(), name.to_string()))
            .copied()
    }

    /// A reference that starts with an import alias or `data` (and not a
    /// local of that name), as the rule it names and the fields after it:
    /// `tags.required[0]` with `import data.lib.tags` is rule
    /// `lib.tags.required`, then `[0]`. `segments` are the reference's
    /// dotted names from its root.
    fn external_rule<'s>(&self, segments: &'s [String]) -> Option<(usize, &'s [String])> {
        let (root, rest) = segments.split_first()?;
        if self.lookup(root).is_some() {
            return None;
        }
        let mut full: Vec<&str> = match (root.as_str(), self.imports.get(root)) {
            ("data", _) => Vec::new(),
            (_, Some(target)) => target.split('.').collect(),
            _ => return None,
        };
        let base = full.len();
        full.extend(rest.iter().map(String::as_str));
        // The package is everything before the rule's name; try the
        // shortest package first (a rule path never nests another rule).
        for i in 1..full.len() {
            let key = (full[..i].join("."), full[i].to_string());
            if let Some(id) = self.ids.get(&key) {
                let used = i + 1 - base;
                return Some((*id, &rest[used.min(rest.len())..]));
            }
        }
        None
    }

    fn lookup(&self, name: &str) -> Option<(usize, bool)> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, b)| (*s, *b))
    }

    /// A new local (shadowing any outer one of the same name).
    fn fresh(&mut self, name: &str, bound: bool) -> usize {
        let slot = self.slots;
        self.slots += 1;
        self.vars.push((name.to_string(), slot, bound));
        slot
    }

    /// The slot an assignment to `name` binds: a `some`-declared, unbound
    /// local, or a fresh one.
    fn bind(&mut self, name: &str) -> usize {
        if let Some(entry) = self.vars.iter_mut().rev().find(|(n, _, _)| n == name)
            && !entry.2
        {
            entry.2 = true;
            self.late_binds.push(entry.1);
            return entry.1;
        }
        self.fresh(name, true)
    }

    /// Whether `e` is a variable an assignment or a reference would bind.
    fn unbound_var<'e>(&self, e: &'e Expr) -> Option<&'e str> {
        let name = var_name(e)?;
        if name == "_" || name == "input" || name == "data" {
            return None;
        }
        match self.lookup(name) {
            Some((_, bound)) => (!bound).then_some(name),
            None => self.rule_id(name).is_none().then_some(name),
        }
    }

    fn spec(&mut self, h: &RuleHead, bodies: &[RuleBody]) -> Result<Vec<Def>, String> {
        let hd = head(h)?;
        let mut defs: Vec<Def> = Vec::new();
        // The locals of the current definition's arguments: an `else` body
        // sees them and nothing bound by the bodies before it.
        let mut arg_vars = 0;
        let count = bodies.len().max(1);
        for i in 0..count {
            let b = bodies.get(i);
            if let Some(b) = b.filter(|b| b.is_else) {
                if !matches!(hd.kind, Kind::Complete | Kind::Func(_)) {
                    return Err("else on a set or object rule".into());
                }
                let Some(def) = defs.last_mut() else {
                    return Err("else without a rule body".into());
                };
                self.vars.truncate(arg_vars);
                let body = self.query(&b.query)?;
                let value = b.assign.as_ref().map(|a| self.expr(&a.value)).transpose()?;
                def.elses.push((body, value));
                def.slots = self.slots;
                continue;
            }
            self.vars.clear();
            self.slots = 0;
            let mut args = Vec::new();
            for a in hd.args {
                args.push(match a.as_ref() {
                    Expr::Var { .. } if var_name(a) == Some("_") => Arg::Wild,
                    Expr::Var { .. } => {
                        let name = var_name(a).unwrap_or("");
                        Arg::Bind(self.fresh(name, true))
                    }
                    Expr::String { value, .. }
                    | Expr::RawString { value, .. }
                    | Expr::Number { value, .. }
                    | Expr::Bool { value, .. }
                    | Expr::Null { value, .. } => Arg::Const(value.clone()),
                    _ => return Err(format!("function argument `{}`", a.span().text())),
                });
            }
            arg_vars = self.vars.len();
            let body = match b {
                None => Vec::new(),
                Some(b) if b.assign.is_some() => {
                    return Err("a rule body with its own value".into());
                }
                Some(b) => self.query(&b.query)?,
            };
            let key = hd.key.map(|k| self.expr(k)).transpose()?;
            let value = hd.value.map(|v| self.expr(v)).transpose()?;
            defs.push(Def {
                args,
                body,
                key,
                value,
                elses: Vec::new(),
                slots: self.slots,
            });
        }
        Ok(defs)
    }

    fn query(&mut self, q: &Query) -> Result<Vec<Stmt>, String> {
        let mut out = Vec::with_capacity(q.stmts.len());
        for stmt in &q.stmts {
            if !stmt.with_mods.is_empty() {
                return Err("with".into());
            }
            match &stmt.literal {
                Literal::SomeVars { vars, .. } => {
                    for v in vars {
                        self.fresh(v.text(), false);
                    }
                }
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    let collection = self.expr(collection)?;
                    let key = match key {
                        Some(k) => Some(self.pattern(k)?),
                        None => None,
                    };
                    let value = self.pattern(value)?;
                    out.push(Stmt::SomeIn {
                        key,
                        value,
                        collection,
                    });
                }
                Literal::Expr { expr, .. } => out.push(Stmt::Test(self.expr(expr)?)),
                Literal::NotExpr { expr, .. } => {
                    let mark = self.vars.len();
                    let e = self.expr(expr)?;
                    self.vars.truncate(mark);
                    // regorus hoists such a loop out of the `not`; leave
                    // that reading to regorus itself.
                    if iterates(&e) {
                        return Err("iteration inside `not`".into());
                    }
                    out.push(Stmt::Not(e));
                }
                Literal::Every {
                    key,
                    value,
                    domain,
                    query,
                    ..
                } => {
                    let domain = self.expr(domain)?;
                    if iterates(&domain) {
                        return Err("iteration in an `every` domain".into());
                    }
                    let mark = self.vars.len();
                    let value = self.fresh(value.text(), true);
                    let key = key.as_ref().map(|k| self.fresh(k.text(), true));
                    let body = self.query(query)?;
                    self.vars.truncate(mark);
                    out.push(Stmt::Every {
                        key,
                        value,
                        domain,
                        body,
                    });
                }
            }
        }
        Ok(out)
    }

    /// A `some ... in` pattern: a new local or `_`.
    fn pattern(&mut self, e: &ExprRef) -> Result<Option<usize>, String> {
        match var_name(e) {
            Some("_") => Ok(None),
            Some(name) => Ok(Some(self.fresh(name, true))),
            None => Err(format!("pattern `{}`", e.span().text())),
        }
    }

    fn boxed(&mut self, e: &ExprRef) -> Result<Box<E>, String> {
        self.expr(e).map(Box::new)
    }

    fn expr(&mut self, e: &ExprRef) -> Result<E, String> {
        if self.depth >= MAX_EXPR_DEPTH {
            return Err("expression nested too deeply".into());
        }
        self.depth += 1;
        let compiled = self.expr_inner(e);
        self.depth -= 1;
        let compiled = compiled?;
        let too_long = match &compiled {
            E::Array(items) | E::Set(items) => items.len() > MAX_LITERAL_LEN,
            E::Object(fields) => fields.len() > MAX_LITERAL_LEN,
            _ => false,
        };
        if too_long {
            return Err("long literal".into());
        }
        Ok(compiled)
    }

    fn expr_inner(&mut self, e: &ExprRef) -> Result<E, String> {
        Ok(match e.as_ref() {
            Expr::String { value, .. }
            | Expr::RawString { value, .. }
            | Expr::Number { value, .. }
            | Expr::Bool { value, .. }
            | Expr::Null { value, .. } => E::Const(value.clone()),
            Expr::Var { .. } => {
                let name = var_name(e).unwrap_or("");
                match self.lookup(name) {
                    Some((slot, true)) => {
                        self.reads.push(slot);
                        E::Local(slot)
                    }
                    Some((_, false)) => return Err(format!("{name} used before it is bound")),
                    None if name == "input" => E::Input,
                    None => match self.rule_id(name) {
                        Some(id) if !matches!(self.kinds[id], Kind::Func(_)) => {
                            self.deps.push(id);
                            E::Rule(id)
                        }
                        _ => return Err(format!("variable {name}")),
                    },
                }
            }
            Expr::RefDot { refr, field, .. } => {
                if let Some(segments) = dotted(e)
                    && let Some((id, rest)) = self.external_rule(&segments)
                {
                    if matches!(self.kinds[id], Kind::Func(_)) {
                        return Err(format!("function {} used as a value", segments.join(".")));
                    }
                    self.deps.push(id);
                    let mut out = E::Rule(id);
                    for field in rest {
                        out = E::Dot(
                            Box::new(out),
                            field.as_str().into(),
                            RV::from(field.as_str()),
                        );
                    }
                    return Ok(out);
                }
                let base = self.boxed(refr)?;
                let key = field
                    .1
                    .as_string()
                    .map_err(|_| "non-string field".to_string())?;
                E::Dot(base, key.as_ref().into(), field.1.clone())
            }
            Expr::RefBrack { refr, index, .. } => {
                let base = self.boxed(refr)?;
                if var_name(index) == Some("_") {
                    E::Iter(base, None)
                } else if let Some(name) = self.unbound_var(index) {
                    let slot = self.bind(name);
                    E::Iter(base, Some(slot))
                } else {
                    E::Index(base, self.boxed(index)?)
                }
            }
            Expr::Array { items, .. } => {
                let items: Vec<E> = items
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<_, _>>()?;
                match constants(&items) {
                    Some(vals) => E::Const(RV::from(vals)),
                    None => E::Array(items),
                }
            }
            Expr::Set { items, .. } => {
                let items: Vec<E> = items
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<_, _>>()?;
                match constants(&items) {
                    Some(vals) => E::Const(RV::from(vals.into_iter().collect::<BTreeSet<_>>())),
                    None => E::Set(items),
                }
            }
            Expr::Object { fields, .. } => {
                let mut out = Vec::with_capacity(fields.len());
                for (_, k, v) in fields {
                    let k = self.expr(k)?;
                    out.push((k, self.expr(v)?));
                }
                E::Object(out)
            }
            Expr::ArrayCompr { term, query, .. } => self.comprehension(|cx| {
                let mark = cx.vars.len();
                let q = cx.query(query)?;
                let t = cx.boxed(term)?;
                cx.vars.truncate(mark);
                Ok(E::ArrayCompr(t, q))
            })?,
            Expr::SetCompr { term, query, .. } => self.comprehension(|cx| {
                let mark = cx.vars.len();
                let q = cx.query(query)?;
                let t = cx.boxed(term)?;
                cx.vars.truncate(mark);
                Ok(E::SetCompr(t, q))
            })?,
            Expr::ObjectCompr {
                key, value, query, ..
            } => self.comprehension(|cx| {
                let mark = cx.vars.len();
                let q = cx.query(query)?;
                let k = cx.boxed(key)?;
                let v = cx.boxed(value)?;
                cx.vars.truncate(mark);
                Ok(E::ObjectCompr(k, v, q))
            })?,
            Expr::Call { fcn, params, .. } => self.call(e, fcn, params)?,
            Expr::BoolExpr { op, lhs, rhs, .. } => {
                let l = self.boxed(lhs)?;
                E::Cmp(op.clone(), l, self.boxed(rhs)?)
            }
            Expr::ArithExpr { op, lhs, rhs, .. } => {
                self.binary(e, Operator::Arith(op.clone()), lhs, rhs)?
            }
            Expr::BinExpr { op, lhs, rhs, .. } => {
                self.binary(e, Operator::Set(op.clone()), lhs, rhs)?
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                let k = key.as_ref().map(|k| self.boxed(k)).transpose()?;
                let v = self.boxed(value)?;
                E::In(k, v, self.boxed(collection)?)
            }
            Expr::AssignExpr { op, lhs, rhs, .. } => match op {
                AssignOp::ColEq => {
                    let name = match var_name(lhs) {
                        Some(n) if n != "_" => n.to_string(),
                        _ => return Err(format!("assignment to `{}`", lhs.span().text())),
                    };
                    let r = self.boxed(rhs)?;
                    let slot = match self.lookup(&name) {
                        Some((slot, false)) => {
                            self.bind(&name);
                            slot
                        }
                        _ => self.fresh(&name, true),
                    };
                    E::Assign(slot, r)
                }
                AssignOp::Eq => {
                    if let Some(name) = self.unbound_var(lhs) {
                        let name = name.to_string();
                        let r = self.boxed(rhs)?;
                        E::Assign(self.bind(&name), r)
                    } else if let Some(name) = self.unbound_var(rhs) {
                        let name = name.to_string();
                        let l = self.boxed(lhs)?;
                        E::Assign(self.bind(&name), l)
                    } else {
                        let l = self.boxed(lhs)?;
                        E::Unify(l, self.boxed(rhs)?)
                    }
                }
            },
            _ => return Err(format!("expression `{}`", e.span().text())),
        })
    }

    fn binary(
        &mut self,
        whole: &ExprRef,
        op: Operator,
        lhs: &ExprRef,
        rhs: &ExprRef,
    ) -> Result<E, String> {
        let l = self.boxed(lhs)?;
        Ok(E::Binary {
            op,
            call: whole.clone(),
            lhs_expr: lhs.clone(),
            rhs_expr: rhs.clone(),
            lhs: l,
            rhs: self.boxed(rhs)?,
        })
    }

    fn call(&mut self, whole: &ExprRef, fcn: &ExprRef, params: &[ExprRef]) -> Result<E, String> {
        let path = call_path(fcn).ok_or_else(|| format!("call of `{}`", fcn.span().text()))?;
        // A function of another package, through an import or `data.`.
        if let Some(segments) = dotted(fcn)
            && let Some((id, rest)) = self.external_rule(&segments)
        {
            if !rest.is_empty() || self.kinds[id] != Kind::Func(params.len()) {
                return Err(format!("call of {path}"));
            }
            self.deps.push(id);
            let args = params
                .iter()
                .map(|p| self.expr(p))
                .collect::<Result<_, _>>()?;
            return Ok(E::CallFn(id, args));
        }
        if !path.contains('.') {
            if self.lookup(&path).is_some() {
                return Err(format!("call of local {path}"));
            }
            if let Some(id) = self.rule_id(&path) {
                if self.kinds[id] != Kind::Func(params.len()) {
                    return Err(format!("call of {path}"));
                }
                self.deps.push(id);
                let args = params
                    .iter()
                    .map(|p| self.expr(p))
                    .collect::<Result<_, _>>()?;
                return Ok(E::CallFn(id, args));
            }
        }
        if path == "walk" && params.len() == 2 {
            return self.walk(&params[0], &params[1]);
        }
        if NOT_COMPILED_BUILTINS
            .iter()
            .any(|p| path == *p || (p.ends_with('.') && path.starts_with(p)))
        {
            return Err(format!("builtin {path}"));
        }
        if let Some(native) = Native::by_name(&path, params.len()) {
            let args = params
                .iter()
                .map(|p| self.expr(p))
                .collect::<Result<_, _>>()?;
            return Ok(E::Native(native, args));
        }
        if let Some(f) = super::builtins::added_builtin(&path, params.len()) {
            let args = params
                .iter()
                .map(|p| self.expr(p))
                .collect::<Result<_, _>>()?;
            return Ok(E::Added(f, args));
        }
        match BUILTINS.get(path.as_str()) {
            Some((f, n)) if usize::from(*n) == params.len() => {
                let args = params
                    .iter()
                    .map(|p| self.expr(p))
                    .collect::<Result<_, _>>()?;
                Ok(E::Builtin {
                    f: *f,
                    call: whole.clone(),
                    params: params.to_vec(),
                    args,
                })
            }
            _ => Err(format!("function {path}/{}", params.len())),
        }
    }
}

impl Compiler<'_> {
    /// `walk(subject, [path, value])` with each of `path` and `value` a new
    /// variable or `_` (anything else is left to regorus).
    fn walk(&mut self, subject: &ExprRef, pattern: &ExprRef) -> Result<E, String> {
        let subject = self.boxed(subject)?;
        let Expr::Array { items, .. } = pattern.as_ref() else {
            return Err("walk without a [path, value] pattern".into());
        };
        let [p, v] = items.as_slice() else {
            return Err("walk without a [path, value] pattern".into());
        };
        let mut slot = |e: &ExprRef| -> Result<Option<usize>, String> {
            match var_name(e) {
                Some("_") => Ok(None),
                Some(_) => match self.unbound_var(e) {
                    Some(name) => Ok(Some(self.bind(name))),
                    None => Err("walk with a bound variable in its pattern".into()),
                },
                None => Err("walk with a non-variable in its pattern".into()),
            }
        };
        let (path, value) = (slot(p)?, slot(v)?);
        Ok(E::Walk(subject, path, value))
    }
}

/// Whether evaluating `e` iterates (outside comprehensions, whose loops are
/// their own).
fn iterates(e: &E) -> bool {
    match e {
        E::Iter(..) => true,
        E::Const(_) | E::Local(_) | E::Input | E::Rule(_) => false,
        E::ArrayCompr(..) | E::SetCompr(..) | E::ObjectCompr(..) | E::Memo(..) => false,
        E::Walk(..) => true,
        E::Dot(b, _, _) => iterates(b),
        E::Index(a, b) | E::Cmp(_, a, b) | E::Unify(a, b) => iterates(a) || iterates(b),
        E::Binary { lhs, rhs, .. } => iterates(lhs) || iterates(rhs),
        E::Array(items) | E::Set(items) | E::Native(_, items) | E::CallFn(_, items) => {
            items.iter().any(iterates)
        }
        E::Builtin { args, .. } | E::Added(_, args) => args.iter().any(iterates),
        E::Object(fields) => fields.iter().any(|(k, v)| iterates(k) || iterates(v)),
        E::In(k, v, c) => k.as_ref().is_some_and(|k| iterates(k)) || iterates(v) || iterates(c),
        E::Assign(_, r) => iterates(r),
    }
}

/// The values of `items` when every one is a literal (folded at load time).
fn constants(items: &[E]) -> Option<Vec<RV>> {
    items
        .iter()
        .map(|i| match i {
            E::Const(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// The names of a reference made only of names (`a.b.c`), from its root.
fn dotted(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Var { .. } => var_name(e).map(|n| vec![n.to_string()]),
        Expr::RefDot { refr, field, .. } => {
            let mut p = dotted(refr)?;
            p.push(field.1.as_string().ok()?.to_string());
            Some(p)
        }
        _ => None,
    }
}

/// `a.b.c` for a call's function expression made of plain names.
fn call_path(e: &Expr) -> Option<String> {
    match e {
        Expr::Var { .. } => var_name(e).map(str::to_string),
        Expr::RefDot { refr, field, .. } => {
            let mut p = call_path(refr)?;
            p.push('.');
            p.push_str(field.1.as_string().ok()?);
            Some(p)
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Evaluation.

enum Cached<'a> {
    No,
    Busy,
    Done(V<'a>),
}

type Env<'a> = Vec<V<'a>>;

/// Evaluates rules of one [`Program`] against one input; rule values are
/// computed once and kept for the evaluator's lifetime.
pub struct Evaluator<'p, 'a> {
    prog: &'p Program,
    input: &'a Json,
    cache: Vec<Cached<'a>>,
    deadline: Instant,
    ticks: u32,
    /// Nested function calls (a recursive function is left to regorus).
    depth: u32,
    /// [`E::Memo`] results: (the comprehension's address, its free locals'
    /// values) -> value.
    memo: BTreeMap<(usize, Vec<RV>), V<'a>>,
}

macro_rules! k {
    ($k:expr) => {
        &mut $k as &mut dyn FnMut(&mut Evaluator<'p, 'a>, &mut Env<'a>, V<'a>) -> Flow
    };
}

impl<'p, 'a> Evaluator<'p, 'a> {
    pub fn new(prog: &'p Program, input: &'a Json, deadline: Instant) -> Self {
        Evaluator {
            prog,
            input,
            cache: prog.rules.iter().map(|_| Cached::No).collect(),
            deadline,
            ticks: 0,
            depth: 0,
            memo: BTreeMap::new(),
        }
    }

    /// The value of the (compiled) rule `id`, as a regorus value.
    pub fn eval(&mut self, id: usize) -> Result<RV, Stop> {
        self.rule_value(id).map(|v| v.to_rv())
    }

    fn tick(&mut self) -> Flow {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(1024) && Instant::now() > self.deadline {
            return Err(Stop::Timeout);
        }
        Ok(())
    }

    fn rule_value(&mut self, id: usize) -> Result<V<'a>, Stop> {
        match &self.cache[id] {
            Cached::Done(v) => return Ok(v.clone()),
            Cached::Busy => return bail("recursive rule"),
            Cached::No => {}
        }
        self.cache[id] = Cached::Busy;
        let result = self.compute(id);
        self.cache[id] = match &result {
            Ok(v) => Cached::Done(v.clone()),
            Err(_) => Cached::No,
        };
        result
    }

    fn compute(&mut self, id: usize) -> Result<V<'a>, Stop> {
        let prog = self.prog;
        let rule = &prog.rules[id];
        match rule.kind {
            Kind::Complete => {
                let mut found: Option<V<'a>> = None;
                for def in &rule.defs {
                    self.solutions(def, &mut Vec::new(), &mut found)?;
                }
                Ok(match found {
                    Some(v) => v,
                    None => rule.default.clone().map_or(V::Undef, V::R),
                })
            }
            Kind::Set => {
                let mut set: BTreeSet<RV> = BTreeSet::new();
                for def in &rule.defs {
                    let mut env: Env<'a> = vec![V::Undef; def.slots];
                    let Some(key) = &def.key else {
                        return bail("set rule without key");
                    };
                    self.query(&mut env, &def.body, &mut |ev, env| {
                        ev.expr(
                            env,
                            key,
                            k!(|_: &mut Evaluator<'p, 'a>, _: &mut Env<'a>, v: V<'a>| {
                                if !v.is_undef() {
                                    set.insert(v.to_rv());
                                }
                                Ok(())
                            }),
                        )
                    })?;
                }
                Ok(V::R(RV::from(set)))
            }
            Kind::Object => {
                let mut map: BTreeMap<RV, RV> = BTreeMap::new();
                for def in &rule.defs {
                    let mut env: Env<'a> = vec![V::Undef; def.slots];
                    let (Some(key), Some(value)) = (&def.key, &def.value) else {
                        return bail("object rule without key or value");
                    };
                    self.query(&mut env, &def.body, &mut |ev, env| {
                        ev.insert_pair(env, key, value, &mut map)
                    })?;
                }
                Ok(V::R(RV::from(map)))
            }
            Kind::Func(_) => bail("function used as a value"),
        }
    }

    /// Runs `def` (arguments already in `args`), recording its value in
    /// `found`; a second, different value is a conflict. An `else` body is
    /// tried only when everything before it gave no value.
    fn solutions(
        &mut self,
        def: &'p Def,
        args: &mut Vec<V<'a>>,
        found: &mut Option<V<'a>>,
    ) -> Flow {
        let alternatives = std::iter::once((&def.body, def.value.as_ref()))
            .chain(def.elses.iter().map(|(body, value)| (body, value.as_ref())));
        for (body, value) in alternatives {
            let mut env: Env<'a> = vec![V::Undef; def.slots];
            let mut matched = true;
            for (pat, arg) in def.args.iter().zip(args.iter()) {
                match pat {
                    Arg::Bind(s) => env[*s] = arg.clone(),
                    Arg::Wild => {}
                    Arg::Const(c) => matched &= eq(arg, &V::R(c.clone())),
                }
            }
            if !matched {
                return Ok(());
            }
            let mut hit = false;
            self.query(&mut env, body, &mut |ev, env| {
                let mut record = |v: V<'a>| -> Flow {
                    if v.is_undef() {
                        return Ok(());
                    }
                    hit = true;
                    match found {
                        Some(old) if !eq(old, &v) => {
                            bail("complete rule or function with two values")
                        }
                        Some(_) => Ok(()),
                        None => {
                            *found = Some(v);
                            Ok(())
                        }
                    }
                };
                match value {
                    None => record(V::R(RV::Bool(true))),
                    Some(e) => ev.expr(
                        env,
                        e,
                        k!(|_: &mut Evaluator<'p, 'a>, _: &mut Env<'a>, v: V<'a>| record(v)),
                    ),
                }
            })?;
            if hit {
                return Ok(());
            }
        }
        Ok(())
    }

    fn query(
        &mut self,
        env: &mut Env<'a>,
        stmts: &'p [Stmt],
        k: &mut dyn FnMut(&mut Evaluator<'p, 'a>, &mut Env<'a>) -> Flow,
    ) -> Flow {
        let Some((first, rest)) = stmts.split_first() else {
            return k(self, env);
        };
        self.tick()?;
        match first {
            Stmt::Test(e) => self.expr(
                env,
                e,
                k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, v: V<'a>| {
                    if v.truthy() {
                        ev.query(env, rest, k)
                    } else {
                        Ok(())
                    }
                }),
            ),
            Stmt::Not(e) => {
                let mut found = false;
                let r = self.expr(
                    env,
                    e,
                    k!(|_: &mut Evaluator<'p, 'a>, _: &mut Env<'a>, v: V<'a>| {
                        if v.truthy() {
                            found = true;
                            Err(Stop::Cut)
                        } else {
                            Ok(())
                        }
                    }),
                );
                uncut(r)?;
                if found {
                    Ok(())
                } else {
                    self.query(env, rest, k)
                }
            }
            Stmt::SomeIn {
                key,
                value,
                collection,
            } => self.expr(
                env,
                collection,
                k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, c: V<'a>| {
                    // regorus: iterating a defined non-collection is an error.
                    if !c.is_undef() && !is_collection(&c) {
                        return bail("some .. in a non-collection");
                    }
                    ev.each(&c, &mut |ev, kk, vv| {
                        if let Some(Some(s)) = key {
                            env[*s] = kk;
                        }
                        if let Some(s) = value {
                            env[*s] = vv;
                        }
                        let r = ev.query(env, rest, k);
                        if let Some(Some(s)) = key {
                            env[*s] = V::Undef;
                        }
                        if let Some(s) = value {
                            env[*s] = V::Undef;
                        }
                        r
                    })
                }),
            ),
            Stmt::Every {
                key,
                value,
                domain,
                body,
            } => self.expr(
                env,
                domain,
                k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, d: V<'a>| {
                    // regorus: a domain that is not a collection (or is
                    // undefined) makes `every` false.
                    if !is_collection(&d) {
                        return Ok(());
                    }
                    let mut all = true;
                    let r = ev.each(&d, &mut |ev, kk, vv| {
                        env[*value] = vv;
                        if let Some(s) = key {
                            env[*s] = kk;
                        }
                        let mut found = false;
                        let r = ev.query(env, body, &mut |_, _| {
                            found = true;
                            Err(Stop::Cut)
                        });
                        env[*value] = V::Undef;
                        if let Some(s) = key {
                            env[*s] = V::Undef;
                        }
                        uncut(r)?;
                        if found {
                            Ok(())
                        } else {
                            all = false;
                            Err(Stop::Cut)
                        }
                    });
                    uncut(r)?;
                    if all { ev.query(env, rest, k) } else { Ok(()) }
                }),
            ),
        }
    }

    /// Every (key, value) of a collection, in regorus's order.
    /// `x` and every node under it, in regorus's order (pre-order; object
    /// keys and set elements sorted, array elements by index), with the
    /// path of keys from `x`.
    fn walk_node(
        &mut self,
        x: &V<'a>,
        path: &mut Vec<RV>,
        f: &mut dyn FnMut(&mut Evaluator<'p, 'a>, &[RV], V<'a>) -> Flow,
    ) -> Flow {
        self.tick()?;
        f(self, path, x.clone())?;
        self.each(x, &mut |ev, key, child| {
            path.push(key.to_rv());
            let r = ev.walk_node(&child, path, f);
            path.pop();
            r
        })
    }

    fn each(
        &mut self,
        c: &V<'a>,
        f: &mut dyn FnMut(&mut Evaluator<'p, 'a>, V<'a>, V<'a>) -> Flow,
    ) -> Flow {
        match c {
            V::J(Json::Array(items)) => {
                for (i, x) in items.iter().enumerate() {
                    self.tick()?;
                    f(self, V::R(RV::from(i)), V::J(x))?;
                }
            }
            V::J(Json::Object(m)) => {
                for (k, x) in m {
                    self.tick()?;
                    f(self, V::S(k), V::J(x))?;
                }
            }
            V::R(RV::Array(a)) => {
                let a = a.clone();
                for (i, x) in a.iter().enumerate() {
                    self.tick()?;
                    f(self, V::R(RV::from(i)), V::R(x.clone()))?;
                }
            }
            V::L(items) => {
                let items = items.clone();
                for (i, x) in items.iter().enumerate() {
                    self.tick()?;
                    f(self, V::R(RV::from(i)), x.clone())?;
                }
            }
            V::R(RV::Set(s)) => {
                let s = s.clone();
                for x in s.iter() {
                    self.tick()?;
                    f(self, V::R(x.clone()), V::R(x.clone()))?;
                }
            }
            V::R(RV::Object(o)) => {
                let o = o.clone();
                for (k, x) in o.iter() {
                    self.tick()?;
                    f(self, V::R(k.clone()), V::R(x.clone()))?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Evaluates a list of expressions, calling `k` once per combination of
    /// their values.
    fn seq(
        &mut self,
        env: &mut Env<'a>,
        items: &'p [E],
        acc: &mut Vec<V<'a>>,
        k: &mut dyn FnMut(&mut Evaluator<'p, 'a>, &mut Env<'a>, &[V<'a>]) -> Flow,
    ) -> Flow {
        let Some((first, rest)) = items.split_first() else {
            return k(self, env, acc);
        };
        self.expr(
            env,
            first,
            k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, v: V<'a>| {
                acc.push(v);
                let r = ev.seq(env, rest, acc, k);
                acc.pop();
                r
            }),
        )
    }

    fn expr(
        &mut self,
        env: &mut Env<'a>,
        e: &'p E,
        k: &mut dyn FnMut(&mut Evaluator<'p, 'a>, &mut Env<'a>, V<'a>) -> Flow,
    ) -> Flow {
        match e {
            E::Const(v) => k(self, env, V::R(v.clone())),
            E::Local(s) => {
                let v = env[*s].clone();
                k(self, env, v)
            }
            E::Input => k(self, env, V::J(self.input)),
            E::Rule(id) => {
                let v = self.rule_value(*id)?;
                k(self, env, v)
            }
            E::Dot(base, key, rkey) => self.expr(
                env,
                base,
                k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, b: V<'a>| {
                    k(ev, env, field(&b, key, rkey))
                }),
            ),
            E::Index(base, i) => self.expr(
                env,
                base,
                k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, b: V<'a>| {
                    ev.expr(
                        env,
                        i,
                        k!(
                            |ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, key: V<'a>| {
                                k(ev, env, index(&b, &key))
                            }
                        ),
                    )
                }),
            ),
            E::Iter(base, slot) => self.expr(
                env,
                base,
                k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, b: V<'a>| {
                    let r = ev.each(&b, &mut |ev, kk, vv| {
                        if let Some(s) = slot {
                            env[*s] = kk;
                        }
                        k(ev, env, vv)
                    });
                    if let Some(s) = slot {
                        env[*s] = V::Undef;
                    }
                    r
                }),
            ),
            E::Array(items) | E::Set(items) => {
                let is_set = matches!(e, E::Set(_));
                self.seq(env, items, &mut Vec::new(), &mut |ev, env, vals| {
                    if vals.iter().any(V::is_undef) {
                        return k(ev, env, V::Undef);
                    }
                    let v = if is_set {
                        RV::from(vals.iter().map(V::to_rv).collect::<BTreeSet<_>>())
                    } else {
                        RV::from(vals.iter().map(V::to_rv).collect::<Vec<_>>())
                    };
                    k(ev, env, V::R(v))
                })
            }
            E::Object(fields) => self.object_fields(env, fields, &mut Vec::new(), k),
            E::ArrayCompr(term, q) => {
                let mut out = Vec::new();
                self.query(env, q, &mut |ev, env| {
                    ev.expr(
                        env,
                        term,
                        k!(|_: &mut Evaluator<'p, 'a>, _: &mut Env<'a>, v: V<'a>| {
                            if !v.is_undef() {
                                out.push(v);
                            }
                            Ok(())
                        }),
                    )
                })?;
                k(self, env, V::L(std::rc::Rc::new(out)))
            }
            E::SetCompr(term, q) => {
                let mut out = Vec::new();
                self.collect(env, q, term, &mut |v| {
                    out.push(v);
                    Ok(())
                })?;
                let v = if matches!(e, E::SetCompr(..)) {
                    RV::from(out.into_iter().collect::<BTreeSet<_>>())
                } else {
                    RV::from(out)
                };
                k(self, env, V::R(v))
            }
            E::Walk(subject, path_slot, value_slot) => self.expr(
                env,
                subject,
                k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, x: V<'a>| {
                    if x.is_undef() {
                        return Ok(());
                    }
                    let mut path = Vec::new();
                    let r = ev.walk_node(&x, &mut path, &mut |ev, path, node| {
                        if let Some(s) = path_slot {
                            env[*s] = V::R(RV::from(path.to_vec()));
                        }
                        if let Some(s) = value_slot {
                            env[*s] = node;
                        }
                        k(ev, env, V::R(RV::Bool(true)))
                    });
                    for s in [path_slot, value_slot].into_iter().flatten() {
                        env[*s] = V::Undef;
                    }
                    r
                }),
            ),
            E::Memo(inner, free) => {
                let mut key = Vec::with_capacity(free.len());
                for slot in free {
                    let v = &env[*slot];
                    let scalar = match v {
                        V::J(j) => !(j.is_object() || j.is_array()),
                        V::S(_) => true,
                        V::R(r) => {
                            matches!(r, RV::String(_) | RV::Number(_) | RV::Bool(_) | RV::Null)
                        }
                        V::Undef | V::L(_) => false,
                    };
                    if !scalar {
                        return self.expr(env, inner, k);
                    }
                    key.push(v.to_rv());
                }
                let key = (&**inner as *const E as usize, key);
                if let Some(v) = self.memo.get(&key) {
                    let v = v.clone();
                    return k(self, env, v);
                }
                let mut value = None;
                self.expr(
                    env,
                    inner,
                    k!(|_: &mut Evaluator<'p, 'a>, _: &mut Env<'a>, v: V<'a>| {
                        value = Some(v);
                        Ok(())
                    }),
                )?;
                match value {
                    Some(v) => {
                        self.memo.insert(key, v.clone());
                        k(self, env, v)
                    }
                    None => Ok(()),
                }
            }
            E::ObjectCompr(key, value, q) => {
                let mut map: BTreeMap<RV, RV> = BTreeMap::new();
                self.query(env, q, &mut |ev, env| {
                    ev.insert_pair(env, key, value, &mut map)
                })?;
                k(self, env, V::R(RV::from(map)))
            }
            E::Native(n, args) => self.seq(env, args, &mut Vec::new(), &mut |ev, env, vals| {
                if vals.iter().any(V::is_undef) {
                    return k(ev, env, V::Undef);
                }
                let v = native(*n, vals)?;
                k(ev, env, v)
            }),
            E::Builtin {
                f,
                call,
                params,
                args,
            } => self.seq(env, args, &mut Vec::new(), &mut |ev, env, vals| {
                if vals.iter().any(V::is_undef) {
                    return k(ev, env, V::Undef);
                }
                let rargs: Vec<RV> = vals.iter().map(V::to_rv).collect();
                match f(call.span(), params, &rargs, true) {
                    Ok(v) => k(ev, env, V::from_rv(v)),
                    Err(_) => bail("builtin failed"),
                }
            }),
            E::Added(f, args) => self.seq(env, args, &mut Vec::new(), &mut |ev, env, vals| {
                if vals.iter().any(V::is_undef) {
                    return k(ev, env, V::Undef);
                }
                match f(vals.iter().map(V::to_rv).collect()) {
                    Ok(v) => k(ev, env, V::from_rv(v)),
                    Err(_) => bail("builtin failed"),
                }
            }),
            E::CallFn(id, args) => self.seq(env, args, &mut Vec::new(), &mut |ev, env, vals| {
                if vals.iter().any(V::is_undef) {
                    return k(ev, env, V::Undef);
                }
                let v = ev.call_fn(*id, vals)?;
                k(ev, env, v)
            }),
            E::Cmp(op, l, r) => self.pair(env, l, r, &mut |ev, env, a, b| {
                if a.is_undef() || b.is_undef() {
                    return k(ev, env, V::Undef);
                }
                let result = match op {
                    BoolOp::Eq => eq(&a, &b),
                    BoolOp::Ne => !eq(&a, &b),
                    _ => match (a.str(), b.str()) {
                        (Some(x), Some(y)) => match op {
                            BoolOp::Lt => x < y,
                            BoolOp::Le => x <= y,
                            BoolOp::Gt => x > y,
                            _ => x >= y,
                        },
                        _ => match compare(op, &a.to_rv(), &b.to_rv()) {
                            Ok(v) => return k(ev, env, V::from_rv(v)),
                            Err(_) => return bail("comparison failed"),
                        },
                    },
                };
                k(ev, env, V::R(RV::Bool(result)))
            }),
            E::Binary {
                op,
                call,
                lhs_expr,
                rhs_expr,
                lhs,
                rhs,
            } => self.pair(env, lhs, rhs, &mut |ev, env, a, b| {
                if a.is_undef() || b.is_undef() {
                    return k(ev, env, V::Undef);
                }
                let (a, b) = (a.to_rv(), b.to_rv());
                let r = match op {
                    Operator::Arith(op) => {
                        arithmetic_operation(call.span(), op, lhs_expr, rhs_expr, a, b, true)
                    }
                    Operator::Set(BinOp::Union) => union(lhs_expr, rhs_expr, a, b),
                    Operator::Set(BinOp::Intersection) => intersection(lhs_expr, rhs_expr, a, b),
                };
                match r {
                    Ok(v) => k(ev, env, V::from_rv(v)),
                    Err(_) => bail("operator failed"),
                }
            }),
            E::In(key, value, coll) => {
                let mut go =
                    |ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, kv: Option<V<'a>>| -> Flow {
                        ev.pair(env, value, coll, &mut |ev, env, v, c| {
                            let r = membership(kv.as_ref(), &v, &c);
                            k(ev, env, V::R(RV::Bool(r)))
                        })
                    };
                match key {
                    None => go(self, env, None),
                    Some(ke) => self.expr(
                        env,
                        ke,
                        k!(
                            |ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, kv: V<'a>| go(
                                ev,
                                env,
                                Some(kv)
                            )
                        ),
                    ),
                }
            }
            E::Assign(slot, rhs) => self.expr(
                env,
                rhs,
                k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, v: V<'a>| {
                    if v.is_undef() {
                        return Ok(());
                    }
                    env[*slot] = v;
                    let r = k(ev, env, V::R(RV::Bool(true)));
                    env[*slot] = V::Undef;
                    r
                }),
            ),
            E::Unify(l, r) => self.pair(env, l, r, &mut |ev, env, a, b| {
                if a.is_undef() || b.is_undef() {
                    return k(ev, env, V::Undef);
                }
                k(ev, env, V::R(RV::Bool(eq(&a, &b))))
            }),
        }
    }

    /// Adds each defined `key: value` to an object rule's or comprehension's
    /// map; one key with two values is an error (left to regorus).
    fn insert_pair(
        &mut self,
        env: &mut Env<'a>,
        key: &'p E,
        value: &'p E,
        map: &mut BTreeMap<RV, RV>,
    ) -> Flow {
        self.pair(env, key, value, &mut |_, _, kv, vv| {
            if kv.is_undef() || vv.is_undef() {
                return Ok(());
            }
            let (kr, vr) = (kv.to_rv(), vv.to_rv());
            match map.get(&kr) {
                Some(old) if *old != vr => bail("an object with two values for one key"),
                _ => {
                    map.insert(kr, vr);
                    Ok(())
                }
            }
        })
    }

    fn pair(
        &mut self,
        env: &mut Env<'a>,
        l: &'p E,
        r: &'p E,
        k: &mut dyn FnMut(&mut Evaluator<'p, 'a>, &mut Env<'a>, V<'a>, V<'a>) -> Flow,
    ) -> Flow {
        self.expr(
            env,
            l,
            k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, a: V<'a>| {
                ev.expr(
                    env,
                    r,
                    k!(|ev: &mut Evaluator<'p, 'a>, env: &mut Env<'a>, b: V<'a>| k(
                        ev,
                        env,
                        a.clone(),
                        b
                    )),
                )
            }),
        )
    }

    fn object_fields(
        &mut self,
        env: &mut Env<'a>,
        fields: &'p [(E, E)],
        acc: &mut Vec<(V<'a>, V<'a>)>,
        k: &mut dyn FnMut(&mut Evaluator<'p, 'a>, &mut Env<'a>, V<'a>) -> Flow,
    ) -> Flow {
        let Some(((ke, ve), rest)) = fields.split_first() else {
            if acc.iter().any(|(a, b)| a.is_undef() || b.is_undef()) {
                return k(self, env, V::Undef);
            }
            let map: BTreeMap<RV, RV> = acc.iter().map(|(a, b)| (a.to_rv(), b.to_rv())).collect();
            return k(self, env, V::R(RV::from(map)));
        };
        self.pair(env, ke, ve, &mut |ev, env, a, b| {
            acc.push((a, b));
            let r = ev.object_fields(env, rest, acc, k);
            acc.pop();
            r
        })
    }

    /// Runs a comprehension's query, passing each defined term value to `out`.
    fn collect(
        &mut self,
        env: &mut Env<'a>,
        q: &'p [Stmt],
        term: &'p E,
        out: &mut dyn FnMut(RV) -> Flow,
    ) -> Flow {
        self.query(env, q, &mut |ev, env| {
            ev.expr(
                env,
                term,
                k!(|_: &mut Evaluator<'p, 'a>, _: &mut Env<'a>, v: V<'a>| {
                    if v.is_undef() { Ok(()) } else { out(v.to_rv()) }
                }),
            )
        })
    }

    fn call_fn(&mut self, id: usize, args: &[V<'a>]) -> Result<V<'a>, Stop> {
        let prog = self.prog;
        let rule = &prog.rules[id];
        if self.depth >= MAX_CALL_DEPTH {
            return bail("function calls nested too deeply");
        }
        self.depth += 1;
        let mut found = None;
        let mut args = args.to_vec();
        let mut result = Ok(());
        for def in &rule.defs {
            result = self.solutions(def, &mut args, &mut found);
            if result.is_err() {
                break;
            }
        }
        self.depth -= 1;
        result.map(|()| found.unwrap_or(V::Undef))
    }
}

fn is_collection(v: &V) -> bool {
    matches!(
        v,
        V::J(Json::Array(_) | Json::Object(_))
            | V::R(RV::Array(_) | RV::Set(_) | RV::Object(_))
            | V::L(_)
    )
}

/// `[key,] value in collection`, as regorus evaluates it.
fn membership(key: Option<&V>, value: &V, coll: &V) -> bool {
    match coll {
        V::J(Json::Array(items)) => match key {
            Some(k) => eq(&index(coll, k), value),
            None => !value.is_undef() && items.iter().any(|x| eq(&V::J(x), value)),
        },
        V::J(Json::Object(m)) => match key {
            Some(k) => eq(&index(coll, k), value),
            None => !value.is_undef() && m.values().any(|x| eq(&V::J(x), value)),
        },
        V::R(RV::Array(a)) => match key {
            Some(k) => eq(&index(coll, k), value),
            None => a.contains(&value.to_rv()),
        },
        V::R(RV::Object(o)) => match key {
            Some(k) => eq(&index(coll, k), value),
            None => {
                let v = value.to_rv();
                o.values().any(|x| *x == v)
            }
        },
        V::R(RV::Set(s)) => key.is_none() && s.contains(&value.to_rv()),
        V::L(items) => match key {
            Some(k) => eq(&index(coll, k), value),
            None => !value.is_undef() && items.iter().any(|x| eq(x, value)),
        },
        _ => false,
    }
}

fn native<'a>(n: Native, args: &[V<'a>]) -> Result<V<'a>, Stop> {
    let b = |x: bool| Ok(V::R(RV::Bool(x)));
    let a = &args[0];
    match n {
        Native::Count => match a {
            V::J(Json::Array(x)) => Ok(V::R(RV::from(x.len()))),
            V::J(Json::Object(x)) => Ok(V::R(RV::from(x.len()))),
            V::R(RV::Array(x)) => Ok(V::R(RV::from(x.len()))),
            V::L(x) => Ok(V::R(RV::from(x.len()))),
            V::R(RV::Set(x)) => Ok(V::R(RV::from(x.len()))),
            V::R(RV::Object(x)) => Ok(V::R(RV::from(x.len()))),
            _ => match a.str() {
                Some(s) => Ok(V::R(RV::from(s.chars().count()))),
                None => bail("count of a non-collection"),
            },
        },
        Native::ObjectGet => {
            if !matches!(a, V::J(Json::Object(_)) | V::R(RV::Object(_))) {
                return bail("object.get of a non-object");
            }
            let (path, default) = (&args[1], &args[2]);
            let found = match path {
                V::J(Json::Array(keys)) => {
                    let mut v = a.clone();
                    for k in keys {
                        v = index(&v, &V::J(k));
                        if v.is_undef() {
                            break;
                        }
                    }
                    v
                }
                V::R(RV::Array(keys)) => {
                    let mut v = a.clone();
                    for k in keys.iter() {
                        v = index(&v, &V::R(k.clone()));
                        if v.is_undef() {
                            break;
                        }
                    }
                    v
                }
                V::L(keys) => {
                    let mut v = a.clone();
                    for k in keys.iter() {
                        v = index(&v, k);
                        if v.is_undef() {
                            break;
                        }
                    }
                    v
                }
                key => match (a, key.str()) {
                    (V::J(Json::Object(m)), Some(k)) => m.get(k).map_or(V::Undef, V::J),
                    (V::J(_), _) => V::Undef,
                    _ => index(a, key),
                },
            };
            Ok(if found.is_undef() {
                default.clone()
            } else {
                found
            })
        }
        Native::IsObject => b(matches!(a, V::J(Json::Object(_)) | V::R(RV::Object(_)))),
        Native::IsString => b(a.str().is_some()),
        Native::IsArray => b(matches!(
            a,
            V::J(Json::Array(_)) | V::R(RV::Array(_)) | V::L(_)
        )),
        Native::IsSet => b(matches!(a, V::R(RV::Set(_)))),
        Native::IsNumber => b(matches!(a, V::J(Json::Number(_)) | V::R(RV::Number(_)))),
        Native::IsBoolean => b(matches!(a, V::J(Json::Bool(_)) | V::R(RV::Bool(_)))),
        Native::IsNull => b(matches!(a, V::J(Json::Null) | V::R(RV::Null))),
        Native::Sprintf => match super::sprintf::sprintf(&[a.to_rv(), args[1].to_rv()]) {
            Ok(v) => Ok(V::R(v)),
            Err(e) => bail(format!("{e}")),
        },
        Native::StartsWith | Native::EndsWith => match (a.str(), args[1].str()) {
            (Some(s), Some(p)) => b(if matches!(n, Native::StartsWith) {
                s.starts_with(p)
            } else {
                s.ends_with(p)
            }),
            _ => bail("startswith/endswith of a non-string"),
        },
    }
}
