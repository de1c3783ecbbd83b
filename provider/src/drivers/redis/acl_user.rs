//! `redis.acl_user`: an ACL user with a generated password and least
//! privilege.
//!
//! Inputs: `name`; `keys` (read-write key patterns), `read_keys` (read-only),
//! `channels` (Pub/Sub channel patterns), `commands` (`+@read`, `+get`,
//! `-@write`, …), `allow_all_keys` (false: every pattern must start with a
//! literal prefix; an offering sets it to allow `*`). State: those as they
//! really are, plus `password`, `acl_commands` (the server's own rendering
//! of the commands, to see a change made behind Terraform's back) and
//! `adopted`.
//!
//! Least privilege, checked at plan and again here: no `+@all`, `+@admin`,
//! `+@dangerous` or single administrative commands; `-@admin -@dangerous
//! -function` always close the rules; no pattern reaches the platform's
//! reserved `__platform` names; the `default` user is never managed.

use std::sync::Arc;

use super::super::common::{
    adopted, already_exists, boolean, check_marker, fail, found, generate_password, list_value,
    present, required_string, state_name, state_string, strings, unknown_inputs, unknown_keys,
};
use super::super::{Driver, DriverError, Found, Owner, Values};
use super::{Conn, message};

const KIND: &str = "redis.acl_user";
pub(super) const KEYS: &[&str] = &[
    "name",
    "keys",
    "read_keys",
    "channels",
    "commands",
    "allow_all_keys",
];

/// The marker rides on the user as a channel pattern with this prefix
/// (spaces of the marker text become `|`: a rule is one word).
const MARKER_CHANNEL: &str = "__platform|";
/// Names no pattern may reach (the marker channel, future platform keys).
const RESERVED: &str = "__platform";

/// Commands never handed out one by one (beyond the closing
/// `-@admin -@dangerous -function`): administrative or server-wide.
const REFUSED_COMMANDS: &[&str] = &[
    "acl",
    "config",
    "debug",
    "module",
    "shutdown",
    "monitor",
    "replicaof",
    "slaveof",
    "sync",
    "psync",
    "failover",
    "save",
    "bgsave",
    "bgrewriteaof",
    "flushall",
    "flushdb",
    "function",
    "script",
    "cluster",
    "client",
    "migrate",
    "restore",
    "keys",
    "swapdb",
    "lastsave",
];
const REFUSED_CATEGORIES: &[&str] = &["all", "admin", "dangerous", "scripting"];

pub struct AclUser {
    conn: Arc<Conn>,
}

impl AclUser {
    pub(super) fn new(conn: Arc<Conn>) -> AclUser {
        AclUser { conn }
    }
}

#[derive(Debug, Clone)]
struct Spec {
    name: String,
    keys: Vec<String>,
    read_keys: Vec<String>,
    channels: Vec<String>,
    commands: Vec<String>,
    allow_all_keys: bool,
}

fn spec(inputs: &Values) -> Result<Spec, String> {
    if let Some(first) = unknown_keys(inputs, KEYS).into_iter().next() {
        return Err(first);
    }
    let spec = Spec {
        name: required_string(inputs, "name")?,
        keys: strings(inputs, "keys")?,
        read_keys: strings(inputs, "read_keys")?,
        channels: strings(inputs, "channels")?,
        commands: strings(inputs, "commands")?,
        allow_all_keys: boolean(inputs, "allow_all_keys", false)?,
    };
    if let Some((_, why)) = refusals(inputs).into_iter().next() {
        return Err(why);
    }
    Ok(spec)
}

/// Plan-time checks of the known inputs, each about its input.
pub(super) fn validate(inputs: &Values) -> Vec<DriverError> {
    let mut errors = unknown_inputs(inputs, KEYS);
    for (input, why) in refusals(inputs) {
        errors.push(DriverError::at_input(why, input));
    }
    errors
}

