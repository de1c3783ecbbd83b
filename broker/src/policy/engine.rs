//! Loading, digesting, evaluating and testing policy sets.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regorus::unstable::{Rule, RuleHead};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError};

use super::fast::{self, Stop};
use super::input::{PlanKeys, code_only, referenced_plan_keys, to_rego_pruned};
use sha2::{Digest, Sha256};

use super::{
    Decision, Enforcement, Exception, Finding, PolicyConfig, PolicyError, PolicySet, Severity,
};
use crate::dates::{format_date, today_utc};

/// The version of the input contract (`input.input_version`) this engine evaluates.
pub const INPUT_VERSION: &str = "1";

/// Interpreter work units between two clock reads of the execution timer.
const TIMER_CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(64) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// A `deny_*`/`warn_*` (or `test_*`) rule found in a loaded set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RuleRef {
    /// Full rule path for `Engine::eval_rule`, e.g. `data.platform.cost.deny_cost_increase`.
    path: String,
    /// Rule id (last path component), e.g. `deny_cost_increase`.
    id: String,
    /// Source length of the rule's definitions (code only): a rough guess
    /// of its evaluation cost, to start the heavy rules first.
    weight: usize,
}

/// One policy file: path relative to the set directory, and its text.
#[derive(Debug, Clone)]
struct PolicyFile {
    rel: String,
    text: String,
}

#[derive(Debug, Clone)]
struct LoadedSet {
    name: String,
    enforcement: Enforcement,
    rego_v0: bool,
    files: Vec<PolicyFile>,
    /// Parsed and prepared once; cloned per evaluation (modules are shared).
    engine: Engine,
    rules: Vec<(RuleRef, Severity)>,
    /// The set's rules compiled for [`fast`], and the compiled rule of each
    /// entry of `rules` (`None`: regorus evaluates it).
    program: std::sync::Arc<fast::Program>,
    compiled: Vec<Option<usize>>,
}

/// Every policy set of a configuration, parsed once per run.
#[derive(Debug, Clone)]
pub struct Policies {
    sets: Vec<LoadedSet>,
    /// The `input.plan` keys the policies name (the rest is not converted).
    plan_keys: PlanKeys,
    exceptions: Vec<Exception>,
    timeout: Duration,
    digest: String,
    /// Evaluate every rule with regorus's interpreter, none compiled
    /// (`PLATFORM_POLICY_ENGINE=interpreter`; tests compare both).
    interpreter_only: bool,
}

impl Policies {
    /// Reads and parses every set. Parse errors name `file:line:col`; an
    /// expired exception, an unreadable directory or a set without any
    /// `deny_*`/`warn_*` rule under `package platform.*` is an error.
    pub fn load(config: &PolicyConfig) -> Result<Policies, PolicyError> {
        config.check_exceptions(today_utc())?;
        let mut sets = Vec::with_capacity(config.sets.len());
        for set in &config.sets {
            let files = read_set_files(set, false)?;
            let mut engine = build_engine(set, &files)?;
            let rules: Vec<(RuleRef, Severity)> = declared_rules(&mut engine)
                .into_iter()
                .filter(|r| in_platform_package(&r.path))
                .filter_map(|r| {
                    let sev = if r.id.starts_with("deny_") {
                        Severity::Deny
                    } else if r.id.starts_with("warn_") {
                        Severity::Warn
                    } else {
                        return None;
                    };
                    Some((r, sev))
                })
                .collect();
            if rules.is_empty() {
                return Err(PolicyError::Load {
                    set: set.name.clone(),
                    message: format!(
                        "{} declares no deny_*/warn_* rules under `package platform.*`",
                        set.dir.display()
                    ),
                });
            }
            let program = fast::Program::compile(engine.get_modules());
            let compiled = rules.iter().map(|(r, _)| program.rule(&r.path)).collect();
            for (r, _) in &rules {
                if let Some(why) = program.why_not(&r.path) {
                    tracing::debug!(set = %set.name, rule = %r.id, reason = %why, "policy rule left to the regorus interpreter");
                }
            }
            sets.push(LoadedSet {
                name: set.name.clone(),
                enforcement: set.enforcement,
                rego_v0: set.rego_v0,
                files,
                engine,
                rules,
                program: std::sync::Arc::new(program),
                compiled,
            });
        }
        let digest = bundle_digest(&sets, &config.exceptions);
        let plan_keys = referenced_plan_keys(
            sets.iter()
                .flat_map(|s| s.files.iter().map(|f| f.text.as_str())),
        );
        let interpreter_only = match std::env::var("PLATFORM_POLICY_ENGINE").as_deref() {
            Ok("interpreter") => true,
            Ok("") | Ok("compiled") | Err(_) => false,
            Ok(other) => {
                return Err(PolicyError::Input(format!(
                    "PLATFORM_POLICY_ENGINE={other:?} is not one of \"compiled\" (the default) or \"interpreter\""
                )));
            }
        };
        Ok(Policies {
            plan_keys,
            sets,
            exceptions: config.exceptions.clone(),
            timeout: config.timeout,
            digest,
            interpreter_only,
        })
    }

