//! Guardrails: checking one input value, and checking a change of value.
//!
//! The same checks run on an input's `default` at load time, so a catalog cannot ship a default
//! that its own guardrails reject.

use hcl::Value;

use crate::model::{Input, InputType, OnChange, PathStep, Violation};

impl Input {
    /// Guardrail check of one (fully known) value; returns every violation, not just the first.
    /// Also checks the value's shape against `ty`; elements of the wrong type are reported and
    /// then skipped by the other checks.
    pub fn check(&self, value: &Value) -> Vec<Violation> {
        let mut violations = Vec::new();
        let mut path = Vec::new();
        if !self.check_shape(&self.ty, value, &mut path, &mut violations) {
            return violations;
        }
        self.check_length(value, &mut violations);
        match value {
            Value::Array(elements) => {
                for (idx, element) in elements.iter().enumerate() {
                    path.push(PathStep::Index(idx));
                    self.check_scalar(element, &path, &mut violations);
                    path.pop();
                }
            }
            Value::Object(entries) => {
                for (key, element) in entries {
                    path.push(PathStep::Key(key.clone()));
                    self.check_scalar(element, &path, &mut violations);
                    path.pop();
                }
            }
            scalar => self.check_scalar(scalar, &path, &mut violations),
        }
        violations
    }

    /// Returns false when the value (or one of its elements) has the wrong shape.
    fn check_shape(
        &self,
        ty: &InputType,
        value: &Value,
        path: &mut Vec<PathStep>,
        violations: &mut Vec<Violation>,
    ) -> bool {
        let ok = match (ty, value) {
            (InputType::String, Value::String(_))
            | (InputType::Number, Value::Number(_))
            | (InputType::Bool, Value::Bool(_)) => true,
            (InputType::List(element) | InputType::Set(element), Value::Array(elements)) => {
                let mut all_ok = true;
                for (idx, item) in elements.iter().enumerate() {
                    path.push(PathStep::Index(idx));
                    all_ok &= self.check_shape(element, item, path, violations);
                    path.pop();
                }
                return all_ok;
            }
            (InputType::Map(element), Value::Object(entries)) => {
                let mut all_ok = true;
                for (key, item) in entries {
                    path.push(PathStep::Key(key.clone()));
                    all_ok &= self.check_shape(element, item, path, violations);
                    path.pop();
                }
                return all_ok;
            }
            _ => false,
        };
        if !ok {
            violations.push(Violation {
                path: path.clone(),
                message: format!("expected {ty}, got {}", kind_of(value)),
            });
        }
        ok
    }

    fn check_length(&self, value: &Value, violations: &mut Vec<Violation>) {
        let (length, what) = match value {
            Value::String(text) => (text.chars().count() as u64, "length"),
            Value::Array(elements) => (elements.len() as u64, "number of elements"),
            Value::Object(entries) => (entries.len() as u64, "number of entries"),
            _ => return,
        };
        if let Some(min_length) = self.min_length
            && length < min_length
        {
            violations.push(Violation {
                path: Vec::new(),
                message: format!("{what} {length} is less than the minimum of {min_length}"),
            });
        }
        if let Some(max_length) = self.max_length
            && length > max_length
        {
            violations.push(Violation {
                path: Vec::new(),
                message: format!("{what} {length} is greater than the maximum of {max_length}"),
            });
        }
    }

    /// Enum, pattern, min and max: on the value itself or on one collection element.
    fn check_scalar(&self, value: &Value, path: &[PathStep], violations: &mut Vec<Violation>) {
        let mut push = |message: String| {
            violations.push(Violation {
                path: path.to_vec(),
                message,
            });
        };
        if let Some(allowed) = &self.enum_values
            && !allowed.contains(value)
        {
            let allowed: Vec<String> = allowed.iter().map(fmt_value).collect();
            push(format!(
                "{} is not one of {}",
                fmt_value(value),
                allowed.join(", ")
            ));
        }
        match value {
            Value::String(text) => {
                if let Some(pattern) = &self.pattern
                    && !pattern.is_match(text)
                {
                    push(format!(
                        "{} does not match the pattern {}",
                        fmt_value(value),
                        pattern.as_str()
                    ));
                }
            }
            Value::Number(number) => {
                let Some(number) = number.as_f64() else {
                    return;
                };
                if let Some(min) = self.min
                    && number < min
                {
                    push(format!(
                        "{} is less than the minimum of {}",
                        fmt_value(value),
                        fmt_f64(min)
                    ));
                }
                if let Some(max) = self.max
                    && number > max
                {
                    push(format!(
                        "{} is greater than the maximum of {}",
                        fmt_value(value),
                        fmt_f64(max)
                    ));
                }
            }
            _ => {}
        }
    }

