//! Policy input conversion: `serde_json::Value` → `regorus::Value`.
//!
//! The input of a large plan is mostly `plan.resource_changes`: thousands of
//! objects sharing a few dozen keys. Going through serde's `Deserialize`
//! builds every key string anew and grows every object one insert at a time;
//! here keys are interned (one allocation per distinct key per conversion),
//! objects are built from serde_json's already-sorted entries, and long
//! arrays are converted in parallel chunks.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;

use regorus::{Rc, Value};
use serde_json::Value as Json;

/// Arrays at least this long are split across threads.
const PARALLEL_MIN_LEN: usize = 2048;

/// Converts `json` into a regorus value with the same meaning as
/// `regorus::Value::deserialize(json)`.
#[cfg(test)]
pub fn to_rego(json: &Json) -> Value {
    to_rego_pruned(json, &PlanKeys::All)
}

/// One JSON value (a part of the input) as a regorus value, by the same
/// conversion as the whole input: on one thread (parts are small), without
/// asking the OS for the core count.
pub fn json_to_rego(json: &Json) -> Value {
    Converter::new(1).value(json)
}

/// Which keys of `input.plan` the policies can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanKeys {
    /// Some policy reads `input` or `input.plan` as a whole (or through a
    /// computed key): pass everything.
    All,
    /// Every reference names its `input.plan.<key>` literally.
    Only(BTreeSet<String>),
}

impl PlanKeys {
    fn keeps(&self, key: &str) -> bool {
        match self {
            PlanKeys::All => true,
            PlanKeys::Only(keys) => keys.contains(key),
        }
    }
}

/// Like [`to_rego`], leaving out the top-level keys of `json["plan"]` that
/// `keys` does not keep. A plan's `planned_values`, `prior_state` and
/// `configuration` repeat most of `resource_changes`; policies that never
/// name them need not pay for converting them.
pub fn to_rego_pruned(json: &Json, keys: &PlanKeys) -> Value {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let mut converter = Converter::new(threads);
    match (json, keys) {
        (Json::Object(top), PlanKeys::Only(_)) => converter.object(top, |c, key, value| {
            Some(match value {
                Json::Object(plan) if key == "plan" => c.object(plan, |c, key, value| {
                    keys.keeps(key).then(|| c.value(value))
                }),
                other => c.value(other),
            })
        }),
        _ => converter.value(json),
    }
}

/// The `input.plan` keys that Rego `sources` can reach, found lexically and
/// conservatively: every occurrence of the identifier `input` (outside
/// strings and comments) must be followed by `.plan.<key>` or by
/// `.<other>` (a top-level key other than `plan`); anything else (`input`
/// alone, `input[...]`, `input.plan` alone or indexed, `import input`)
/// means the whole plan.
pub fn referenced_plan_keys<'s>(sources: impl IntoIterator<Item = &'s str>) -> PlanKeys {
    let mut keys = BTreeSet::new();
    for source in sources {
        let code = code_only(source);
        let bytes = code.as_bytes();
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut at = 0;
        while let Some(found) = code[at..].find("input") {
            let start = at + found;
            let end = start + "input".len();
            at = end;
            if (start > 0 && is_ident(bytes[start - 1]))
                || bytes.get(end).is_some_and(|b| is_ident(*b))
            {
                continue; // part of a longer identifier
            }
            let rest = &code[end..];
            let Some(first) = path_segment(rest) else {
                return PlanKeys::All;
            };
            if first != "plan" {
                continue;
            }
            match path_segment(&rest[1 + first.len()..]) {
                Some(key) => {
                    keys.insert(key.to_owned());
                }
                None => return PlanKeys::All,
            }
        }
    }
    PlanKeys::Only(keys)
}

/// `.ident` at the start of `s` (no spaces: Rego's dot access is tight).
fn path_segment(s: &str) -> Option<&str> {
    let tail = s.strip_prefix('.')?;
    let len = tail
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    (len > 0 && !tail.as_bytes()[0].is_ascii_digit()).then(|| &tail[..len])
}