    /// Evaluates every rule with regorus's interpreter (or not).
    #[cfg(test)]
    pub(crate) fn set_interpreter_only(&mut self, yes: bool) {
        self.interpreter_only = yes;
    }

    /// Evaluates every compiled rule both ways, one rule at a time (an error
    /// in one does not hide the others). Returns how many results the
    /// compiled evaluator settled, how many it handed over although the
    /// interpreter succeeded, and a line per difference.
    #[cfg(test)]
    pub(crate) fn compare_engines(&self, input: &serde_json::Value) -> (usize, usize, Vec<String>) {
        let converted = to_rego_pruned(input, &self.plan_keys);
        let start = Instant::now();
        let limit = Duration::from_secs(60);
        let (mut settled, mut handed_over, mut diffs) = (0, 0, Vec::new());
        for set in &self.sets {
            let mut engine = set.engine.clone();
            engine.set_input(converted.clone());
            let mut compiled = fast::Evaluator::new(&set.program, input, start + limit);
            for (i, (rule, _)) in set.rules.iter().enumerate() {
                let Some(id) = set.compiled[i] else { continue };
                let interpreted = eval_with_budget(&mut engine, rule, &set.name, start, limit);
                match (compiled.eval(id), interpreted) {
                    (Ok(a), Ok(b)) if a == b => settled += 1,
                    (Err(Stop::Bail(_)), Err(_)) => {}
                    (Err(Stop::Bail(_)), Ok(_)) => handed_over += 1,
                    (a, b) => diffs.push(format!(
                        "{}: compiled {:?}, interpreted {:?}",
                        rule.id,
                        a.map(|v| value_text(&v)),
                        b.map(|v| value_text(&v)).map_err(|e| e.to_string())
                    )),
                }
            }
        }
        (settled, handed_over, diffs)
    }

    /// `(set, rule id)` of every rule the compiled evaluator does not take,
    /// with the reason.
    #[cfg(test)]
    pub(crate) fn interpreted_rules(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for s in &self.sets {
            for (i, (r, _)) in s.rules.iter().enumerate() {
                if s.compiled[i].is_none() {
                    let why = s.program.why_not(&r.path).unwrap_or_default();
                    out.push((s.name.clone(), r.id.clone(), why));
                }
            }
        }
        out
    }

    /// The `input.plan` keys the loaded policies name (see `docs/policy-input.md`).
    pub fn plan_keys(&self) -> &PlanKeys {
        &self.plan_keys
    }

    /// `sha256:<hex>` over the sorted (set name, enforcement, syntax, file
    /// name, file content) of every set plus every exception: the "policy
    /// bundle digest" recorded in the plan identity.
    pub fn digest(&self) -> String {
        self.digest.clone()
    }