    /// For `on_change = reject` / `grow_only`: `Some(message)` naming the attribute, the old and
    /// the new value when the change is not allowed; `None` otherwise (always for `update` and
    /// `replace`). `grow_only`: numbers must not decrease, strings and bools may not change,
    /// lists/sets/maps must keep every old element/key (a map's kept keys may not change value).
    pub fn check_change(&self, old: &Value, new: &Value) -> Option<String> {
        let allowed = match self.on_change {
            OnChange::Update | OnChange::Replace => true,
            OnChange::Reject => old == new,
            OnChange::GrowOnly => grows(old, new),
        };
        if allowed {
            return None;
        }
        let shown = |value: &Value| {
            if self.sensitive {
                "(sensitive value)".to_string()
            } else {
                fmt_value(value)
            }
        };
        let rule = match self.on_change {
            OnChange::Reject => "it cannot be changed once created",
            _ => "it may only grow",
        };
        Some(format!(
            "attribute \"{}\" cannot change from {} to {}: {rule} (on_change = \"{}\")",
            self.name,
            shown(old),
            shown(new),
            self.on_change.as_str()
        ))
    }
}

fn grows(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Number(old), Value::Number(new)) => match (old.as_f64(), new.as_f64()) {
            (Some(old), Some(new)) => new >= old,
            _ => old == new,
        },
        (Value::Array(old), Value::Array(new)) => old.iter().all(|element| new.contains(element)),
        (Value::Object(old), Value::Object(new)) => {
            old.iter().all(|(key, value)| new.get(key) == Some(value))
        }
        (old, new) => old == new,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn fmt_f64(number: f64) -> String {
    match hcl::Number::from_f64(number) {
        Some(number) => number.to_string(),
        None => number.to_string(),
    }
}