/// `source` with string literals and comments blanked out.
pub fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                out.push(' ');
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                    out.push(' ');
                }
            }
            '"' => {
                out.push(' ');
                while let Some(c) = chars.next() {
                    out.push(' ');
                    match c {
                        // An escape hides the next character (say, a quote).
                        '\\' if chars.next().is_some() => out.push(' '),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                out.push(' ');
                for c in chars.by_ref() {
                    out.push(' ');
                    if c == '`' {
                        break;
                    }
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Containers of scalars up to this many entries are shared between equal
/// occurrences (labels, tags, sensitivity maps, action lists).
const LEAF_MAX_LEN: usize = 16;

struct Converter<'a> {
    keys: HashMap<&'a str, Rc<str>>,
    /// Small all-scalar containers already converted, by content.
    leaves: HashMap<Leaf<'a>, Value>,
    /// Threads this converter may still use for long arrays (1: none).
    threads: usize,
}

/// A small object or array of scalars, hashed and compared by content.
struct Leaf<'a>(&'a Json);

impl PartialEq for Leaf<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Leaf<'_> {}

impl std::hash::Hash for Leaf<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        fn scalar<H: std::hash::Hasher>(v: &Json, h: &mut H) {
            match v {
                Json::Null => h.write_u8(0),
                Json::Bool(b) => h.write_u8(1 + u8::from(*b)),
                // Equal numbers have equal parts (serde_json compares them so).
                Json::Number(n) => {
                    h.write_u8(3);
                    h.write_u64(n.as_u64().unwrap_or(0));
                    h.write_i64(n.as_i64().unwrap_or(0));
                    h.write_u64(n.as_f64().map(f64::to_bits).unwrap_or(0));
                }
                Json::String(s) => {
                    h.write_u8(4);
                    h.write(s.as_bytes());
                    h.write_u8(0xff);
                }
                // Never in a leaf; hash the kind only (equality still decides).
                Json::Array(_) => h.write_u8(5),
                Json::Object(_) => h.write_u8(6),
            }
        }
        match self.0 {
            Json::Array(items) => {
                h.write_u8(7);
                h.write_usize(items.len());
                items.iter().for_each(|v| scalar(v, h));
            }
            Json::Object(map) => {
                h.write_u8(8);
                h.write_usize(map.len());
                for (k, v) in map {
                    h.write(k.as_bytes());
                    h.write_u8(0xff);
                    scalar(v, h);
                }
            }
            other => scalar(other, h),
        }
    }
}

fn is_scalar(json: &Json) -> bool {
    !matches!(json, Json::Array(_) | Json::Object(_))
}

/// Strings longer than this (addresses, ids, ARNs) are taken to be unique:
/// a container holding one is not worth looking up.
const LEAF_MAX_STR: usize = 32;

/// What a value is to the sharing: a container of at most [`LEAF_MAX_LEN`]
/// scalars (or none) is a leaf, shared by content unless it holds a long
/// string; anything else is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeafKind {
    NotLeaf,
    Unique,
    Shared,
}

fn leaf_kind(json: &Json) -> LeafKind {
    // One pass: a nested container ends it; a long string makes it unique.
    let mut kind = LeafKind::Shared;
    let mut visit = |v: &Json| match v {
        Json::Array(_) | Json::Object(_) => false,
        Json::String(s) if s.len() > LEAF_MAX_STR => {
            kind = LeafKind::Unique;
            true
        }
        _ => true,
    };
    let all_scalar = match json {
        Json::Array(items) => items.len() <= LEAF_MAX_LEN && items.iter().all(&mut visit),
        Json::Object(map) => map.len() <= LEAF_MAX_LEN && map.values().all(&mut visit),
        _ => false,
    };
    if all_scalar { kind } else { LeafKind::NotLeaf }
}

