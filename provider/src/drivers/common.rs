//! What every driver's lifecycle shares: the ownership marker and how an
//! existing object's marker relates to a resource (`check_marker`, `found`),
//! reading primitive inputs and state, error wording, and generated
//! passwords. Backend-specific text (SQL quoting, name limits, URIs) stays in
//! each driver.

use std::fmt::Display;

use ring::rand::SecureRandom as _;

use super::{DriverError, Found, Owner, Values};

/// `postgres.role "orders_owner": message`.
pub fn fail(kind: &str, name: &str, message: impl Display) -> DriverError {
    DriverError::new(format!("{kind} \"{name}\": {message}"))
}

pub const MARKER_PREFIX: &str = "managed-by=terraform-provider-platform";

/// The comment every created object carries: the resource's identity
/// (offering, resource id, primitive) and, for instances made by this
/// provider version, the generation of the instance that manages it.
pub fn marker(owner: &Owner) -> String {
    let mut text = identity(owner);
    if let Some(generation) = &owner.generation {
        text.push_str(" generation=");
        text.push_str(generation);
    }
    text
}

fn identity(owner: &Owner) -> String {
    format!(
        "{MARKER_PREFIX} offering={} resource={} primitive={}",
        owner.offering, owner.resource_id, owner.primitive
    )
}

/// How an existing object's comment relates to `owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Exactly `owner`'s marker.
    Mine,
    /// This resource and primitive, another generation: another instance of
    /// the same resource (a re-run after a crash, a second state with the
    /// same names, a `create_before_destroy` replacement) adopted it since,
    /// or this instance is adopting it.
    OtherGeneration,
    /// Another resource's marker.
    Foreign,
    /// No marker.
    Unmarked,
}

pub fn claim_of(comment: Option<&str>, owner: &Owner) -> Claim {
    let Some(text) = comment else {
        return Claim::Unmarked;
    };
    if text == marker(owner) {
        return Claim::Mine;
    }
    let base = identity(owner);
    match text.strip_prefix(&base) {
        Some("") => Claim::OtherGeneration,
        Some(rest) if rest.starts_with(" generation=") && !rest[1..].contains(' ') => {
            Claim::OtherGeneration
        }
        _ if text.starts_with(MARKER_PREFIX) => Claim::Foreign,
        _ => Claim::Unmarked,
    }
}

/// Refuses to touch an object whose comment does not name `owner`. An object
/// without a marker may be touched when the state says it was imported
/// (`adopted = true`); one whose marker names another resource never is, and
/// one another instance of this resource took over (another generation) is
/// refused with [`DriverError::superseded`], so a delete can leave it be.
pub fn check_marker(
    kind: &str,
    object: &str,
    name: &str,
    comment: Option<&str>,
    owner: &Owner,
    adopted: bool,
) -> Result<(), DriverError> {
    match claim_of(comment, owner) {
        Claim::Mine => Ok(()),
        Claim::OtherGeneration => Err(DriverError::superseded(format!(
            "{kind} \"{name}\": {object} \"{name}\" has been taken over by another instance of this resource (its marker now reads {:?}); this one no longer manages it",
            comment
                .unwrap_or_default()
                .trim_start_matches(MARKER_PREFIX)
                .trim()
        ))),
        Claim::Foreign => Err(fail(
            kind,
            name,
            format!(
                "{object} \"{name}\" is managed by another resource ({}); import it into this one first",
                comment
                    .unwrap_or_default()
                    .trim_start_matches(MARKER_PREFIX)
                    .trim()
            ),
        )),
        Claim::Unmarked if adopted => Ok(()),
        Claim::Unmarked => Err(fail(
            kind,
            name,
            format!(
                "{object} \"{name}\" exists but is not managed by this resource; import it first"
            ),
        )),
    }
}

/// What `find` makes of an existing object with `comment`: this resource's
/// (this generation, or another one to adopt), or why a create must not
/// take it (another resource's; not managed at all).
pub fn found(
    kind: &str,
    object: &str,
    name: &str,
    comment: Option<&str>,
    owner: &Owner,
    state: Values,
) -> Found {
    match claim_of(comment, owner) {
        Claim::Mine => Found::Ours(state),
        Claim::OtherGeneration => Found::OtherGeneration(state),
        Claim::Foreign => match check_marker(kind, object, name, comment, owner, false) {
            Err(why) => Found::Foreign(why),
            Ok(()) => Found::Ours(state),
        },
        Claim::Unmarked => Found::Foreign(already_exists(kind, object, name)),
    }
}