    /// Names and enforcement levels of the loaded sets, in configuration order.
    pub fn sets(&self) -> impl Iterator<Item = (&str, Enforcement)> {
        self.sets.iter().map(|s| (s.name.as_str(), s.enforcement))
    }

    /// The ids of every `deny_*`/`warn_*` rule of every set, as `(set, rule)`
    /// (lets reports list what passed, not only what failed).
    pub fn rules(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for s in &self.sets {
            for (r, _) in &s.rules {
                out.push((s.name.clone(), r.id.clone()));
            }
        }
        out
    }

    /// Evaluates every set against `input` (see `docs/policy-input.md`).
    /// Fails closed: an evaluation error, or exceeding the configured time
    /// limit for the whole evaluation, is an `Err`.
    pub fn evaluate(&self, input: &serde_json::Value) -> Result<Decision, PolicyError> {
        self.evaluate_timed(input).map(|(decision, _)| decision)
    }

    /// [`Policies::evaluate`], with the time each set took (the sum of its
    /// rules' evaluation times, across the worker threads).
    pub fn evaluate_timed(
        &self,
        input: &serde_json::Value,
    ) -> Result<(Decision, Vec<SetTime>), PolicyError> {
        let start = Instant::now();
        check_input(input)?;
        // regorus's own values of the input, converted only if some rule
        // needs the interpreter.
        let converted: std::sync::OnceLock<regorus::Value> = std::sync::OnceLock::new();

        // Rules are independent evaluations: spread them over the cores, each
        // worker with its own clone of the set's prepared engine (the parsed
        // modules and the input are shared, not copied).
        // The longest rules first (by source length, a rough guess): a long
        // rule started last would leave the other cores idle while it runs.
        let mut jobs: Vec<(usize, usize)> = self
            .sets
            .iter()
            .enumerate()
            .flat_map(|(s, set)| (0..set.rules.len()).map(move |r| (s, r)))
            .collect();
        jobs.sort_by_key(|&(s, r)| std::cmp::Reverse(self.sets[s].rules[r].0.weight));
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(jobs.len())
            .max(1);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut results: Vec<RuleOutcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let (input, converted, jobs, next) = (input, &converted, &jobs, &next);
                    scope.spawn(move || self.work(input, converted, jobs, next, start))
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![(
                            (0, 0),
                            Err(PolicyError::Input(
                                "policy evaluation thread panicked".into(),
                            )),
                            Duration::ZERO,
                        )]
                    })
                })
                .collect()
        });
        // Freeing a large input takes a while (every object of the plan);
        // nothing waits for it. Should no thread be had, the failed spawn
        // drops its closure, and the input with it, right here.
        if let Some(converted) = converted.into_inner() {
            let _ = std::thread::Builder::new()
                .name("policy-input-drop".into())
                .spawn(move || drop(converted));
        }
        // Same order and error choice whatever the scheduling: by set, then rule.
        results.sort_by_key(|(at, _, _)| *at);
        let mut times: Vec<SetTime> = self
            .sets
            .iter()
            .map(|set| SetTime {
                set: set.name.clone(),
                rules: set.rules.len(),
                compiled: if self.interpreter_only {
                    0
                } else {
                    set.compiled.iter().filter(|c| c.is_some()).count()
                },
                time: Duration::ZERO,
            })
            .collect();
        for ((s, _), _, took) in &results {
            if let Some(t) = times.get_mut(*s) {
                t.time += *took;
            }
        }
        let slowest = || {
            times
                .iter()
                .max_by_key(|t| t.time)
                .map(|t| format!("set {} ({} ms of rule time)", t.set, t.time.as_millis()))
        };
        let mut findings = Vec::new();
        let mut set_findings = Vec::new();
        let mut current = None;
        for ((s, _), result, _) in results {
            if current != Some(s) {
                flush_set(&mut set_findings, &mut findings);
                current = Some(s);
            }
            set_findings.extend(result?);
        }
        flush_set(&mut set_findings, &mut findings);
        // Interpreter checks are cooperative; also enforce the limit after the fact.
        let elapsed = start.elapsed();
        if elapsed > self.timeout {
            return Err(PolicyError::Timeout {
                limit: self.timeout,
                elapsed,
                rule: slowest(),
            });
        }
        for f in &mut findings {
            if let Some(ex) = self
                .exceptions
                .iter()
                .find(|e| e.matches(&f.rule, f.address.as_deref()))
            {
                f.excepted_by = Some(ex.describe());
            }
        }
        Ok((Decision::from_findings(findings), times))
    }
}

