//! The plan, parsed once per run from `terraform show -json`.
//!
//! **Invariant:** nothing in a [`PlanSummary`] holds a secret. Redaction happens
//! inside [`parse`], before any typed value is built, so policy, cost, reports
//! and the audit log can only ever see the redacted plan. A sensitive value is
//! replaced by `"(sensitive:<8 hex>)"`, a short keyed hash (HMAC-SHA256 with
//! the broker key, or the broker home's random salt) of its canonical JSON, so
//! "did it change?" and "is it the same as X?" still work without the value,
//! and a reader of a report cannot confirm a guessed secret offline.
//!
//! Values are hidden when Terraform marks them sensitive (`before_sensitive`,
//! `after_sensitive`, `sensitive_values`, sensitive outputs and variables), when
//! the attribute *name* looks like a credential (see [`is_credential_name`]),
//! and when a string is a URL carrying a password. A last pass scrubs every
//! string found secret by the marks wherever else it appears in the document
//! (the `variables` block, `prior_state` of format 0.1 which has no
//! `sensitive_values`, generated config), because Terraform prints those in
//! plain text.
//!
//! Format versions: major 0 (Terraform 0.12–1.0) and 1 (1.1+) are accepted and
//! unknown keys ignored, per Terraform's compatibility promise (a minor bump
//! only adds fields). Any other major version is refused: its meaning is not
//! known, and guessing would mean guessing what a plan does.

use std::collections::BTreeSet;

use crate::key::Fingerprint;
use serde::Serialize;
use serde_json::{Map, Value};

/// Why a plan JSON was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The input is not JSON at all.
    #[error("plan JSON does not parse: {0}")]
    Json(#[from] serde_json::Error),
    /// `format_version` is missing or not a `major.minor` string.
    #[error("plan JSON has no usable format_version ({0})")]
    BadFormatVersion(String),
    /// `format_version` has a major version this broker does not understand.
    #[error(
        "plan JSON format_version {0} is not supported (this broker reads major versions 0 and 1); \
         upgrade the broker or use an older Terraform"
    )]
    UnsupportedFormatVersion(String),
    /// A change carries an `actions` list the broker does not know. Refused
    /// rather than guessed, so policy never waves an unknown action through.
    #[error("{address}: unknown change actions {actions:?}")]
    UnknownAction {
        address: String,
        actions: Vec<String>,
    },
    /// The document has the right version but the wrong shape.
    #[error("plan JSON is malformed: {0}")]
    Invalid(String),
}

/// The one parsed view of a plan. Everything here is already redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSummary {
    pub format_version: String,
    pub terraform_version: String,
    /// `resource_changes`, in Terraform's order.
    pub resources: Vec<ResourceChange>,
    /// `resource_drift`: changes made outside Terraform, found by refresh.
    /// Entries that change nothing (Terraform 1.0.0 listed those) are dropped.
    pub drift: Vec<ResourceChange>,
    /// `output_changes` of the root module, sorted by name.
    pub outputs: Vec<OutputChange>,
    /// `errored` (Terraform 1.6+); false when absent.
    pub errored: bool,
    /// The whole plan JSON with every sensitive value replaced by its marker.
    pub redacted: Value,
}

/// Whether a resource is managed or a data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Managed,
    Data,
}

/// What Terraform will do to one object.
///
/// Terraform 1.7+'s `forget` (removed block with `destroy = false`) is read as
/// [`Action::Delete`]: the object leaves Terraform's management, and policies
/// that guard deletions should see it. Any other unknown action list makes
/// [`parse`] fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    NoOp,
    Create,
    Read,
    Update,
    Delete,
    /// `["delete","create"]`, or `["create","delete"]` when `create_before_destroy`.
    Replace {
        create_before_destroy: bool,
    },
}

impl Action {
    /// Terraform's word for the action (`replace` for both replace orders).
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Replace { .. } => "replace",
        }
    }

    fn from_actions(actions: &[&str]) -> Option<Action> {
        Some(match actions {
            ["no-op"] => Action::NoOp,
            ["create"] => Action::Create,
            ["read"] => Action::Read,
            ["update"] => Action::Update,
            ["delete"] | ["forget"] => Action::Delete,
            ["delete", "create"] => Action::Replace {
                create_before_destroy: false,
            },
            ["create", "delete"] => Action::Replace {
                create_before_destroy: true,
            },
            _ => return None,
        })
    }
}

/// One entry of `resource_changes` (or `resource_drift`), redacted.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ResourceChange {
    pub address: String,
    pub module_address: Option<String>,
    pub mode: Mode,
    pub type_: String,
    pub name: String,
    /// `count` index (number) or `for_each` key (string), when there is one.
    pub index: Option<Value>,
    /// Set for a deposed object (a leftover of an interrupted create_before_destroy).
    pub deposed: Option<String>,
    pub provider_name: String,
    pub action: Action,
    /// Redacted; `null` when the object does not exist before.
    pub before: Value,
    /// Redacted; unknown attributes are absent here and `true` in `after_unknown`.
    pub after: Value,
    pub after_unknown: Value,
    /// Top-level attribute names whose redacted before and after differ, or
    /// whose after value is (partly) unknown. Sorted.
    pub changed_attributes: Vec<String>,
    pub action_reason: Option<String>,
    /// `replace_paths`: attribute paths that force the replacement.
    pub replace_paths: Vec<Value>,
}