/// Whether `comment` is a marker naming `owner`'s resource (any primitive,
/// any generation).
pub fn names_resource(comment: Option<&str>, owner: &Owner) -> bool {
    let prefix = format!(
        "{MARKER_PREFIX} offering={} resource={} primitive=",
        owner.offering, owner.resource_id
    );
    comment.is_some_and(|c| {
        c.strip_prefix(&prefix).is_some_and(|rest| {
            let mut words = rest.split(' ');
            words.next().is_some_and(|p| !p.is_empty())
                && words.all(|w| w.starts_with("generation="))
        })
    })
}

/// `create` on a name already taken.
pub fn already_exists(kind: &str, object: &str, name: &str) -> DriverError {
    fail(
        kind,
        name,
        format!("{object} \"{name}\" already exists; import it to manage it with this resource"),
    )
}

/// A string field of a primitive's state.
pub fn state_string(state: &Values, key: &str) -> Option<String> {
    match state.get(key) {
        Some(hcl::Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The object's name recorded in a primitive's state.
pub fn state_name(kind: &str, state: &Values) -> Result<String, DriverError> {
    state_string(state, "name")
        .ok_or_else(|| DriverError::new(format!("{kind}: the state has no `name`")))
}

pub fn present<'a>(values: &'a Values, key: &str) -> Option<&'a hcl::Value> {
    match values.get(key) {
        None | Some(hcl::Value::Null) => None,
        Some(value) => Some(value),
    }
}

/// A string input; PostgreSQL text cannot hold a NUL character.
pub fn string(values: &Values, key: &str) -> Result<Option<String>, String> {
    match present(values, key) {
        None => Ok(None),
        Some(hcl::Value::String(s)) if s.contains('\0') => {
            Err(format!("input `{key}` must not contain a NUL character"))
        }
        Some(hcl::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("input `{key}` must be a string")),
    }
}

pub fn required_string(values: &Values, key: &str) -> Result<String, String> {
    string(values, key)?.ok_or_else(|| format!("input `{key}` is required"))
}

pub fn boolean(values: &Values, key: &str, default: bool) -> Result<bool, String> {
    match present(values, key) {
        None => Ok(default),
        Some(hcl::Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("input `{key}` must be a bool")),
    }
}

pub fn integer(values: &Values, key: &str, default: i64) -> Result<i64, String> {
    match present(values, key) {
        None => Ok(default),
        Some(hcl::Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| format!("input `{key}` must be a whole number")),
        Some(_) => Err(format!("input `{key}` must be a number")),
    }
}

pub fn strings(values: &Values, key: &str) -> Result<Vec<String>, String> {
    match present(values, key) {
        None => Ok(Vec::new()),
        Some(hcl::Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                hcl::Value::String(s) => Ok(s.clone()),
                _ => Err(format!("input `{key}` must be a list of strings")),
            })
            .collect(),
        Some(_) => Err(format!("input `{key}` must be a list of strings")),
    }
}

/// Messages for keys a primitive does not take.
pub fn unknown_keys(values: &Values, known: &[&str]) -> Vec<String> {
    values
        .keys()
        .filter(|key| !known.contains(&key.as_str()))
        .map(|key| format!("unknown input `{key}` (known: {})", known.join(", ")))
        .collect()
}

/// [`unknown_keys`] as plan-time errors, each about its key.
pub fn unknown_inputs(values: &Values, known: &[&str]) -> Vec<DriverError> {
    values
        .keys()
        .filter(|key| !known.contains(&key.as_str()))
        .map(|key| {
            DriverError::at_input(
                format!("unknown input `{key}` (known: {})", known.join(", ")),
                key,
            )
        })
        .collect()
}

/// Plan-time check of one input: only when it is known (present). The
/// error is about that input.
pub fn check_present<T>(
    errors: &mut Vec<DriverError>,
    values: &Values,
    key: &str,
    check: impl Fn(&Values, &str) -> Result<T, String>,
) {
    if values.contains_key(key)
        && let Err(message) = check(values, key)
    {
        errors.push(DriverError::at_input(message, key));
    }
}