impl<'a> Converter<'a> {
    fn new(threads: usize) -> Converter<'a> {
        Converter {
            keys: HashMap::default(),
            leaves: HashMap::default(),
            threads,
        }
    }

    /// Regorus values are immutable and shared by reference count, so equal
    /// parts of the input can be one value: small containers of scalars are
    /// converted once per content, and an object's container entries equal
    /// to an earlier entry of the same object (`before` and `after` of an
    /// unchanged resource) reuse that entry's value. Less to allocate, to
    /// touch and to free; the same meaning.
    fn value(&mut self, json: &'a Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => number(n),
            Json::String(s) => Value::String(Rc::from(s.as_str())),
            _ if leaf_kind(json) == LeafKind::Shared => {
                if let Some(v) = self.leaves.get(&Leaf(json)) {
                    return v.clone();
                }
                let v = self.container(json);
                self.leaves.insert(Leaf(json), v.clone());
                v
            }
            _ => self.container(json),
        }
    }

    fn container(&mut self, json: &'a Json) -> Value {
        match json {
            Json::Array(items) => self.array(items),
            Json::Object(map) if map.len() > LEAF_MAX_LEN => {
                self.object(map, |c, _, value| Some(c.value(value)))
            }
            Json::Object(map) => {
                // Earlier container entries of this object, to share equal ones.
                let mut seen: Vec<(&'a Json, Value)> = Vec::new();
                self.object(map, move |c, _, value| {
                    if is_scalar(value) || leaf_kind(value) != LeafKind::NotLeaf {
                        return Some(c.value(value));
                    }
                    if let Some((_, v)) = seen.iter().find(|(j, _)| *j == value) {
                        return Some(v.clone());
                    }
                    let v = c.value(value);
                    seen.push((value, v.clone()));
                    Some(v)
                })
            }
            other => self.value(other),
        }
    }

    /// An object of the entries of `map` that `convert` turns into values.
    fn object(
        &mut self,
        map: &'a serde_json::Map<String, Json>,
        mut convert: impl FnMut(&mut Self, &'a str, &'a Json) -> Option<Value>,
    ) -> Value {
        // serde_json's map iterates in key order, which is regorus's order
        // for string keys too; collecting a sorted sequence into a BTreeMap
        // is a bulk build, not n searches.
        let entries: BTreeMap<Value, Value> = map
            .iter()
            .filter_map(|(key, value)| {
                let value = convert(self, key, value)?;
                Some((Value::String(self.key(key)), value))
            })
            .collect();
        if entries.is_empty() {
            Value::new_object()
        } else {
            Value::from(entries)
        }
    }

    fn key(&mut self, key: &'a str) -> Rc<str> {
        self.keys
            .entry(key)
            .or_insert_with(|| Rc::from(key))
            .clone()
    }

    fn array(&mut self, items: &'a [Json]) -> Value {
        if self.threads < 2 || items.len() < PARALLEL_MIN_LEN {
            return Value::from(items.iter().map(|i| self.value(i)).collect::<Vec<_>>());
        }
        let threads = self.threads;
        // Only the outermost long array fans out; its chunks run sequentially inside.
        self.threads = 1;
        let chunk = items.len().div_ceil(threads);
        let parts: Vec<Vec<Value>> = std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(chunk)
                .skip(1)
                .map(|part| {
                    scope.spawn(move || {
                        let mut converter = Converter::new(1);
                        part.iter().map(|i| converter.value(i)).collect::<Vec<_>>()
                    })
                })
                .collect();
            let first: Vec<Value> = items[..chunk.min(items.len())]
                .iter()
                .map(|i| self.value(i))
                .collect();
            let mut parts = vec![first];
            for handle in handles {
                // A conversion cannot panic short of allocation failure;
                // resume the panic on this thread if one ever does.
                parts.push(
                    handle
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                );
            }
            parts
        });
        self.threads = threads;
        let mut all = Vec::with_capacity(items.len());
        for part in parts {
            all.extend(part);
        }
        Value::from(all)
    }
}