/// What the least-privilege rules refuse among the inputs present.
fn refusals(inputs: &Values) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(value) = present(inputs, "name") {
        match value {
            hcl::Value::String(name) => {
                if let Err(why) = check_word("input `name`", name) {
                    out.push(("name", why));
                } else if name == "default" {
                    out.push((
                        "name",
                        "the `default` user is the server's own; it is never managed by the platform"
                            .to_owned(),
                    ));
                } else if name.starts_with("__") {
                    out.push((
                        "name",
                        format!("input `name` {name:?}: names starting with `__` are reserved"),
                    ));
                }
            }
            _ => out.push(("name", "input `name` must be a string".to_owned())),
        }
    }
    let all_keys = matches!(
        present(inputs, "allow_all_keys"),
        Some(hcl::Value::Bool(true))
    );
    for input in ["keys", "read_keys", "channels"] {
        let patterns = match strings(inputs, input) {
            Ok(p) => p,
            Err(why) => {
                out.push((input_name(input), why));
                continue;
            }
        };
        let open_allowed = all_keys && input != "channels";
        for pattern in patterns {
            if let Err(why) = check_pattern(input, &pattern, open_allowed) {
                out.push((input_name(input), why));
            }
        }
    }
    match strings(inputs, "commands") {
        Ok(commands) => {
            for command in commands {
                if let Err(why) = check_command(&command) {
                    out.push(("commands", why));
                }
            }
        }
        Err(why) => out.push(("commands", why)),
    }
    if let Some(value) = present(inputs, "allow_all_keys")
        && !matches!(value, hcl::Value::Bool(_))
    {
        out.push((
            "allow_all_keys",
            "input `allow_all_keys` must be a bool".to_owned(),
        ));
    }
    out
}

fn input_name(input: &str) -> &'static str {
    KEYS.iter()
        .find(|k| **k == input)
        .copied()
        .unwrap_or("name")
}

/// One ACL rule word: non-empty, no whitespace or control characters.
fn check_word(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{what} {text:?} must not contain spaces or control characters"
        ));
    }
    if text.len() > 256 {
        return Err(format!("{what} is longer than 256 bytes"));
    }
    Ok(())
}

/// A key or channel pattern: a literal prefix first (unless `open` allows
/// `*`), and none that could match the platform's reserved names.
fn check_pattern(input: &str, pattern: &str, open: bool) -> Result<(), String> {
    let what = format!("a pattern of input `{input}`");
    check_word(&what, pattern)?;
    let literal: &str = pattern
        .find(['*', '?', '[', '\\'])
        .map_or(pattern, |i| &pattern[..i]);
    let is_glob = literal.len() < pattern.len();
    if literal.is_empty() && !open {
        return Err(format!(
            "{what} {pattern:?} matches every name; start it with a prefix such as \"app:*\" (an offering may allow all keys with allow_all_keys)"
        ));
    }
    // (`*` itself, where the offering allows it, reaches everything anyway.)
    let reaches_reserved = if literal.is_empty() {
        false
    } else if is_glob {
        RESERVED.starts_with(literal) || literal.starts_with(RESERVED)
    } else {
        pattern.starts_with(RESERVED)
    };
    if reaches_reserved {
        return Err(format!(
            "{what} {pattern:?} reaches the platform's reserved names ({RESERVED}…)"
        ));
    }
    Ok(())
}

/// A command rule: `+cmd`, `-cmd`, `+cmd|sub`, `+@category`, `-@category`;
/// nothing administrative added.
fn check_command(rule: &str) -> Result<(), String> {
    let what = "an element of input `commands`";
    check_word(what, rule)?;
    let (sign, body) = rule.split_at(1);
    if sign != "+" && sign != "-" {
        return Err(format!(
            "{what} {rule:?} must start with + or - (e.g. \"+@read\", \"+get\")"
        ));
    }
    let (category, name) = match body.strip_prefix('@') {
        Some(c) => (true, c),
        None => (false, body),
    };
    let ok_chars = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    let command = name.split('|').next().unwrap_or("");
    let valid = if category {
        ok_chars(name)
    } else {
        name.split('|').count() <= 2 && name.split('|').all(ok_chars)
    };
    if !valid {
        return Err(format!(
            "{what} {rule:?} is not a command rule (lowercase command or @category)"
        ));
    }
    if sign == "+" {
        if category && REFUSED_CATEGORIES.contains(&name) {
            return Err(format!(
                "{what} {rule:?}: the @{name} category is never handed out"
            ));
        }
        if !category && REFUSED_COMMANDS.contains(&command) {
            return Err(format!(
                "{what} {rule:?}: {command} is an administrative command and is never handed out"
            ));
        }
    }
    Ok(())
}