/// A compact, single-line rendering of a value for messages: `"a"`, `3`, `["x", 1]`,
/// `{ k = true }`.
pub fn fmt_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("{text:?}"),
        Value::Array(elements) => {
            let elements: Vec<String> = elements.iter().map(fmt_value).collect();
            format!("[{}]", elements.join(", "))
        }
        Value::Object(entries) if entries.is_empty() => "{}".to_string(),
        Value::Object(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(key, value)| format!("{key} = {}", fmt_value(value)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(ty: InputType) -> Input {
        Input {
            name: "x".into(),
            ty,
            description: None,
            default: None,
            enum_values: None,
            pattern: None,
            min: None,
            max: None,
            min_length: None,
            max_length: None,
            on_change: OnChange::Update,
            sensitive: false,
        }
    }

    fn value(text: &str) -> Value {
        match hcl::from_str::<hcl::Map<String, Value>>(&format!("v = {text}")) {
            Ok(mut body) => body.swap_remove("v").unwrap_or(Value::Null),
            Err(err) => panic!("bad test value {text}: {err}"),
        }
    }

    /// Renders violations as `path: message` lines (`.` for the value itself).
    fn check(input: &Input, text: &str, expected: &str) {
        let rendered: Vec<String> = input
            .check(&value(text))
            .into_iter()
            .map(|violation| {
                let path: Vec<String> = violation
                    .path
                    .iter()
                    .map(|step| match step {
                        PathStep::Index(idx) => format!("[{idx}]"),
                        PathStep::Key(key) => format!("[{key:?}]"),
                    })
                    .collect();
                let path = if path.is_empty() {
                    ".".to_string()
                } else {
                    path.concat()
                };
                format!("{path}: {}", violation.message)
            })
            .collect();
        assert_eq!(rendered.join("\n"), expected);
    }

    #[test]
    fn shape() {
        let list = input(InputType::List(Box::new(InputType::Number)));
        check(&list, "[1, 2]", "");
        check(&list, "\"a\"", ".: expected list(number), got string");
        check(
            &list,
            "[1, \"a\", true]",
            "[1]: expected number, got string\n[2]: expected number, got bool",
        );
        let map = input(InputType::Map(Box::new(InputType::Bool)));
        check(
            &map,
            "{ a = true, b = 1 }",
            "[\"b\"]: expected bool, got number",
        );
        check(
            &input(InputType::String),
            "null",
            ".: expected string, got null",
        );
    }

    #[test]
    fn pattern_and_length() {
        let mut name = input(InputType::String);
        name.pattern = regex::Regex::new("^[a-z]+$").ok();
        name.min_length = Some(3);
        name.max_length = Some(5);
        check(&name, "\"abcd\"", "");
        check(
            &name,
            "\"Ab\"",
            ".: length 2 is less than the minimum of 3\n.: \"Ab\" does not match the pattern ^[a-z]+$",
        );
        check(
            &name,
            "\"abcdef\"",
            ".: length 6 is greater than the maximum of 5",
        );
        // Length counts chars, not bytes.
        name.pattern = None;
        check(&name, "\"éééé\"", "");
    }

    #[test]
    fn numbers() {
        let mut limit = input(InputType::Number);
        limit.min = Some(1.0);
        limit.max = Some(500.0);
        check(&limit, "20", "");
        check(&limit, "0", ".: 0 is less than the minimum of 1");
        check(
            &limit,
            "500.5",
            ".: 500.5 is greater than the maximum of 500",
        );
    }

    #[test]
    fn collection_elements() {
        let mut extensions = input(InputType::Set(Box::new(InputType::String)));
        extensions.enum_values = Some(vec![value("\"pgcrypto\""), value("\"citext\"")]);
        extensions.max_length = Some(2);
        check(&extensions, "[]", "");
        check(
            &extensions,
            "[\"citext\", \"postgis\", \"x\"]",
            ".: number of elements 3 is greater than the maximum of 2\n\
             [1]: \"postgis\" is not one of \"pgcrypto\", \"citext\"\n\
             [2]: \"x\" is not one of \"pgcrypto\", \"citext\"",
        );
        let mut sizes = input(InputType::Map(Box::new(InputType::Number)));
        sizes.min = Some(1.0);
        check(
            &sizes,
            "{ a = 1, b = 0 }",
            "[\"b\"]: 0 is less than the minimum of 1",
        );
    }

    fn check_change(on_change: OnChange, old: &str, new: &str, expected: Option<&str>) {
        let mut it = input(InputType::String);
        it.name = "size".into();
        it.on_change = on_change;
        assert_eq!(
            it.check_change(&value(old), &value(new)).as_deref(),
            expected
        );
    }

    #[test]
    fn changes() {
        check_change(OnChange::Update, "1", "2", None);
        check_change(OnChange::Replace, "1", "2", None);
        check_change(OnChange::Reject, "\"a\"", "\"a\"", None);
        check_change(
            OnChange::Reject,
            "\"a\"",
            "\"b\"",
            Some(
                "attribute \"size\" cannot change from \"a\" to \"b\": it cannot be changed once created (on_change = \"reject\")",
            ),
        );
        check_change(OnChange::GrowOnly, "10", "20", None);
        check_change(
            OnChange::GrowOnly,
            "20",
            "10",
            Some(
                "attribute \"size\" cannot change from 20 to 10: it may only grow (on_change = \"grow_only\")",
            ),
        );
        check_change(
            OnChange::GrowOnly,
            "\"a\"",
            "\"b\"",
            Some(
                "attribute \"size\" cannot change from \"a\" to \"b\": it may only grow (on_change = \"grow_only\")",
            ),
        );
        check_change(OnChange::GrowOnly, "[\"a\"]", "[\"b\", \"a\"]", None);
        check_change(
            OnChange::GrowOnly,
            "[\"a\", \"b\"]",
            "[\"a\"]",
            Some(
                "attribute \"size\" cannot change from [\"a\", \"b\"] to [\"a\"]: it may only grow (on_change = \"grow_only\")",
            ),
        );
        check_change(OnChange::GrowOnly, "{ a = 1 }", "{ a = 1, b = 2 }", None);
        check_change(
            OnChange::GrowOnly,
            "{ a = 1 }",
            "{ b = 2 }",
            Some(
                "attribute \"size\" cannot change from { a = 1 } to { b = 2 }: it may only grow (on_change = \"grow_only\")",
            ),
        );
    }

    #[test]
    fn sensitive_values_are_not_shown() {
        let mut it = input(InputType::String);
        it.on_change = OnChange::Reject;
        it.sensitive = true;
        assert_eq!(
            it.check_change(&value("\"a\""), &value("\"b\"")).as_deref(),
            Some(
                "attribute \"x\" cannot change from (sensitive value) to (sensitive value): it cannot be changed once created (on_change = \"reject\")"
            )
        );
    }
}