/// One root-module output change, redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputChange {
    pub name: String,
    pub action: Action,
    pub sensitive: bool,
    pub before: Value,
    pub after: Value,
    pub after_unknown: Value,
}

/// How many objects each action touches. A replace counts only as `replace`
/// (Terraform's own "N to add" line counts it as one add and one destroy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub replace: usize,
    pub read: usize,
}

impl PlanSummary {
    /// Counts of `resources` by action (drift is not counted).
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for res in &self.resources {
            match res.action {
                Action::NoOp => {}
                Action::Create => counts.add += 1,
                Action::Read => counts.read += 1,
                Action::Update => counts.change += 1,
                Action::Delete => counts.destroy += 1,
                Action::Replace { .. } => counts.replace += 1,
            }
        }
        counts
    }

    /// True for a destroy-only plan: it deletes at least one managed object and
    /// creates, updates or replaces nothing. A `plan -destroy` always
    /// satisfies this; so does a normal plan that only removes resources.
    pub fn is_destroy(&self) -> bool {
        let managed = || self.resources.iter().filter(|r| r.mode == Mode::Managed);
        managed().any(|r| r.action == Action::Delete)
            && managed().all(|r| matches!(r.action, Action::Delete | Action::NoOp))
    }

    /// True when applying would change a managed object or a root output.
    /// Data-source reads alone do not count, although `-detailed-exitcode`
    /// reports them as changes (hashicorp/terraform#35226).
    pub fn has_changes(&self) -> bool {
        self.resources
            .iter()
            .any(|r| r.mode == Mode::Managed && r.action != Action::NoOp)
            || self.outputs.iter().any(|o| o.action != Action::NoOp)
    }
}

/// Parses `terraform show -json <planfile>` output, redacting as it goes.
pub fn parse(json: &[u8]) -> Result<PlanSummary, PlanError> {
    parse_with(json, process_fingerprint())
}

/// Parses `terraform show -json` output, redacting with the markers of
/// `fingerprint` (the broker home's).
pub fn parse_with(json: &[u8], fingerprint: &Fingerprint) -> Result<PlanSummary, PlanError> {
    let doc: Value = serde_json::from_slice(json)?;
    if !doc.is_object() {
        return Err(PlanError::Invalid("top level is not an object".into()));
    }
    let format_version = match doc.get("format_version") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(PlanError::BadFormatVersion(format!("got {other}"))),
        None => return Err(PlanError::BadFormatVersion("missing".into())),
    };
    let major = format_version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok())
        .ok_or_else(|| PlanError::BadFormatVersion(format!("got {format_version:?}")))?;
    if major > 1 {
        return Err(PlanError::UnsupportedFormatVersion(format_version));
    }
    let terraform_version = doc
        .get("terraform_version")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    let redacted = redact_plan_with(fingerprint, &doc);

    let resources = resource_changes(&redacted, "resource_changes")?;
    let drift = resource_changes(&redacted, "resource_drift")?
        .into_iter()
        .filter(|res| res.action != Action::NoOp && !res.changed_attributes.is_empty())
        .collect();
    let outputs = output_changes(&redacted)?;
    let errored = redacted
        .get("errored")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    Ok(PlanSummary {
        format_version,
        terraform_version,
        resources,
        drift,
        outputs,
        errored,
        redacted,
    })
}

fn resource_changes(doc: &Value, key: &str) -> Result<Vec<ResourceChange>, PlanError> {
    let items = match doc.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(PlanError::Invalid(format!("{key} is not an array"))),
    };
    items.iter().map(|it| resource_change(it, key)).collect()
}

fn resource_change(it: &Value, key: &str) -> Result<ResourceChange, PlanError> {
    let str_field = |name: &str| it.get(name).and_then(Value::as_str).map(str::to_string);
    let address = str_field("address")
        .ok_or_else(|| PlanError::Invalid(format!("{key} entry without address")))?;
    let mode = match it.get("mode").and_then(Value::as_str) {
        Some("managed") => Mode::Managed,
        Some("data") => Mode::Data,
        other => {
            return Err(PlanError::Invalid(format!(
                "{address}: unknown mode {other:?}"
            )));
        }
    };
    let change = it
        .get("change")
        .ok_or_else(|| PlanError::Invalid(format!("{address}: no change object")))?;
    let action = parse_actions(&address, change)?;
    let before = change.get("before").cloned().unwrap_or(Value::Null);
    let after = change.get("after").cloned().unwrap_or(Value::Null);
    let after_unknown = change.get("after_unknown").cloned().unwrap_or(Value::Null);
    let changed_attributes = changed_attributes(&before, &after, &after_unknown);
    let replace_paths = match change.get("replace_paths") {
        Some(Value::Array(paths)) => paths.clone(),
        _ => Vec::new(),
    };
    Ok(ResourceChange {
        module_address: str_field("module_address"),
        mode,
        type_: str_field("type").unwrap_or_default(),
        name: str_field("name").unwrap_or_default(),
        index: it.get("index").filter(|v| !v.is_null()).cloned(),
        deposed: str_field("deposed"),
        provider_name: str_field("provider_name").unwrap_or_default(),
        action,
        before,
        after,
        after_unknown,
        changed_attributes,
        action_reason: str_field("action_reason"),
        replace_paths,
        address,
    })
}