/// The marker as a channel pattern.
fn marker_channel(owner: &Owner) -> Result<String, DriverError> {
    let text = super::super::common::marker(owner);
    if text.contains(['|', '*', '?', '[', ']', '\\']) {
        return Err(DriverError::new(format!(
            "{KIND}: the resource's identity {text:?} cannot be recorded on a Redis user"
        )));
    }
    Ok(format!("{MARKER_CHANNEL}{}", text.replace(' ', "|")))
}

/// What one `ACL GETUSER` says about a user.
#[derive(Debug, Default)]
struct User {
    flags: Vec<String>,
    passwords: Vec<String>,
    commands: String,
    keys: Vec<String>,
    read_keys: Vec<String>,
    channels: Vec<String>,
    /// The marker's text (spaces restored), when the user carries one.
    marker: Option<String>,
}

fn text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn texts(value: &redis::Value) -> Vec<String> {
    match value {
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().filter_map(text).collect()
        }
        other => text(other)
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    }
}

fn parse_user(value: redis::Value) -> Option<User> {
    let pairs: Vec<(String, redis::Value)> = match value {
        redis::Value::Nil => return None,
        redis::Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((text(k)?, v.clone())),
                _ => None,
            })
            .collect(),
        redis::Value::Map(items) => items
            .into_iter()
            .filter_map(|(k, v)| Some((text(&k)?, v)))
            .collect(),
        _ => return None,
    };
    let mut user = User::default();
    for (key, value) in pairs {
        match key.as_str() {
            "flags" => user.flags = texts(&value),
            "passwords" => user.passwords = texts(&value),
            "commands" => user.commands = text(&value).unwrap_or_default(),
            "keys" => {
                for pattern in texts(&value) {
                    if let Some(p) = pattern.strip_prefix("%R~") {
                        user.read_keys.push(p.to_owned());
                    } else if let Some(p) = pattern.strip_prefix('~') {
                        user.keys.push(p.to_owned());
                    } else {
                        // %W~ or %RW~: shown as such, so a change shows.
                        user.keys.push(pattern);
                    }
                }
            }
            "channels" => {
                for pattern in texts(&value) {
                    let p = pattern.strip_prefix('&').unwrap_or(&pattern).to_owned();
                    match p.strip_prefix(MARKER_CHANNEL) {
                        Some(marker) => user.marker = Some(marker.replace('|', " ")),
                        None => user.channels.push(p),
                    }
                }
            }
            _ => {}
        }
    }
    Some(user)
}