fn number(n: &serde_json::Number) -> Value {
    if let Some(u) = n.as_u64() {
        return Value::from(u);
    }
    if let Some(i) = n.as_i64() {
        return Value::from(i);
    }
    // Fractions and big numbers (rare) take regorus's own path, which keeps
    // their exact decimal value rather than a lossy f64.
    <Value as serde::Deserialize>::deserialize(&Json::Number(n.clone()))
        .unwrap_or_else(|_| n.as_f64().map(Value::from).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn same_as_deserialize(json: &Json) {
        let expected = Value::deserialize(json).expect("deserialize");
        assert_eq!(to_rego(json), expected, "for {json}");
    }

    #[test]
    fn matches_serde_deserialize() {
        same_as_deserialize(&json!(null));
        same_as_deserialize(&json!({}));
        same_as_deserialize(&json!([]));
        same_as_deserialize(&json!({
            "b": [1, -2, 3.25, 0.1, 1e300, 18446744073709551615u64, -9223372036854775808i64],
            "a": {"z": true, "y": null, "x": "s", "": {"nested": []}},
            "ünïcode": "✓",
        }));
        // Long arrays take the parallel path; order and content must hold.
        let long: Vec<Json> = (0..5000)
            .map(|i| json!({"address": format!("r{i}"), "i": i, "tags": {"team": "a"}}))
            .collect();
        same_as_deserialize(&json!({"plan": {"resource_changes": long}}));
    }

    #[test]
    fn equal_parts_are_shared_and_still_mean_the_same() {
        let attrs = json!({"name": "a", "labels": {"team": "t"}, "list": [1, 2]});
        let mut changes = Vec::new();
        for i in 0..3000 {
            changes.push(json!({
                "address": format!("r{i}"),
                "change": {"actions": ["no-op"], "before": attrs, "after": attrs,
                           "before_sensitive": {"password": true}, "after_sensitive": {"password": true}},
            }));
        }
        // Look-alike leaves that are not equal must stay apart.
        changes.push(
            json!({"a": {"x": 1}, "b": {"x": 1.0}, "c": {"x": "1"}, "d": [1, "1"],
                            "e": ["1", 1], "f": {"x": true}, "g": {"x": null}, "h": {"x": 1},
                   "i": {}, "j": [], "k": {},
                   "l": {"address": "module.a.platform_postgres_database.main"},
                   "m": {"address": "module.a.platform_postgres_database.main"}}),
        );
        let input = json!({"plan": {"resource_changes": changes}});
        same_as_deserialize(&input);
        let v = to_rego(&input);
        let rcs = &v["plan"]["resource_changes"];
        let same = |a: &Value, b: &Value| match (a, b) {
            (Value::Object(a), Value::Object(b)) => Rc::ptr_eq(a, b),
            (Value::Array(a), Value::Array(b)) => Rc::ptr_eq(a, b),
            _ => false,
        };
        let c0 = &rcs[0]["change"];
        assert!(
            same(&c0["before"], &c0["after"]),
            "before and after share one value"
        );
        assert!(same(&c0["before_sensitive"], &c0["after_sensitive"]));
        assert!(
            same(&c0["actions"], &rcs[1]["change"]["actions"]),
            "leaves are shared"
        );
        let odd = &rcs[3000];
        assert!(same(&odd["a"], &odd["h"]));
        assert!(same(&odd["i"], &odd["k"]), "one empty object");
        assert_eq!(odd["a"], odd["b"], "1 and 1.0 are one number in Rego");
        // A long string is taken to be unique: not looked up, converted the same.
        assert!(!same(&odd["l"], &odd["m"]));
        assert_eq!(odd["l"], odd["m"]);
        for (x, y) in [("a", "c"), ("d", "e"), ("f", "g"), ("i", "j")] {
            assert!(!same(&odd[x], &odd[y]), "{x} and {y} differ");
            assert_ne!(odd[x], odd[y]);
        }
    }

    fn only(keys: &[&str]) -> PlanKeys {
        PlanKeys::Only(keys.iter().map(|k| (*k).to_owned()).collect())
    }

    #[test]
    fn referenced_plan_keys_are_found_conservatively() {
        let src = "package platform.x\n\
            # input alone in a comment does not count, nor input[0]\n\
            deny_a contains m if { some rc in input.plan.resource_changes; m := rc.address }\n\
            deny_b contains m if { input.run.workspace.name == \"input\"; m := input.plan.variables.x.value }\n\
            my_input := 1\n\
            deny_c contains m if { m := sprintf(\"%v input[x]\", [input.cost.monthly_delta]) }\n";
        assert_eq!(
            referenced_plan_keys([src]),
            only(&["resource_changes", "variables"])
        );
        for whole in [
            "x := input",
            "x := input[\"plan\"]",
            "x := input.plan",
            "x := input.plan[k]",
            "x := input .plan.resource_changes",
            "import input",
            "import input.plan",
            "x := walk(input)",
        ] {
            assert_eq!(referenced_plan_keys([src, whole]), PlanKeys::All, "{whole}");
        }
        // A string containing a quote and an escape does not hide what follows.
        assert_eq!(
            referenced_plan_keys(["x := \"a\\\"#b\"; y := input"]),
            PlanKeys::All
        );
        assert_eq!(
            referenced_plan_keys(["x := `raw # input`; y := input.plan.output_changes"]),
            only(&["output_changes"])
        );
    }

    #[test]
    fn pruning_keeps_only_named_plan_keys_and_everything_else() {
        let input = json!({
            "plan": {"resource_changes": [1], "planned_values": {"x": 1}, "prior_state": {}},
            "run": {"id": "r"},
        });
        let pruned = to_rego_pruned(&input, &only(&["resource_changes"]));
        let expected = to_rego(&json!({"plan": {"resource_changes": [1]}, "run": {"id": "r"}}));
        assert_eq!(pruned, expected);
        assert_eq!(to_rego_pruned(&input, &PlanKeys::All), to_rego(&input));
        assert_eq!(
            to_rego_pruned(&input, &only(&[])),
            to_rego(&json!({"plan": {}, "run": {"id": "r"}}))
        );
    }

    #[test]
    fn big_and_fractional_numbers_compare_like_policy_literals() {
        let v = to_rego(
            &serde_json::from_str("[0.1, 123456789012345678901234567890.5]").expect("json"),
        );
        assert_eq!(v[0], Value::from_json_str("0.1").expect("0.1"));
        assert_eq!(
            v[1],
            Value::from_json_str("123456789012345678901234567890.5").expect("big")
        );
    }
}