/// How long one set took in an evaluation.
#[derive(Debug, Clone)]
pub struct SetTime {
    pub set: String,
    pub rules: usize,
    /// Rules the compiled evaluator runs (the rest: regorus's interpreter).
    pub compiled: usize,
    pub time: Duration,
}

impl Policies {
    /// One evaluation worker: takes (set, rule) jobs until none are left,
    /// with one engine per set it meets (a clone sharing modules and input).
    fn work(
        &self,
        input: &serde_json::Value,
        converted: &std::sync::OnceLock<regorus::Value>,
        jobs: &[(usize, usize)],
        next: &std::sync::atomic::AtomicUsize,
        start: Instant,
    ) -> Vec<RuleOutcome> {
        let mut done = Vec::new();
        let mut engines: Vec<Option<Engine>> = vec![None; self.sets.len()];
        let mut compiled: Vec<Option<fast::Evaluator>> = self.sets.iter().map(|_| None).collect();
        let deadline = start + self.timeout;
        while let Some(&(s, r)) = jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        {
            let set = &self.sets[s];
            let (rule, severity) = &set.rules[r];
            let began = Instant::now();
            let mut value = None;
            if let Some(id) = set.compiled[r].filter(|_| !self.interpreter_only) {
                let evaluator = compiled[s]
                    .get_or_insert_with(|| fast::Evaluator::new(&set.program, input, deadline));
                match evaluator.eval(id) {
                    Ok(v) => value = Some(Ok(v)),
                    Err(Stop::Timeout) => {
                        value = Some(Err(PolicyError::Timeout {
                            limit: self.timeout,
                            elapsed: start.elapsed(),
                            rule: Some(format!("set {}, rule {}", set.name, rule.id)),
                        }))
                    }
                    Err(Stop::Bail(why)) => tracing::debug!(
                        set = %set.name, rule = %rule.id, reason = %why,
                        "policy rule handed to the regorus interpreter"
                    ),
                    Err(Stop::Cut) => {}
                }
            }
            let value = value.unwrap_or_else(|| {
                let engine = engines[s].get_or_insert_with(|| {
                    let mut engine = set.engine.clone();
                    let input = converted.get_or_init(|| to_rego_pruned(input, &self.plan_keys));
                    engine.set_input(input.clone());
                    engine
                });
                eval_with_budget(engine, rule, &set.name, start, self.timeout)
            });
            let findings = value.map(|value| {
                let mut findings = Vec::new();
                collect_findings(&value, rule, *severity, set, &mut findings);
                findings
            });
            done.push(((s, r), findings, began.elapsed()));
        }
        done
    }
}

/// One rule's result, tagged with its (set, rule) position, and how long it
/// took.
type RuleOutcome = ((usize, usize), Result<Vec<Finding>, PolicyError>, Duration);

/// Moves one set's findings into `all`, sorted and without duplicates.
fn flush_set(set_findings: &mut Vec<Finding>, all: &mut Vec<Finding>) {
    set_findings
        .sort_by(|a, b| (&a.rule, &a.address, &a.message).cmp(&(&b.rule, &b.address, &b.message)));
    set_findings.dedup();
    all.append(set_findings);
}

/// Result of [`run_tests`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestReport {
    /// Number of `test_*` rules that evaluated to `true`.
    pub passed: usize,
    /// `(set, rule path)` of every test that was not `true` or failed to evaluate.
    pub failed: Vec<(String, String)>,
    /// One line per entry of `failed`, same order: why it failed.
    pub failure_reasons: Vec<String>,
}