fn sha256_hex(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The rules that make the user exactly `spec` (one SETUSER: atomic).
fn rules(spec: &Spec, password: &str, marker: &str) -> Vec<String> {
    let mut rules = vec![
        "reset".to_owned(),
        "resetchannels".to_owned(),
        "on".to_owned(),
        format!(">{password}"),
    ];
    rules.extend(spec.keys.iter().map(|k| format!("~{k}")));
    rules.extend(spec.read_keys.iter().map(|k| format!("%R~{k}")));
    rules.push(format!("&{marker}"));
    rules.extend(spec.channels.iter().map(|c| format!("&{c}")));
    rules.push("-@all".to_owned());
    rules.extend(spec.commands.iter().cloned());
    rules.extend(["-@admin", "-@dangerous", "-function"].map(str::to_owned));
    rules
}

impl AclUser {
    async fn get_user(&self, name: &str) -> Result<Option<User>, DriverError> {
        let mut conn = self.conn.get().await?;
        let value: redis::Value = redis::cmd("ACL")
            .arg("GETUSER")
            .arg(name)
            .query_async(&mut conn)
            .await
            .map_err(|e| fail(KIND, name, message(&e)))?;
        Ok(parse_user(value))
    }

    async fn set_user(&self, name: &str, rules: &[String]) -> Result<(), DriverError> {
        let mut conn = self.conn.get().await?;
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(name)
            .arg(rules)
            .query_async::<()>(&mut conn)
            .await
            // The rules hold the password: never in the message.
            .map_err(|e| {
                let mut text = message(&e);
                for secret in rules.iter().filter_map(|r| r.strip_prefix('>')) {
                    text = text.replace(secret, "(password)");
                }
                fail(KIND, name, format!("ACL SETUSER failed: {text}"))
            })?;
        self.save(name).await
    }

    /// `ACL SAVE` when the server keeps its users in an ACL file, so a
    /// restart keeps them.
    async fn save(&self, name: &str) -> Result<(), DriverError> {
        let mut conn = self.conn.get().await?;
        let config: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("aclfile")
            .query_async(&mut conn)
            .await
            .map_err(|e| fail(KIND, name, message(&e)))?;
        if config.get(1).is_some_and(|f| !f.is_empty()) {
            redis::cmd("ACL")
                .arg("SAVE")
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| fail(KIND, name, format!("ACL SAVE: {}", message(&e))))?;
        }
        Ok(())
    }

    /// The state for `user`: `prior` supplies what cannot be read back.
    fn state(name: &str, user: &User, prior: Option<&Values>, adopted: bool) -> Values {
        let prior_password = prior.and_then(|p| state_string(p, "password"));
        // A password changed behind Terraform's back is a lost one: the next
        // update generates a new one.
        let password = prior_password.filter(|p| user.passwords.contains(&sha256_hex(p)));
        let prior_commands = prior.and_then(|p| state_string(p, "acl_commands"));
        let enabled = user.flags.iter().any(|f| f == "on");
        let commands = match (prior, prior_commands) {
            // Switched off behind Terraform's back: a change, which the next
            // update undoes (its rules say `on`).
            _ if !enabled => list_value(&["(disabled outside Terraform)".to_owned()]),
            (Some(p), Some(seen)) if seen == user.commands => p
                .get("commands")
                .cloned()
                .unwrap_or(hcl::Value::Array(Vec::new())),
            // Changed outside Terraform (or never seen): what the server says.
            _ => list_value(&[format!("(set outside Terraform) {}", user.commands)]),
        };
        let mut state = Values::new();
        state.insert("name".into(), hcl::Value::String(name.to_owned()));
        state.insert("keys".into(), list_value(&user.keys));
        state.insert("read_keys".into(), list_value(&user.read_keys));
        state.insert("channels".into(), list_value(&user.channels));
        state.insert("commands".into(), commands);
        state.insert(
            "allow_all_keys".into(),
            prior
                .and_then(|p| p.get("allow_all_keys").cloned())
                .unwrap_or(hcl::Value::Bool(false)),
        );
        state.insert("enabled".into(), hcl::Value::Bool(enabled));
        state.insert(
            "acl_commands".into(),
            hcl::Value::String(user.commands.clone()),
        );
        state.insert(
            "password".into(),
            password.map_or(hcl::Value::Null, hcl::Value::String),
        );
        state.insert("adopted".into(), hcl::Value::Bool(adopted));
        state
    }

    /// Sets the user to `spec` and returns its state as the server has it.
    async fn apply(
        &self,
        owner: &Owner,
        spec: &Spec,
        password: &str,
        adopted: bool,
        inputs: &Values,
    ) -> Result<Values, DriverError> {
        let marker = marker_channel(owner)?;
        self.set_user(&spec.name, &rules(spec, password, &marker))
            .await?;
        let user = self
            .get_user(&spec.name)
            .await?
            .ok_or_else(|| fail(KIND, &spec.name, "the user vanished right after it was set"))?;
        // What was asked is what the server now has: the state keeps the
        // inputs' spelling, and the server's rendering to compare later.
        let mut seen = Values::new();
        seen.insert("password".into(), hcl::Value::String(password.to_owned()));
        seen.insert(
            "acl_commands".into(),
            hcl::Value::String(user.commands.clone()),
        );
        seen.insert(
            "commands".into(),
            inputs
                .get("commands")
                .cloned()
                .unwrap_or(hcl::Value::Array(Vec::new())),
        );
        seen.insert(
            "allow_all_keys".into(),
            hcl::Value::Bool(spec.allow_all_keys),
        );
        Ok(Self::state(&spec.name, &user, Some(&seen), adopted))
    }
}