fn parse_actions(address: &str, change: &Value) -> Result<Action, PlanError> {
    let actions: Vec<&str> = match change.get("actions") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => return Err(PlanError::Invalid(format!("{address}: no actions list"))),
    };
    Action::from_actions(&actions).ok_or_else(|| PlanError::UnknownAction {
        address: address.to_string(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
    })
}

fn output_changes(doc: &Value) -> Result<Vec<OutputChange>, PlanError> {
    let Some(Value::Object(outputs)) = doc.get("output_changes") else {
        return Ok(Vec::new());
    };
    let mut result = Vec::with_capacity(outputs.len());
    for (name, change) in outputs {
        let address = format!("output.{name}");
        let sensitive = is_true(change.get("before_sensitive"))
            || is_true(change.get("after_sensitive"))
            || output_is_sensitive_in_config(doc, name);
        result.push(OutputChange {
            name: name.clone(),
            action: parse_actions(&address, change)?,
            sensitive,
            before: change.get("before").cloned().unwrap_or(Value::Null),
            after: change.get("after").cloned().unwrap_or(Value::Null),
            after_unknown: change.get("after_unknown").cloned().unwrap_or(Value::Null),
        });
    }
    result.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(result)
}

fn output_is_sensitive_in_config(doc: &Value, name: &str) -> bool {
    is_true(
        doc.pointer("/configuration/root_module/outputs")
            .and_then(|o| o.get(name))
            .and_then(|o| o.get("sensitive")),
    )
}

fn is_true(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true)))
}

/// True when an `after_unknown` subtree marks anything unknown.
fn has_unknown(mark: &Value) -> bool {
    match mark {
        Value::Bool(b) => *b,
        Value::Array(items) => items.iter().any(has_unknown),
        Value::Object(map) => map.values().any(has_unknown),
        _ => false,
    }
}

fn changed_attributes<'a>(
    before: &'a Value,
    after: &'a Value,
    after_unknown: &'a Value,
) -> Vec<String> {
    let mut names: BTreeSet<&String> = BTreeSet::new();
    for side in [before, after, after_unknown] {
        if let Value::Object(map) = side {
            names.extend(map.keys());
        }
    }
    const NULL: &Value = &Value::Null;
    let field = |side: &'a Value, name: &str| -> &'a Value { side.get(name).unwrap_or(NULL) };
    names
        .into_iter()
        .filter(|name| {
            field(before, name) != field(after, name) || has_unknown(field(after_unknown, name))
        })
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------

/// Prefix of every redaction marker: `"(sensitive:1a2b3c4d)"`.
pub const SENSITIVE_PREFIX: &str = "(sensitive:";

/// The marker that stands for `value`: the first 8 hex digits of a keyed
/// hash (HMAC-SHA256 with the broker key or the home's random salt, see
/// `key::Fingerprint`) of its canonical JSON (object keys sorted), so equal
/// values get equal markers whatever order Terraform printed their keys in,
/// and nobody without the key or salt can confirm a guessed secret.
pub fn sensitive_marker_with(fingerprint: &Fingerprint, value: &Value) -> Value {
    let mut canonical = String::new();
    write_canonical(value, &mut canonical);
    let mut marker = String::from(SENSITIVE_PREFIX);
    marker.push_str(&fingerprint.short(canonical.as_bytes(), 8));
    marker.push(')');
    Value::String(marker)
}

/// A fingerprint with a random salt of this process: markers are stable
/// within one process and unguessable, but differ between processes. The
/// broker's commands use the home's fingerprint (`parse_with`).
pub fn process_fingerprint() -> &'static Fingerprint {
    static PROCESS: std::sync::OnceLock<Fingerprint> = std::sync::OnceLock::new();
    PROCESS.get_or_init(|| {
        let mut salt = [0u8; 32];
        crate::bundle::fill_random(&mut salt);
        Fingerprint::from_salt(&salt)
    })
}

/// [`sensitive_marker_with`] the process fingerprint.
pub fn sensitive_marker(value: &Value) -> Value {
    sensitive_marker_with(process_fingerprint(), value)
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (idx, key) in keys.into_iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

pub(crate) fn is_marker(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.starts_with(SENSITIVE_PREFIX) && s.ends_with(')') && s.len() == SENSITIVE_PREFIX.len() + 9)
}

/// True when an attribute or variable name looks like it holds a credential.
/// Deliberately broad: hiding a harmless value costs little, leaking one a lot.
pub fn is_credential_name(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "private_key",
        "privatekey",
        "api_key",
        "apikey",
        "access_key",
        "credential",
    ];
    let lower = name.to_ascii_lowercase();
    WORDS.iter().any(|w| lower.contains(w))
}

/// True for a URL that carries a password: `scheme://user:pass@host…`, or a
/// query parameter such as `?password=…`.
fn is_url_with_password(s: &str) -> bool {
    let Some(scheme_end) = s.find("://") else {
        return false;
    };
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority
        .rfind('@')
        .is_some_and(|at| authority[..at].contains(':'))
    {
        return true;
    }
    let lower = rest.to_ascii_lowercase();
    ["password=", "passwd=", "secret=", "token="]
        .iter()
        .any(|p| lower.contains(p))
}