impl TestReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Runs every `test_*` rule of every set: the set's policies plus its
/// `*_test.rego` files, loaded together with the set's syntax. A test passes
/// when it evaluates to `true`; undefined, `false` or an error fails it.
/// Parse errors are an `Err`.
pub fn run_tests(config: &PolicyConfig) -> Result<TestReport, PolicyError> {
    let mut report = TestReport::default();
    for set in &config.sets {
        let files = read_set_files(set, true)?;
        let mut engine = build_engine(set, &files)?;
        let tests: Vec<RuleRef> = declared_rules(&mut engine)
            .into_iter()
            .filter(|r| r.id.starts_with("test_"))
            .collect();
        for test in tests {
            let started = Instant::now();
            let outcome = eval_with_budget(&mut engine, &test, &set.name, started, config.timeout);
            let rule = test.path.trim_start_matches("data.").to_string();
            match outcome {
                Ok(regorus::Value::Bool(true)) => report.passed += 1,
                Ok(regorus::Value::Undefined) => {
                    report.failed.push((set.name.clone(), rule));
                    report.failure_reasons.push("undefined".into());
                }
                Ok(other) => {
                    report.failed.push((set.name.clone(), rule));
                    report
                        .failure_reasons
                        .push(format!("evaluated to {}", value_text(&other)));
                }
                Err(e) => {
                    report.failed.push((set.name.clone(), rule));
                    report.failure_reasons.push(e.to_string());
                }
            }
        }
    }
    Ok(report)
}

fn check_input(input: &serde_json::Value) -> Result<(), PolicyError> {
    let Some(obj) = input.as_object() else {
        return Err(PolicyError::Input("input must be a JSON object".into()));
    };
    match obj.get("input_version") {
        None => Ok(()),
        Some(serde_json::Value::String(v)) if v == INPUT_VERSION => Ok(()),
        Some(other) => Err(PolicyError::Input(format!(
            "input_version {other} is not supported (this broker evaluates version \"{INPUT_VERSION}\")"
        ))),
    }
}

/// Evaluates one rule with whatever remains of the time budget.
fn eval_with_budget(
    engine: &mut Engine,
    rule: &RuleRef,
    set: &str,
    start: Instant,
    timeout: Duration,
) -> Result<regorus::Value, PolicyError> {
    let timed_out = |elapsed| PolicyError::Timeout {
        limit: timeout,
        elapsed,
        rule: Some(format!("set {set}, rule {}", rule.id)),
    };
    let Some(remaining) = timeout
        .checked_sub(start.elapsed())
        .filter(|d| !d.is_zero())
    else {
        return Err(timed_out(start.elapsed()));
    };
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: remaining,
        check_interval: TIMER_CHECK_INTERVAL,
    });
    match engine.eval_rule(rule.path.clone()) {
        Ok(v) => Ok(v),
        Err(e) => {
            let elapsed = start.elapsed();
            let is_time_limit = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<LimitError>(),
                    Some(LimitError::TimeLimitExceeded { .. })
                )
            });
            if is_time_limit || elapsed > timeout {
                Err(timed_out(elapsed))
            } else {
                Err(PolicyError::Eval {
                    set: set.to_string(),
                    rule: rule.id.clone(),
                    message: format!("{e:#}"),
                })
            }
        }
    }
}