#[async_trait::async_trait]
impl Driver for AclUser {
    async fn create(&self, owner: &Owner, inputs: &Values) -> Result<Values, DriverError> {
        let spec = spec(inputs).map_err(|m| DriverError::new(format!("{KIND}: {m}")))?;
        match self.find(owner, inputs).await? {
            Found::Missing => {}
            // This resource's own user (a re-run after a crash): converge it.
            Found::Ours(state) | Found::OtherGeneration(state) | Found::Unfinished(state) => {
                return self.update(owner, &state, inputs).await;
            }
            Found::Foreign(why) => return Err(why),
        }
        let password = generate_password()?;
        self.apply(owner, &spec, &password, false, inputs).await
    }

    async fn read(&self, state_in: &Values) -> Result<Option<Values>, DriverError> {
        let name = state_name(KIND, state_in)?;
        Ok(self
            .get_user(&name)
            .await?
            .map(|user| Self::state(&name, &user, Some(state_in), adopted(state_in))))
    }

    async fn update(
        &self,
        owner: &Owner,
        state_in: &Values,
        inputs: &Values,
    ) -> Result<Values, DriverError> {
        let old = state_name(KIND, state_in)?;
        let spec = spec(inputs).map_err(|m| fail(KIND, &old, m))?;
        if spec.name != old {
            return Err(fail(
                KIND,
                &old,
                format!(
                    "an ACL user cannot be renamed to \"{}\"; replace it",
                    spec.name
                ),
            ));
        }
        let Some(user) = self.get_user(&old).await? else {
            return Err(fail(
                KIND,
                &old,
                format!("ACL user \"{old}\" no longer exists"),
            ));
        };
        check_marker(
            KIND,
            "ACL user",
            &old,
            user.marker.as_deref(),
            owner,
            adopted(state_in),
        )?;
        let password = match state_string(state_in, "password") {
            Some(p) if user.passwords.contains(&sha256_hex(&p)) => p,
            _ => generate_password()?,
        };
        self.apply(owner, &spec, &password, adopted(state_in), inputs)
            .await
    }