/// Redacts one value tree using its sensitivity mask (Terraform's
/// `before_sensitive`/`after_sensitive`/`sensitive_values` shape: `true` for a
/// whole value, or a parallel object/array of marks), plus the credential-name
/// and password-URL rules. `null` stays `null`. Redacting twice changes nothing.
pub fn redact(value: &Value, sensitive_mask: &Value) -> Value {
    Redactor::new(process_fingerprint().clone()).tree(value, sensitive_mask)
}

/// Redacts a whole `terraform show -json` document (see the module docs).
pub fn redact_plan(doc: &Value) -> Value {
    redact_plan_with(process_fingerprint(), doc)
}

/// [`redact_plan`] with the markers of `fingerprint`.
pub fn redact_plan_with(fingerprint: &Fingerprint, doc: &Value) -> Value {
    let mut redactor = Redactor::new(fingerprint.clone());
    let mut out = doc.clone();
    redactor.document(&mut out);
    redactor.scrub_known_secrets(&mut out);
    out
}

struct Redactor {
    /// Every string hidden so far, for the final scrub.
    secrets: BTreeSet<String>,
    fingerprint: Fingerprint,
}

/// Keys whose string values are structure, never user data; the final scrub
/// leaves them alone so a short secret cannot garble addresses or actions.
const STRUCTURAL_KEYS: &[&str] = &[
    "actions",
    "address",
    "previous_address",
    "module_address",
    "mode",
    "type",
    "name",
    "provider_name",
    "provider_config_key",
    "format_version",
    "terraform_version",
    "action_reason",
    "deposed",
];

impl Redactor {
    fn new(fingerprint: Fingerprint) -> Redactor {
        Redactor {
            secrets: BTreeSet::new(),
            fingerprint,
        }
    }

    fn hide(&mut self, value: &Value) -> Value {
        if value.is_null() || is_marker(value) {
            return value.clone();
        }
        self.remember(value);
        sensitive_marker_with(&self.fingerprint, value)
    }

    fn remember(&mut self, value: &Value) {
        match value {
            Value::String(s) if !is_marker(value) => {
                self.secrets.insert(s.clone());
            }
            Value::Array(items) => items.iter().for_each(|it| self.remember(it)),
            Value::Object(map) => map.values().for_each(|it| self.remember(it)),
            _ => {}
        }
    }