/// Turns one rule's value into findings.
///
/// A set or array yields one finding per element: a string is the message;
/// an object supplies `msg` (or `message`) and optionally `address`. A
/// complete rule that is `true` yields one finding; `false`, `null`,
/// undefined and empty collections yield none.
fn collect_findings(
    value: &regorus::Value,
    rule: &RuleRef,
    severity: Severity,
    set: &LoadedSet,
    out: &mut Vec<Finding>,
) {
    let json = match value {
        regorus::Value::Undefined => return,
        v => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
    };
    let mut push = |address: Option<String>, message: String| {
        out.push(Finding {
            rule: rule.id.clone(),
            severity,
            set: set.name.clone(),
            enforcement: set.enforcement,
            address,
            message,
            excepted_by: None,
        })
    };
    let element = |e: &serde_json::Value| -> (Option<String>, String) {
        match e {
            serde_json::Value::String(s) => (None, s.clone()),
            serde_json::Value::Object(o) => {
                let msg = o
                    .get("msg")
                    .or_else(|| o.get("message"))
                    .map(|m| match m {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| e.to_string());
                let address = o
                    .get("address")
                    .and_then(|a| a.as_str())
                    .map(str::to_string);
                (address, msg)
            }
            other => (None, other.to_string()),
        }
    };
    match &json {
        serde_json::Value::Null | serde_json::Value::Bool(false) => {}
        serde_json::Value::Bool(true) => push(None, rule.id.clone()),
        serde_json::Value::Array(items) => {
            for item in items {
                let (a, m) = element(item);
                push(a, m);
            }
        }
        other => {
            let (a, m) = element(other);
            push(a, m);
        }
    }
}

fn value_text(v: &regorus::Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "<unprintable>".into())
}

/// Whether a rule path lies under `data.platform`.
fn in_platform_package(path: &str) -> bool {
    path.strip_prefix("data.platform")
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Every rule (not function) declared by the engine's modules, deduplicated.
fn declared_rules(engine: &mut Engine) -> Vec<RuleRef> {
    let mut out: BTreeMap<(String, String), usize> = BTreeMap::new();
    for module in engine.get_modules().iter() {
        let package = module.package.refr.span().text().trim().to_string();
        for rule in &module.policy {
            let (span, head) = match rule.as_ref() {
                Rule::Spec { span, head, .. } => (span, head),
                Rule::Default { .. } => continue,
            };
            let refr = match head {
                RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => refr,
                RuleHead::Func { .. } => continue,
            };
            let text = refr.span().text();
            let head_path = text.split('[').next().unwrap_or("").trim();
            let id = head_path.rsplit('.').next().unwrap_or("").trim();
            if id.is_empty() {
                continue;
            }
            let weight = code_only(span.text())
                .split_whitespace()
                .map(str::len)
                .sum::<usize>();
            *out.entry((format!("data.{package}.{head_path}"), id.to_string()))
                .or_default() += weight;
        }
    }
    out.into_iter()
        .map(|((path, id), weight)| RuleRef { path, id, weight })
        .collect()
}

fn build_engine(set: &PolicySet, files: &[PolicyFile]) -> Result<Engine, PolicyError> {
    let load_err = |message: String| PolicyError::Load {
        set: set.name.clone(),
        message,
    };
    let mut engine = new_engine(set.rego_v0).map_err(|e| load_err(format!("{e:#}")))?;
    for f in files {
        let display = set.dir.join(&f.rel).display().to_string();
        engine
            .add_policy(display, f.text.clone())
            .map_err(|e| load_err(format!("{e:#}")))?;
    }
    super::builtins::check(engine.get_modules(), set.rego_v0).map_err(load_err)?;
    // `[path, value] := walk(x)` becomes the relation regorus knows.
    let rewrites = super::builtins::walk_rewrites(engine.get_modules());
    if !rewrites.is_empty() {
        engine = new_engine(set.rego_v0).map_err(|e| load_err(format!("{e:#}")))?;
        for f in files {
            let display = set.dir.join(&f.rel).display().to_string();
            let text = rewrites
                .iter()
                .find(|(file, _)| *file == display)
                .map_or_else(|| f.text.clone(), |(_, text)| text.clone());
            engine
                .add_policy(display, text)
                .map_err(|e| load_err(format!("{e:#}")))?;
        }
    }
    // Analyse and schedule once here, so every evaluation clone starts prepared
    // and load-time problems surface at load time.
    engine
        .eval_query("true".to_string(), false)
        .map_err(|e| load_err(format!("{e:#}")))?;
    Ok(engine)
}

/// A regorus engine as the broker configures every one: the set's dialect,
/// strict builtin errors (fail closed), and OPA's `sprintf`
/// ([`super::sprintf`]) in place of regorus's.
pub(super) fn new_engine(rego_v0: bool) -> anyhow::Result<Engine> {
    let mut engine = Engine::new();
    engine.set_rego_v0(rego_v0);
    engine.set_strict_builtin_errors(true);
    super::sprintf::register(&mut engine)?;
    super::builtins::register(&mut engine, rego_v0)?;
    Ok(engine)
}

/// The set's `.rego` files (recursively, sorted by relative path).
/// `*_test.rego` files are included only when `with_tests`.
fn read_set_files(set: &PolicySet, with_tests: bool) -> Result<Vec<PolicyFile>, PolicyError> {
    let mut paths = Vec::new();
    walk(&set.dir, &mut paths)?;
    let mut files = Vec::new();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".rego") || (!with_tests && name.ends_with("_test.rego")) {
            continue;
        }
        let rel = path
            .strip_prefix(&set.dir)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Io {
            path: path.clone(),
            source,
        })?;
        files.push(PolicyFile { rel, text });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    if !files.iter().any(|f| !f.rel.ends_with("_test.rego")) {
        return Err(PolicyError::Load {
            set: set.name.clone(),
            message: format!("no .rego policy files in {}", set.dir.display()),
        });
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PolicyError> {
    let io = |source| PolicyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let ty = entry.file_type().map_err(io)?;
        let path = entry.path();
        if ty.is_dir() {
            walk(&path, out)?;
        } else if ty.is_file() || ty.is_symlink() {
            out.push(path);
        }
    }
    Ok(())
}