    async fn delete(&self, owner: &Owner, state_in: &Values) -> Result<(), DriverError> {
        let name = state_name(KIND, state_in)?;
        let Some(user) = self.get_user(&name).await? else {
            return Ok(());
        };
        check_marker(
            KIND,
            "ACL user",
            &name,
            user.marker.as_deref(),
            owner,
            adopted(state_in),
        )?;
        let mut conn = self.conn.get().await?;
        redis::cmd("ACL")
            .arg("DELUSER")
            .arg(&name)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| fail(KIND, &name, message(&e)))?;
        self.save(&name).await
    }

    async fn import(&self, owner: &Owner, inputs: &Values) -> Result<Option<Values>, DriverError> {
        let name = state_name(KIND, inputs)?;
        if self.get_user(&name).await?.is_none() {
            return Ok(None);
        }
        if name == "default" {
            return Err(fail(KIND, &name, "the `default` user is never managed"));
        }
        let marker = marker_channel(owner)?;
        self.set_user(&name, &[format!("&{marker}")]).await?;
        Ok(self
            .get_user(&name)
            .await?
            .map(|user| Self::state(&name, &user, None, true)))
    }

    async fn find(&self, owner: &Owner, inputs: &Values) -> Result<Found, DriverError> {
        let name = state_name(KIND, inputs)?;
        let Some(user) = self.get_user(&name).await? else {
            return Ok(Found::Missing);
        };
        let state = Self::state(&name, &user, None, false);
        Ok(match user.marker.as_deref() {
            None => Found::Foreign(already_exists(KIND, "ACL user", &name)),
            marker => found(KIND, "ACL user", &name, marker, owner, state),
        })
    }

    fn forget_secrets(&self, state: &mut Values) -> bool {
        state.insert("password".into(), hcl::Value::Null);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, hcl::Value)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn list(items: &[&str]) -> hcl::Value {
        hcl::Value::Array(items.iter().map(|s| hcl::Value::from(*s)).collect())
    }

    #[test]
    fn least_privilege_is_checked_at_plan() {
        let refused = |pairs: &[(&str, hcl::Value)]| -> Vec<Option<String>> {
            validate(&inputs(pairs)).into_iter().map(|e| e.1).collect()
        };
        let ok = inputs(&[
            ("name", "orders".into()),
            ("keys", list(&["orders:*"])),
            ("read_keys", list(&["shared:*"])),
            ("channels", list(&["orders.events"])),
            (
                "commands",
                list(&["+@read", "+@write", "+get", "-del", "+object|encoding"]),
            ),
        ]);
        assert!(validate(&ok).is_empty(), "{:?}", validate(&ok));
        for (pairs, input) in [
            (vec![("name", hcl::Value::from("default"))], "name"),
            (vec![("name", "__x".into())], "name"),
            (vec![("name", "a b".into())], "name"),
            (vec![("keys", list(&["*"]))], "keys"),
            (vec![("keys", list(&["_*"]))], "keys"),
            (vec![("keys", list(&["__platform|x"]))], "keys"),
            (vec![("read_keys", list(&["?x"]))], "read_keys"),
            (vec![("channels", list(&["*"]))], "channels"),
            (vec![("channels", list(&["__plat*"]))], "channels"),
            (vec![("commands", list(&["+@all"]))], "commands"),
            (vec![("commands", list(&["+@admin"]))], "commands"),
            (vec![("commands", list(&["+@dangerous"]))], "commands"),
            (vec![("commands", list(&["+config"]))], "commands"),
            (vec![("commands", list(&["+acl|setuser"]))], "commands"),
            (vec![("commands", list(&["+flushall"]))], "commands"),
            (vec![("commands", list(&["allcommands"]))], "commands"),
            (vec![("commands", list(&["+get ~*"]))], "commands"),
            (vec![("commands", list(&["+GET"]))], "commands"),
            (
                vec![("keys", list(&["a:*"])), ("nope", true.into())],
                "nope",
            ),
        ] {
            assert_eq!(refused(&pairs), vec![Some(input.to_owned())], "{pairs:?}");
        }
        // All keys only when the offering says so; channels never.
        assert!(
            validate(&inputs(&[
                ("keys", list(&["*"])),
                ("allow_all_keys", true.into())
            ]))
            .is_empty()
        );
        assert_eq!(
            refused(&[("channels", list(&["*"])), ("allow_all_keys", true.into())]),
            vec![Some("channels".to_owned())]
        );
        // Removing is always fine.
        assert!(validate(&inputs(&[("commands", list(&["-@admin", "-config"]))])).is_empty());
    }

    #[test]
    fn rules_close_with_the_refusals_and_carry_the_marker() {
        let spec = Spec {
            name: "u".into(),
            keys: vec!["a:*".into()],
            read_keys: vec!["b:*".into()],
            channels: vec!["c".into()],
            commands: vec!["+@read".into()],
            allow_all_keys: false,
        };
        let owner = Owner {
            offering: "cache_user".into(),
            resource_id: "orders~1f2e".into(),
            primitive: "user".into(),
            generation: Some("9a".into()),
        };
        let marker = marker_channel(&owner).expect("marker");
        assert!(!marker.contains(' '));
        let rules = rules(&spec, "pw", &marker);
        assert_eq!(
            rules,
            [
                "reset",
                "resetchannels",
                "on",
                ">pw",
                "~a:*",
                "%R~b:*",
                &format!("&{marker}"),
                "&c",
                "-@all",
                "+@read",
                "-@admin",
                "-@dangerous",
                "-function",
            ]
        );
    }
}