/// `adopted = true` in a state.
pub fn adopted(state: &Values) -> bool {
    matches!(state.get("adopted"), Some(hcl::Value::Bool(true)))
}

pub fn list_value(items: &[String]) -> hcl::Value {
    hcl::Value::Array(
        items
            .iter()
            .map(|s| hcl::Value::String(s.clone()))
            .collect(),
    )
}

pub fn opt_string_value(value: Option<&str>) -> hcl::Value {
    value.map_or(hcl::Value::Null, |s| hcl::Value::String(s.to_owned()))
}

/// `actual` ordered like `prior` (what is still there, in the order it was
/// given), then whatever else is there, sorted.
pub fn order_like(mut actual: Vec<String>, prior: &[String]) -> Vec<String> {
    actual.sort();
    actual.dedup();
    let mut out: Vec<String> = prior
        .iter()
        .filter(|p| actual.contains(p))
        .cloned()
        .collect();
    out.dedup();
    for item in actual {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

pub const PASSWORD_LEN: usize = 40;

/// A password of [`PASSWORD_LEN`] random alphanumeric characters.
pub fn generate_password() -> Result<String, DriverError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // The largest multiple of 62 below 256: bytes from it on are rejected so
    // that every character is equally likely.
    const LIMIT: u8 = 248;
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut buffer = [0u8; 64];
    while out.len() < PASSWORD_LEN {
        rng.fill(&mut buffer)
            .map_err(|_| DriverError::new("postgres: the system random generator failed"))?;
        for byte in buffer {
            if byte < LIMIT && out.len() < PASSWORD_LEN {
                out.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    Ok(out)
}

/// Percent-encodes all but RFC 3986 unreserved characters (and those in `keep`).
pub fn percent_encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        let a = generate_password().expect("password");
        let b = generate_password().expect("password");
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn ordering() {
        let actual = vec!["c".to_owned(), "a".to_owned(), "b".to_owned()];
        assert_eq!(
            order_like(actual, &["b".to_owned(), "z".to_owned()]),
            ["b", "a", "c"]
        );
    }

    #[test]
    fn markers() {
        let owner = Owner {
            offering: "o".into(),
            resource_id: "r".into(),
            primitive: "p".into(),
            generation: Some("0123456789ab".into()),
        };
        let other = Owner {
            resource_id: "other".into(),
            ..owner.clone()
        };
        let ours = marker(&owner);
        assert_eq!(
            ours,
            "managed-by=terraform-provider-platform offering=o resource=r primitive=p generation=0123456789ab"
        );
        assert!(check_marker("k", "role", "x", Some(&ours), &owner, false).is_ok());
        assert!(check_marker("k", "role", "x", None, &owner, false).is_err());
        assert!(check_marker("k", "role", "x", None, &owner, true).is_ok());
        assert!(check_marker("k", "role", "x", Some("hand made"), &owner, true).is_ok());
        assert!(check_marker("k", "role", "x", Some(&marker(&other)), &owner, true).is_err());

        // Another generation of the same resource: superseded, whatever
        // `adopted` says; a marker from before generations is another one too.
        let newer = Owner {
            generation: Some("ba9876543210".into()),
            ..owner.clone()
        };
        let legacy = Owner {
            generation: None,
            ..owner.clone()
        };
        for theirs in [&newer, &legacy] {
            let error = check_marker("k", "role", "x", Some(&marker(theirs)), &owner, true)
                .expect_err("superseded");
            assert!(error.is_superseded(), "{error}");
            assert_eq!(
                claim_of(Some(&marker(theirs)), &owner),
                Claim::OtherGeneration
            );
        }
        assert_eq!(claim_of(Some(&ours), &legacy), Claim::OtherGeneration);
        assert_eq!(claim_of(Some(&marker(&legacy)), &legacy), Claim::Mine);
        // A longer primitive name is not this primitive.
        let p2 = format!(
            "{} generation=0123456789ab",
            identity(&owner).replace("primitive=p", "primitive=p2")
        );
        assert_eq!(claim_of(Some(&p2), &owner), Claim::Foreign);
        assert_eq!(
            claim_of(Some(&format!("{ours} extra=1")), &owner),
            Claim::Foreign
        );
        assert!(names_resource(Some(&ours), &owner));
        assert!(names_resource(Some(&marker(&legacy)), &owner));
        assert!(!names_resource(Some(&marker(&other)), &owner));
    }
}