    fn tree(&mut self, value: &Value, mask: &Value) -> Value {
        if mask == &Value::Bool(true) {
            return self.hide(value);
        }
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, child) in map {
                    let child_mask = mask.get(key.as_str()).unwrap_or(&Value::Null);
                    let redacted =
                        if is_credential_name(key) && !child.is_null() && !child.is_boolean() {
                            self.hide(child)
                        } else {
                            self.tree(child, child_mask)
                        };
                    out.insert(key.clone(), redacted);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(idx, child)| self.tree(child, mask.get(idx).unwrap_or(&Value::Null)))
                    .collect(),
            ),
            Value::String(s) if is_url_with_password(s) => self.hide(value),
            other => other.clone(),
        }
    }

    fn tree_in_place(&mut self, slot: Option<&mut Value>, mask: &Value) {
        if let Some(slot) = slot {
            *slot = self.tree(slot, mask);
        }
    }

    fn document(&mut self, doc: &mut Value) {
        for key in ["resource_changes", "resource_drift"] {
            if let Some(Value::Array(items)) = doc.get_mut(key) {
                for it in items {
                    self.change(it.get_mut("change"));
                }
            }
        }
        if let Some(Value::Array(items)) = doc.get_mut("deferred_changes") {
            for it in items {
                if let Some(rc) = it.get_mut("resource_change") {
                    self.change(rc.get_mut("change"));
                }
            }
        }
        if let Some(Value::Object(outputs)) = doc.get_mut("output_changes") {
            for change in outputs.values_mut() {
                self.change(Some(change));
            }
        }
        if let Some(planned) = doc.get_mut("planned_values") {
            self.state_values(planned);
        }
        if let Some(prior) = doc.get_mut("prior_state").and_then(|p| p.get_mut("values")) {
            self.state_values(prior);
        }
        let sensitive_vars: BTreeSet<String> =
            match doc.pointer("/configuration/root_module/variables") {
                Some(Value::Object(vars)) => vars
                    .iter()
                    .filter(|(_, v)| is_true(v.get("sensitive")))
                    .map(|(k, _)| k.clone())
                    .collect(),
                _ => BTreeSet::new(),
            };
        if let Some(Value::Object(vars)) = doc.get_mut("variables") {
            for (name, var) in vars.iter_mut() {
                let hide_all = sensitive_vars.contains(name) || is_credential_name(name);
                if let Some(value) = var.get_mut("value") {
                    *value = if hide_all {
                        self.hide(value)
                    } else {
                        self.tree(value, &Value::Null)
                    };
                }
            }
        }
        if let Some(config) = doc.get_mut("configuration") {
            if let Some(Value::Object(providers)) = config.get_mut("provider_config") {
                for provider in providers.values_mut() {
                    self.expressions(provider.get_mut("expressions"));
                }
            }
            if let Some(root) = config.get_mut("root_module") {
                self.config_module(root);
            }
        }
    }

    /// A change object: `before`/`after` with their masks.
    fn change(&mut self, change: Option<&mut Value>) {
        let Some(change) = change else { return };
        let before_mask = change
            .get("before_sensitive")
            .cloned()
            .unwrap_or(Value::Null);
        let after_mask = change
            .get("after_sensitive")
            .cloned()
            .unwrap_or(Value::Null);
        self.tree_in_place(change.get_mut("before"), &before_mask);
        self.tree_in_place(change.get_mut("after"), &after_mask);
    }

    /// `planned_values` or `prior_state.values`: outputs and module resources.
    fn state_values(&mut self, values: &mut Value) {
        if let Some(Value::Object(outputs)) = values.get_mut("outputs") {
            for output in outputs.values_mut() {
                let sensitive = is_true(output.get("sensitive"));
                if let Some(value) = output.get_mut("value") {
                    *value = if sensitive {
                        self.hide(value)
                    } else {
                        self.tree(value, &Value::Null)
                    };
                }
            }
        }
        if let Some(root) = values.get_mut("root_module") {
            self.state_module(root);
        }
    }

    fn state_module(&mut self, module: &mut Value) {
        if let Some(Value::Array(resources)) = module.get_mut("resources") {
            for res in resources {
                let mask = res.get("sensitive_values").cloned().unwrap_or(Value::Null);
                self.tree_in_place(res.get_mut("values"), &mask);
            }
        }
        if let Some(Value::Array(children)) = module.get_mut("child_modules") {
            for child in children {
                self.state_module(child);
            }
        }
    }

    fn config_module(&mut self, module: &mut Value) {
        if let Some(Value::Object(vars)) = module.get_mut("variables") {
            for (name, var) in vars.iter_mut() {
                let hide_all = is_true(var.get("sensitive")) || is_credential_name(name);
                if let Some(default) = var.get_mut("default") {
                    *default = if hide_all {
                        self.hide(default)
                    } else {
                        self.tree(default, &Value::Null)
                    };
                }
            }
        }
        if let Some(Value::Object(outputs)) = module.get_mut("outputs") {
            for output in outputs.values_mut() {
                let sensitive = is_true(output.get("sensitive"));
                if let Some(expr) = output.get_mut("expression") {
                    self.expression(expr, sensitive);
                }
            }
        }
        if let Some(Value::Array(resources)) = module.get_mut("resources") {
            for res in resources {
                self.expressions(res.get_mut("expressions"));
            }
        }
        if let Some(Value::Object(calls)) = module.get_mut("module_calls") {
            for call in calls.values_mut() {
                self.expressions(call.get_mut("expressions"));
                if let Some(child) = call.get_mut("module") {
                    self.config_module(child);
                }
            }
        }
    }

    /// An `expressions` object: attribute name → expression, or → list of
    /// nested block expression objects.
    fn expressions(&mut self, exprs: Option<&mut Value>) {
        let Some(Value::Object(exprs)) = exprs else {
            return;
        };
        for (name, expr) in exprs.iter_mut() {
            let credential = is_credential_name(name);
            match expr {
                Value::Array(blocks) => {
                    for block in blocks {
                        self.expressions(Some(block));
                    }
                }
                Value::Object(map)
                    if map.contains_key("constant_value") || map.contains_key("references") =>
                {
                    self.expression(expr, credential);
                }
                Value::Object(_) => self.expressions(Some(expr)),
                _ => {}
            }
        }
    }

    fn expression(&mut self, expr: &mut Value, hide_all: bool) {
        if let Some(constant) = expr.get_mut("constant_value") {
            *constant = if hide_all {
                self.hide(constant)
            } else {
                self.tree(constant, &Value::Null)
            };
        }
    }

    /// Replaces any remaining string equal to (or, for long secrets,
    /// containing) a value hidden elsewhere in the document.
    fn scrub_known_secrets(&mut self, doc: &mut Value) {
        let secrets: Vec<String> = self
            .secrets
            .iter()
            .filter(|s| s.chars().count() >= 4)
            .cloned()
            .collect();
        if secrets.is_empty() {
            return;
        }
        self.scrub(doc, &secrets, false);
    }

    fn scrub(&mut self, value: &mut Value, secrets: &[String], structural: bool) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    self.scrub(child, secrets, STRUCTURAL_KEYS.contains(&key.as_str()));
                }
            }
            Value::Array(items) => {
                for child in items {
                    self.scrub(child, secrets, structural);
                }
            }
            Value::String(s) if !structural => {
                let leaks = !s.starts_with(SENSITIVE_PREFIX)
                    && secrets.iter().any(|secret| {
                        s == secret || (secret.chars().count() >= 8 && s.contains(secret.as_str()))
                    });
                if leaks {
                    let hidden =
                        sensitive_marker_with(&self.fingerprint, &Value::String(s.clone()));
                    *value = hidden;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CANARIES: &[&str] = &["CANARY-s3cr3t-7f1c2a", "CANARY-s3cr3t-second-9b4e"];

    fn fixture(name: &str) -> &'static [u8] {
        match name {
            "null-create-1.11" => include_bytes!("../tests/fixtures/plan/null-create-1.11.json"),
            "null-changes-1.11" => include_bytes!("../tests/fixtures/plan/null-changes-1.11.json"),
            "null-destroy-1.11" => include_bytes!("../tests/fixtures/plan/null-destroy-1.11.json"),
            "quickstart-1.11" => include_bytes!("../tests/fixtures/plan/quickstart-1.11.json"),
            "null-create-1.0.3" => include_bytes!("../tests/fixtures/plan/null-create-1.0.3.json"),
            "null-changes-1.0.3" => {
                include_bytes!("../tests/fixtures/plan/null-changes-1.0.3.json")
            }
            "null-destroy-1.0.3" => {
                include_bytes!("../tests/fixtures/plan/null-destroy-1.0.3.json")
            }
            "quickstart-1.0.3" => include_bytes!("../tests/fixtures/plan/quickstart-1.0.3.json"),
            other => panic!("no fixture {other}"),
        }
    }

    const ALL_FIXTURES: &[&str] = &[
        "null-create-1.11",
        "null-changes-1.11",
        "null-destroy-1.11",
        "quickstart-1.11",
        "null-create-1.0.3",
        "null-changes-1.0.3",
        "null-destroy-1.0.3",
        "quickstart-1.0.3",
    ];

    fn summary(name: &str) -> PlanSummary {
        parse(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn actions(plan: &PlanSummary) -> Vec<(String, Action)> {
        plan.resources
            .iter()
            .map(|r| (r.address.clone(), r.action))
            .collect()
    }

    fn res<'a>(plan: &'a PlanSummary, address: &str) -> &'a ResourceChange {
        plan.resources
            .iter()
            .find(|r| r.address == address)
            .unwrap_or_else(|| panic!("no {address}"))
    }

    const REPLACE: Action = Action::Replace {
        create_before_destroy: false,
    };
    const REPLACE_CBD: Action = Action::Replace {
        create_before_destroy: true,
    };

    fn check_changes(name: &str, with_update: bool) {
        let plan = summary(name);
        let mut expect = vec![
            ("null_resource.cbd".to_string(), REPLACE_CBD),
            ("null_resource.created".to_string(), Action::Create),
            ("null_resource.deleted".to_string(), Action::Delete),
            ("null_resource.keep".to_string(), Action::NoOp),
            ("null_resource.replaced".to_string(), REPLACE),
            ("null_resource.secret".to_string(), REPLACE),
        ];
        if with_update {
            expect.push(("terraform_data.updated".to_string(), Action::Update));
        }
        assert_eq!(actions(&plan), expect, "{name}");
        let counts = plan.counts();
        assert_eq!(
            counts,
            Counts {
                add: 1,
                change: usize::from(with_update),
                destroy: 1,
                replace: 3,
                read: 0
            },
            "{name}"
        );
        assert!(plan.has_changes(), "{name}");
        assert!(!plan.is_destroy(), "{name}");
        assert!(!plan.errored);
        assert!(plan.drift.is_empty());

        let replaced = res(&plan, "null_resource.replaced");
        assert_eq!(
            replaced.action_reason.as_deref(),
            Some("replace_because_cannot_update")
        );
        assert_eq!(replaced.changed_attributes, ["id", "triggers"], "{name}");
        assert_eq!(replaced.replace_paths, vec![json!(["triggers"])], "{name}");
        assert_eq!(
            replaced.provider_name,
            "registry.terraform.io/hashicorp/null"
        );
        assert_eq!(replaced.mode, Mode::Managed);
        assert_eq!(replaced.type_, "null_resource");
        assert_eq!(replaced.name, "replaced");
        assert_eq!(
            res(&plan, "null_resource.keep").changed_attributes,
            Vec::<String>::new()
        );

        // The secret trigger: both sides hidden, and they differ (the value changed).
        let secret = res(&plan, "null_resource.secret");
        let before = &secret.before["triggers"];
        let after = &secret.after["triggers"];
        assert!(
            is_marker(&before["password"]) || is_marker(before),
            "{name}: {before}"
        );
        assert!(
            is_marker(&after["password"]) || is_marker(after),
            "{name}: {after}"
        );
        assert_ne!(before, after);
        assert!(secret.changed_attributes.contains(&"triggers".to_string()));

        let outs: Vec<(&str, Action, bool)> = plan
            .outputs
            .iter()
            .map(|o| (o.name.as_str(), o.action, o.sensitive))
            .collect();
        assert_eq!(
            outs,
            [
                ("plain_out", Action::Update, false),
                ("secret_out", Action::Update, true)
            ]
        );
        assert_eq!(plan.outputs[0].after, json!("v2"));
        assert!(is_marker(&plan.outputs[1].after));
    }

    #[test]
    fn parses_changes_1_11() {
        check_changes("null-changes-1.11", true);
        assert_eq!(summary("null-changes-1.11").format_version, "1.2");
        let plan = summary("null-changes-1.11");
        let updated = res(&plan, "terraform_data.updated");
        assert_eq!(updated.changed_attributes, ["input", "output"]);
        assert_eq!(updated.after["input"], json!("v2"));
    }

    #[test]
    fn parses_changes_1_0_3() {
        check_changes("null-changes-1.0.3", false);
        let plan = summary("null-changes-1.0.3");
        assert_eq!(plan.format_version, "0.2");
        assert_eq!(plan.terraform_version, "1.0.3");
    }

    #[test]
    fn parses_create_and_destroy() {
        for version in ["1.11", "1.0.3"] {
            let create = summary(&format!("null-create-{version}"));
            let n = create.resources.len();
            assert_eq!(
                create.counts(),
                Counts {
                    add: n,
                    ..Counts::default()
                },
                "{version}"
            );
            assert!(create.has_changes() && !create.is_destroy());
            let created = res(&create, "null_resource.keep");
            assert_eq!(created.before, Value::Null);
            assert_eq!(
                created.after_unknown,
                json!({"id": true, "triggers": {}}),
                "{version}"
            );
            assert_eq!(created.changed_attributes, ["id", "triggers"], "{version}");

            let destroy = summary(&format!("null-destroy-{version}"));
            assert_eq!(
                destroy.counts(),
                Counts {
                    destroy: n,
                    ..Counts::default()
                },
                "{version}"
            );
            assert!(destroy.is_destroy() && destroy.has_changes(), "{version}");
        }
    }

    #[test]
    fn parses_quickstart() {
        for version in ["1.11", "1.0.3"] {
            let plan = summary(&format!("quickstart-{version}"));
            let addrs = actions(&plan);
            assert!(
                addrs.contains(&(
                    "platform_postgres_database.orders".to_string(),
                    Action::Create
                )),
                "{version}: {addrs:?}"
            );
            let db = res(&plan, "platform_postgres_database.orders");
            assert_eq!(db.provider_name, "registry.terraform.io/platform/platform");
            assert_eq!(db.after["tier"], json!("small"));
            assert_eq!(db.after["monthly_cost"], json!(25));
            assert!(
                db.changed_attributes
                    .contains(&"connection_uri".to_string()),
                "{version}"
            );
            assert_eq!(db.after.get("connection_uri"), None, "unknown at plan time");
            assert_eq!(plan.counts().add, 1);
        }
    }

    #[test]
    fn canary_never_survives() {
        for name in ALL_FIXTURES {
            let raw = String::from_utf8_lossy(fixture(name));
            let plan = summary(name);
            let redacted = plan.redacted.to_string();
            let debug = format!("{plan:?}");
            let serialized = serde_json::to_string(&plan).unwrap_or_default();
            for canary in CANARIES {
                for (what, text) in [
                    ("redacted", &redacted),
                    ("debug", &debug),
                    ("serialized", &serialized),
                ] {
                    assert!(
                        !text.contains(canary),
                        "{name}: {canary} leaked into {what}"
                    );
                }
            }
            // The fixtures that hold a canary really do (so the test tests something).
            if name.starts_with("null-") {
                assert!(
                    CANARIES.iter().any(|c| raw.contains(c)),
                    "{name} has no canary"
                );
            }
        }
    }

    #[test]
    fn redacted_plan_keeps_its_shape() {
        let raw: Value = serde_json::from_slice(fixture("null-changes-1.11")).unwrap_or_default();
        let plan = summary("null-changes-1.11");
        // Same keys at the top, masks untouched, non-secret values untouched.
        let keys = |v: &Value| v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>());
        assert_eq!(keys(&raw), keys(&plan.redacted));
        assert_eq!(
            raw["resource_changes"][5]["change"]["after_sensitive"],
            plan.redacted["resource_changes"][5]["change"]["after_sensitive"]
        );
        assert_eq!(
            plan.redacted["variables"]["db_password"]["value"],
            sensitive_marker(&json!(CANARIES[1]))
        );
        assert_eq!(
            plan.redacted["planned_values"]["outputs"]["plain_out"]["value"],
            json!("v2")
        );
        // Redaction is idempotent.
        assert_eq!(redact_plan(&plan.redacted), plan.redacted);
    }

    #[test]
    fn marker_is_stable_and_order_independent() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":"x"}"#).unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"a":"x","b":1}"#).unwrap_or_default();
        assert_eq!(sensitive_marker(&a), sensitive_marker(&b));
        assert_ne!(sensitive_marker(&json!("x")), sensitive_marker(&json!("y")));
        let m = sensitive_marker(&json!("hunter2"));
        assert!(is_marker(&m), "{m}");
    }

    fn check_redact(value: Value, mask: Value, expect: Value) {
        assert_eq!(redact(&value, &mask), expect);
    }

    #[test]
    fn redact_rules() {
        let h = |v: Value| sensitive_marker(&v);
        // Marks.
        check_redact(json!("s"), json!(true), h(json!("s")));
        check_redact(
            json!({"a": "s", "b": "p"}),
            json!({"a": true}),
            json!({"a": h(json!("s")), "b": "p"}),
        );
        check_redact(
            json!({"l": ["p", "s"]}),
            json!({"l": [false, true]}),
            json!({"l": ["p", h(json!("s"))]}),
        );
        check_redact(
            json!({"a": {"x": 1}}),
            json!({"a": true}),
            json!({"a": h(json!({"x": 1}))}),
        );
        check_redact(json!(null), json!(true), json!(null));
        // Names that look like credentials, without marks.
        check_redact(
            json!({"admin_password": "p", "api_key": "k", "auth_token": "t", "private_key": "pk", "token_enabled": true, "password": null}),
            json!(null),
            json!({"admin_password": h(json!("p")), "api_key": h(json!("k")), "auth_token": h(json!("t")), "private_key": h(json!("pk")), "token_enabled": true, "password": null}),
        );
        // URLs carrying passwords, whatever the attribute is called.
        let uri = "postgres://app:hunter2@db.internal:5432/orders";
        check_redact(
            json!({"connection_uri": uri}),
            json!(null),
            json!({"connection_uri": h(json!(uri))}),
        );
        check_redact(
            json!({"endpoint": "https://x/?token=abc"}),
            json!(null),
            json!({"endpoint": h(json!("https://x/?token=abc"))}),
        );
        check_redact(
            json!({"endpoint": "postgres://app@db/orders"}),
            json!(null),
            json!({"endpoint": "postgres://app@db/orders"}),
        );
        // Idempotent.
        let once = redact(&json!({"password": "p"}), &json!(null));
        assert_eq!(redact(&once, &json!(null)), once);
    }

    #[test]
    fn redact_plan_covers_config_variables_and_prior_state() {
        // Format 0.1 (Terraform 1.0.0): no sensitive_values in prior_state, so
        // the secret is found through the change marks and scrubbed there too.
        let doc = json!({
            "format_version": "0.1",
            "terraform_version": "1.0.0",
            "variables": {"pw": {"value": "topsecret-1"}, "region": {"value": "eu"}},
            "prior_state": {"values": {"root_module": {"resources": [
                {"address": "x.a", "values": {"conn": "topsecret-1"}}
            ]}}},
            "resource_changes": [{
                "address": "x.a", "mode": "managed", "type": "x", "name": "a", "provider_name": "p",
                "change": {"actions": ["update"], "before": {"conn": "topsecret-1"}, "after": {"conn": "topsecret-2"},
                           "after_unknown": {}, "before_sensitive": {"conn": true}, "after_sensitive": {"conn": true}}
            }],
            "resource_drift": [{
                "address": "x.a", "mode": "managed", "type": "x", "name": "a", "provider_name": "p",
                "change": {"actions": ["update"], "before": {"conn": "c"}, "after": {"conn": "c"}}
            }],
            "configuration": {"root_module": {
                "variables": {"pw": {"sensitive": true, "default": "topsecret-0"}},
                "resources": [{"address": "x.b", "expressions": {
                    "password": {"constant_value": "literal-pw"},
                    "settings": [{"api_key": {"constant_value": "k-123"}, "size": {"constant_value": 3}}],
                    "conn": {"references": ["var.pw"]}
                }}],
                "module_calls": {"m": {"expressions": {"token": {"constant_value": "tok"}}, "module": {}}}
            }}
        });
        let plan = parse(doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let text = plan.redacted.to_string();
        for secret in [
            "topsecret-0",
            "topsecret-1",
            "topsecret-2",
            "literal-pw",
            "k-123",
            "\"tok\"",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(plan.redacted["variables"]["region"]["value"], json!("eu"));
        assert_eq!(
            plan.redacted.pointer(
                "/configuration/root_module/resources/0/expressions/settings/0/size/constant_value"
            ),
            Some(&json!(3))
        );
        assert_eq!(plan.resources[0].changed_attributes, ["conn"]);
        // 1.0.0 lists unchanged drift; it is dropped.
        assert!(plan.drift.is_empty());
    }

    #[test]
    fn drift_is_parsed() {
        let doc = json!({
            "format_version": "1.2",
            "resource_drift": [{
                "address": "x.a", "mode": "managed", "type": "x", "name": "a", "provider_name": "p",
                "change": {"actions": ["update"], "before": {"size": 1, "name": "n"}, "after": {"size": 2, "name": "n"}}
            }]
        });
        let plan = parse(doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.drift.len(), 1);
        assert_eq!(plan.drift[0].changed_attributes, ["size"]);
        assert!(plan.resources.is_empty() && !plan.has_changes());
    }

    fn check_version(version: Value) -> Result<PlanSummary, PlanError> {
        parse(
            json!({"format_version": version, "newer_key": {"x": 1}})
                .to_string()
                .as_bytes(),
        )
    }

    #[test]
    fn format_versions() {
        for ok in ["0.1", "0.2", "1.0", "1.2", "1.99"] {
            let plan = check_version(json!(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(plan.format_version, ok);
            assert!(!plan.has_changes());
        }
        let err = check_version(json!("2.0"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("format_version 2.0 is not supported"), "{err}");
        assert!(matches!(
            check_version(json!("x.1")),
            Err(PlanError::BadFormatVersion(_))
        ));
        assert!(matches!(
            check_version(json!(1)),
            Err(PlanError::BadFormatVersion(_))
        ));
        assert!(matches!(parse(b"{}"), Err(PlanError::BadFormatVersion(_))));
        assert!(matches!(parse(b"[1]"), Err(PlanError::Invalid(_))));
        assert!(matches!(parse(b"nope"), Err(PlanError::Json(_))));
    }

    #[test]
    fn unknown_actions_are_refused() {
        let doc = |actions: Value| {
            json!({"format_version": "1.2", "resource_changes": [{
                "address": "x.a", "mode": "managed", "type": "x", "name": "a", "provider_name": "p",
                "change": {"actions": actions, "before": null, "after": null}
            }]})
            .to_string()
        };
        let err = parse(doc(json!(["open"])).as_bytes());
        assert!(
            matches!(err, Err(PlanError::UnknownAction { .. })),
            "{err:?}"
        );
        let forget = parse(doc(json!(["forget"])).as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(forget.resources[0].action, Action::Delete);
    }
}