fn bundle_digest(sets: &[LoadedSet], exceptions: &[Exception]) -> String {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    let mut h = Sha256::new();
    field(&mut h, b"platform-broker/policy-bundle/v1");
    let mut sorted: Vec<&LoadedSet> = sets.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for s in sorted {
        field(&mut h, b"set");
        field(&mut h, s.name.as_bytes());
        field(&mut h, s.enforcement.as_str().as_bytes());
        field(&mut h, if s.rego_v0 { b"v0" } else { b"v1" });
        for f in &s.files {
            field(&mut h, b"file");
            field(&mut h, f.rel.as_bytes());
            field(&mut h, f.text.as_bytes());
        }
    }
    let mut ex: Vec<&Exception> = exceptions.iter().collect();
    ex.sort_by(|a, b| {
        (&a.rule, &a.address, &a.owner, &a.reason, a.expires)
            .cmp(&(&b.rule, &b.address, &b.owner, &b.reason, b.expires))
    });
    for e in ex {
        field(&mut h, b"exception");
        field(&mut h, e.rule.as_bytes());
        field(&mut h, e.address.as_bytes());
        field(&mut h, e.owner.as_bytes());
        field(&mut h, e.reason.as_bytes());
        field(&mut h, format_date(e.expires).as_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rule_weights_sum_every_definition_and_skip_comments() {
        let mut engine = Engine::new();
        engine
            .add_policy(
                "p.rego".into(),
                "package platform.w\n\n\
                 # a long comment that must not count towards any rule's weight at all\n\
                 deny_short contains \"s\" if input.x\n\n\
                 deny_long contains m if {\n\tsome rc in input.plan.resource_changes\n\tm := rc.address\n}\n\
                 deny_long contains \"again\" if input.y\n"
                    .into(),
            )
            .unwrap();
        let rules = declared_rules(&mut engine);
        let weight = |id: &str| rules.iter().find(|r| r.id == id).unwrap().weight;
        // Non-blank characters of the code: `deny_short contains if input.x`.
        assert_eq!(weight("deny_short"), "deny_shortcontainsifinput.x".len());
        let one_long =
            "deny_longcontainsmif{somercininput.plan.resource_changesm:=rc.address}".len();
        let again = "deny_longcontainsifinput.y".len();
        assert_eq!(weight("deny_long"), one_long + again);
    }
}
