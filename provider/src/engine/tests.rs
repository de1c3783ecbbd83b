//! Engine behaviour on the compiled-in example catalog: planning rules without
//! any wire encoding in the way.

use std::collections::BTreeMap;

use platform_value::{Number, Path, Value};

use super::{Diag, Engine, PlanRequest, PlanResponse, Severity};

fn engine() -> Engine {
    Engine::new(super::CatalogSource::Embedded)
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn n(i: i64) -> Value {
    Value::Number(Number::from_i64(i))
}

/// A config object with every attribute of the resource type present (null
/// unless given), as Terraform sends it.
fn config(engine: &Engine, type_name: &str, given: &[(&str, Value)]) -> Value {
    let loaded = engine.loaded().expect("catalog loads");
    let (_, schema) = &loaded.schemas.resources[type_name];
    let mut attrs: BTreeMap<String, Value> = schema
        .attributes
        .iter()
        .map(|a| (a.name.clone(), Value::Null))
        .collect();
    for (name, value) in given {
        assert!(attrs.contains_key(*name), "{name} is an attribute");
        attrs.insert((*name).to_owned(), value.clone());
    }
    Value::Object(attrs)
}

fn plan(engine: &Engine, type_name: &str, prior: Value, config: Value) -> PlanResponse {
    engine.plan_resource(&PlanRequest {
        type_name: type_name.to_owned(),
        prior,
        proposed: config.clone(),
        config,
        prior_private: Vec::new(),
    })
}

fn errors(diags: &[Diag]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}: {} @ {:?}", d.summary, d.detail, d.path))
        .collect()
}

/// A known prior state made from a create plan by filling in what apply would.
fn applied(planned: &Value) -> Value {
    let Value::Object(attrs) = planned else {
        panic!("object")
    };
    Value::Object(
        attrs
            .iter()
            .map(|(k, v)| {
                let v = if v.is_unknown() {
                    s(&format!("applied-{k}"))
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

const DB: &str = "platform_postgres_database";
const SCHEMA: &str = "platform_postgres_schema";

#[test]
fn create_fills_defaults_price_and_version() {
    let engine = engine();
    let cfg = config(
        &engine,
        DB,
        &[("name", s("orders")), ("team", s("checkout"))],
    );
    let res = plan(&engine, DB, Value::Null, cfg);
    assert_eq!(errors(&res.diags), Vec::<String>::new());
    let planned = &res.planned;
    assert_eq!(planned.get_attr("connection_limit"), Some(&n(20)));
    assert_eq!(planned.get_attr("extensions"), Some(&Value::Set(vec![])));
    assert_eq!(planned.get_attr("tier"), Some(&s("small")));
    assert_eq!(planned.get_attr("monthly_cost"), Some(&n(25)));
    assert_eq!(planned.get_attr("offering_version"), Some(&s("1.2.0")));
    assert_eq!(planned.get_attr("status"), Some(&s("current")));
    assert!(planned.get_attr("id").is_some_and(Value::is_unknown));
    assert!(
        planned
            .get_attr("connection_uri")
            .is_some_and(Value::is_unknown)
    );
    // A current version whose drivers all exist: no warning at all.
    assert_eq!(res.diags, vec![]);
}

#[test]
fn guardrails_point_at_the_attribute() {
    let engine = engine();
    let cfg = config(
        &engine,
        DB,
        &[
            ("name", s("Bad-Name")),
            ("connection_limit", n(0)),
            ("extensions", Value::Set(vec![s("postgis")])),
            ("team", s("checkout")),
        ],
    );
    let diags = engine.validate_resource(DB, &cfg);
    let paths: Vec<Path> = diags.iter().filter_map(|d| d.path.clone()).collect();
    assert_eq!(diags.len(), 3, "{diags:?}");
    for attr in ["name", "connection_limit", "extensions"] {
        assert!(
            paths.contains(&Path::root().attr(attr)),
            "{attr}: {paths:?}"
        );
    }
}

#[test]
fn unknown_values_are_not_checked_yet() {
    let engine = engine();
    let cfg = config(&engine, DB, &[("name", Value::unknown()), ("team", s("t"))]);
    assert_eq!(engine.validate_resource(DB, &cfg), vec![]);
    let res = plan(&engine, DB, Value::Null, cfg);
    assert_eq!(errors(&res.diags), Vec::<String>::new());
    // The price does not depend on the name.
    assert_eq!(res.planned.get_attr("monthly_cost"), Some(&n(25)));
}

#[test]
fn team_is_required_without_a_provider_default() {
    let engine = engine();
    let cfg = config(&engine, DB, &[("name", s("orders"))]);
    let res = plan(&engine, DB, Value::Null, cfg.clone());
    assert_eq!(
        res.diags
            .iter()
            .filter(|d| d.path == Some(Path::root().attr("team")))
            .count(),
        1
    );
    let provider = Value::Object(BTreeMap::from([("default_team".to_owned(), s("payments"))]));
    assert!(engine.configure(&provider).is_empty());
    let res = plan(&engine, DB, Value::Null, cfg);
    assert_eq!(errors(&res.diags), Vec::<String>::new());
    assert_eq!(res.planned.get_attr("team"), Some(&s("payments")));
}

#[test]
fn updates_replace_reject_and_transitions() {
    let engine = engine();
    let create = config(
        &engine,
        DB,
        &[
            ("name", s("orders")),
            ("team", s("t")),
            ("tier", s("standard")),
        ],
    );
    let prior = applied(&plan(&engine, DB, Value::Null, create).planned);
    assert_eq!(prior.get_attr("monthly_cost"), Some(&n(140)));

    // Nothing changed: the plan equals the prior state, outputs stay known.
    let same = config(
        &engine,
        DB,
        &[
            ("name", s("orders")),
            ("team", s("t")),
            ("tier", s("standard")),
        ],
    );
    let res = plan(&engine, DB, prior.clone(), same);
    assert_eq!(res.planned, prior);
    assert!(res.requires_replace.is_empty());

    // on_change = replace.
    let renamed = config(
        &engine,
        DB,
        &[
            ("name", s("orders2")),
            ("team", s("t")),
            ("tier", s("standard")),
        ],
    );
    let res = plan(&engine, DB, prior.clone(), renamed);
    assert_eq!(res.requires_replace, vec![Path::root().attr("name")]);

    // standard → small is allowed, price follows.
    let smaller = config(
        &engine,
        DB,
        &[
            ("name", s("orders")),
            ("team", s("t")),
            ("tier", s("small")),
        ],
    );
    let res = plan(&engine, DB, prior.clone(), smaller);
    assert_eq!(errors(&res.diags), Vec::<String>::new());
    assert_eq!(res.planned.get_attr("monthly_cost"), Some(&n(25)));

    // small → standard is not in small's transitions? small declares none: any is allowed.
    let small_prior = applied(&res.planned);
    let bigger = config(
        &engine,
        DB,
        &[
            ("name", s("orders")),
            ("team", s("t")),
            ("tier", s("standard")),
        ],
    );
    assert_eq!(
        errors(&plan(&engine, DB, small_prior, bigger).diags),
        Vec::<String>::new()
    );

    // on_change = reject on the schema offering's database.
    let create = config(
        &engine,
        SCHEMA,
        &[
            ("database", s("shared")),
            ("name", s("tenant_a")),
            ("team", s("t")),
        ],
    );
    let prior = applied(&plan(&engine, SCHEMA, Value::Null, create).planned);
    let moved = config(
        &engine,
        SCHEMA,
        &[
            ("database", s("other")),
            ("name", s("tenant_a")),
            ("team", s("t")),
        ],
    );
    let res = plan(&engine, SCHEMA, prior, moved);
    let errs = errors(&res.diags);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("database") && errs[0].contains("shared") && errs[0].contains("other"),
        "{errs:?}"
    );
}

#[test]
fn tier_transition_outside_transitions_to_is_refused() {
    let engine = engine();
    // standard may only move to small; an unknown tier name is reported too.
    let create = config(
        &engine,
        DB,
        &[
            ("name", s("orders")),
            ("team", s("t")),
            ("tier", s("standard")),
        ],
    );
    let prior = applied(&plan(&engine, DB, Value::Null, create).planned);
    let cfg = config(
        &engine,
        DB,
        &[("name", s("orders")), ("team", s("t")), ("tier", s("gold"))],
    );
    let res = plan(&engine, DB, prior, cfg);
    let errs = errors(&res.diags);
    assert!(errs.iter().any(|e| e.contains("Unknown tier")), "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("Tier transition not allowed")),
        "{errs:?}"
    );
}

#[test]
fn deprecated_version_warns_then_refuses_by_date() {
    let engine = engine();
    let cfg = config(
        &engine,
        DB,
        &[
            ("name", s("orders")),
            ("team", s("t")),
            ("offering_version", s("1.1.0")),
        ],
    );
    let res = with_today("2026-12-01", || plan(&engine, DB, Value::Null, cfg.clone()));
    assert_eq!(errors(&res.diags), Vec::<String>::new());
    let warning = res
        .diags
        .iter()
        .find(|d| d.summary.contains("deprecated"))
        .expect("deprecation warning");
    assert!(
        warning.detail.contains("2027-01-31") && warning.detail.contains("1.2.0"),
        "{warning:?}"
    );
    assert_eq!(warning.path, Some(Path::root().attr("offering_version")));

    let res = with_today("2027-02-01", || plan(&engine, DB, Value::Null, cfg.clone()));
    assert!(
        errors(&res.diags)
            .iter()
            .any(|e| e.contains("no longer accepts new instances"))
    );
}

fn with_today<T>(date: &str, f: impl FnOnce() -> T) -> T {
    let _guard = TODAY_LOCK.lock();
    let before = std::env::var("PLATFORM_TODAY").ok();
    set_today(Some(date));
    let out = f();
    set_today(before.as_deref());
    out
}

static TODAY_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn set_today(date: Option<&str>) {
    let date = date.map(|d| d.to_owned());
    // Environment writes are process-global; tests that pin the date hold
    // TODAY_LOCK, and no other test reads PLATFORM_TODAY.
    super::set_today_override(date);
}

#[test]
fn data_sources_carry_prices() {
    let engine = engine();
    let loaded = engine.loaded().expect("loads");
    let catalog = engine
        .read_data_source(&loaded.schemas.catalog_data_type, &Value::Null)
        .expect("reads");
    assert!(catalog.is_wholly_known());
    let cfg = Value::Object(BTreeMap::from([(
        "name".to_owned(),
        s("postgres_database"),
    )]));
    let offering = engine
        .read_data_source(&loaded.schemas.offering_data_type, &cfg)
        .expect("reads");
    let Some(Value::List(tiers)) = offering.get_attr("tiers") else {
        panic!("tiers")
    };
    let prices: Vec<(Value, Value)> = tiers
        .iter()
        .map(|t| {
            (
                t.get_attr("name").cloned().unwrap_or(Value::Null),
                t.get_attr("amount").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(prices, vec![(s("small"), n(25)), (s("standard"), n(140))]);
    let bad = Value::Object(BTreeMap::from([("name".to_owned(), s("nope"))]));
    assert!(
        engine
            .read_data_source(&loaded.schemas.offering_data_type, &bad)
            .is_err()
    );
}

#[test]
fn private_data_is_compact_and_reads_the_earlier_form() {
    use super::ResourcePrivate;
    let mut role = crate::drivers::Values::new();
    role.insert("name".into(), hcl::Value::from("bench_role_0"));
    role.insert("login".into(), hcl::Value::Bool(false));
    role.insert("password".into(), hcl::Value::Null);
    let primitives = BTreeMap::from([("role".to_owned(), role)]);

    // State keeps the primitives alone; a planned change adds the catalog digest.
    let state = ResourcePrivate {
        catalog_digest: String::new(),
        primitives: primitives.clone(),
    };
    let bytes = ResourcePrivate::encode_state(&primitives);
    assert_eq!(
        String::from_utf8(bytes.clone()).expect("utf-8"),
        r#"{"p":{"role":{"login":false,"name":"bench_role_0","password":null}}}"#
    );
    assert_eq!(ResourcePrivate::decode(&bytes), Some(state));
    let planned = ResourcePrivate {
        catalog_digest: "sha256:ab".into(),
        primitives: primitives.clone(),
    };
    assert_eq!(ResourcePrivate::decode(&planned.encode()), Some(planned));

    // What earlier provider versions wrote still decodes (and re-encodes compactly).
    let legacy = br#"{"catalog_digest":"sha256:ab","offering_version":"1.0.0","primitives":{"role":{"login":false,"name":"bench_role_0","password":null}}}"#;
    let decoded = ResourcePrivate::decode(legacy).expect("legacy private data");
    assert_eq!(decoded.catalog_digest, "sha256:ab");
    assert_eq!(decoded.primitives, primitives);

    // Foreign or empty bytes are not ours.
    for foreign in [
        &b""[..],
        b"{}",
        b"[1]",
        br#"{"c":1,"p":{}}"#,
        b"\xff\x00",
        br#"{"p":[1]}"#,
    ] {
        assert_eq!(ResourcePrivate::decode(foreign), None, "{foreign:?}");
    }
}

// ---------------------------------------------------------------------------
// Driver validation at plan (issue 13)

/// A catalog file of the acceptance tests.
fn test_catalog_file(catalog: &str, file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../acceptance/catalogs")
        .join(catalog)
        .join(file)
}

/// An engine on one of the acceptance test catalogs.
fn engine_on(catalog: &str) -> Engine {
    Engine::new(super::CatalogSource::Dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../acceptance/catalogs")
            .join(catalog),
    ))
}

const DERIVED: &str = "platform_derived_roles";

/// (summary, detail, path) of every error.
fn error_parts(diags: &[Diag]) -> Vec<(String, String, Option<Path>)> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.summary.clone(), d.detail.clone(), d.path.clone()))
        .collect()
}

fn f(x: f64) -> Value {
    Value::Number(Number::from_f64(x).unwrap_or_else(|| Number::from_i64(0)))
}

fn plan_errors(
    engine: &Engine,
    type_name: &str,
    cfg: Value,
) -> Vec<(String, String, Option<Path>)> {
    error_parts(&plan(engine, type_name, Value::Null, cfg).diags)
}

#[test]
fn fractional_connection_limit_is_refused_at_the_attribute() {
    let engine = engine();
    let cfg = config(
        &engine,
        DB,
        &[
            ("name", s("orders")),
            ("connection_limit", f(1.5)),
            ("team", s("t")),
        ],
    );
    let expected = vec![(
        "Invalid input for primitive \"owner\" (postgres.role)".to_owned(),
        "postgres_database composes primitive \"owner\" with driver postgres.role, which refuses it: input `connection_limit` must be a whole number.".to_owned(),
        Some(Path::root().attr("connection_limit")),
    )];
    assert_eq!(plan_errors(&engine, DB, cfg.clone()), expected);
    // At validate, only once the config names the version: without it an
    // existing resource keeps the (older) version of its state, which only
    // plan knows.
    assert_eq!(engine.validate_resource(DB, &cfg), vec![]);
    let Value::Object(mut attrs) = cfg else {
        panic!("object")
    };
    attrs.insert("offering_version".into(), s("1.2.0"));
    let cfg = Value::Object(attrs);
    assert_eq!(error_parts(&engine.validate_resource(DB, &cfg)), expected);
    assert_eq!(plan_errors(&engine, DB, cfg), expected);
}

#[test]
fn derived_names_are_checked_after_templating() {
    let engine = engine_on("derived");
    // 60 bytes: the login role fits, `<name>_owner` (66 bytes) does not; the
    // name is not passed straight through, so the error is the resource's.
    let sixty = "a".repeat(60);
    let cfg = config(&engine, DERIVED, &[("name", s(&sixty)), ("team", s("t"))]);
    let expected = vec![(
        "Invalid input for primitive \"owner\" (postgres.role)".to_owned(),
        format!(
            "derived_roles composes primitive \"owner\" with driver postgres.role, which refuses it: input `name` \"{sixty}_owner\" is 66 bytes long; PostgreSQL names have at most 63."
        ),
        None,
    )];
    assert_eq!(
        error_parts(&engine.validate_resource(DERIVED, &cfg)),
        expected
    );
    assert_eq!(plan_errors(&engine, DERIVED, cfg), expected);

    // 64 bytes: the login role's name is the attribute itself.
    let cfg = config(
        &engine,
        DERIVED,
        &[("name", s(&"b".repeat(64))), ("team", s("t"))],
    );
    let paths: Vec<Option<Path>> = error_parts(&engine.validate_resource(DERIVED, &cfg))
        .into_iter()
        .map(|(_, _, path)| path)
        .collect();
    assert_eq!(paths, [None, Some(Path::root().attr("name"))]);

    // A NUL character.
    let cfg = config(
        &engine,
        DERIVED,
        &[("name", s("a\u{0}b")), ("team", s("t"))],
    );
    let errors = error_parts(&engine.validate_resource(DERIVED, &cfg));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|(_, detail, _)| detail.contains("must not contain a NUL character")),
        "{errors:?}"
    );

    // A fractional limit: at `limit`, which feeds connection_limit.
    let cfg = config(
        &engine,
        DERIVED,
        &[("name", s("app")), ("limit", f(2.5)), ("team", s("t"))],
    );
    let errors = error_parts(&engine.validate_resource(DERIVED, &cfg));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].2, Some(Path::root().attr("limit")));
    assert!(
        errors[0]
            .1
            .contains("input `connection_limit` must be a whole number"),
        "{errors:?}"
    );

    // Fine values: nothing.
    let cfg = config(&engine, DERIVED, &[("name", s("app")), ("team", s("t"))]);
    assert_eq!(engine.validate_resource(DERIVED, &cfg), vec![]);
    assert_eq!(plan_errors(&engine, DERIVED, cfg), vec![]);
}

#[test]
fn unknown_values_wait_for_apply() {
    let engine = engine_on("derived");
    // The name comes from another resource's output: nothing to check yet.
    let cfg = config(
        &engine,
        DERIVED,
        &[("name", Value::unknown()), ("team", s("t"))],
    );
    assert_eq!(engine.validate_resource(DERIVED, &cfg), vec![]);
    assert_eq!(plan_errors(&engine, DERIVED, cfg), vec![]);
    // An unknown limit does not hide a name that is already too long.
    let cfg = config(
        &engine,
        DERIVED,
        &[
            ("name", s(&"c".repeat(60))),
            ("limit", Value::unknown()),
            ("team", s("t")),
        ],
    );
    assert_eq!(plan_errors(&engine, DERIVED, cfg).len(), 1);
}

#[test]
fn driver_type_errors_are_found_at_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(test_catalog_file("derived", "roles.hcl"))
        .expect("derived catalog")
        // A string where the driver takes a bool, directly from an input and
        // through a tier value.
        .replace("login     = true", "login     = input.name")
        .replace(
            "values = { group_login = false }",
            "values = { group_login = \"no\" }",
        );
    std::fs::write(dir.path().join("roles.hcl"), text).expect("write catalog");
    let engine = Engine::new(super::CatalogSource::Dir(dir.path().to_owned()));
    let cfg = config(&engine, DERIVED, &[("name", s("app")), ("team", s("t"))]);
    // At validate the tier (null) is not known yet; the name is.
    let errors = error_parts(&engine.validate_resource(DERIVED, &cfg));
    assert_eq!(
        errors,
        vec![(
            "Invalid input for primitive \"app\" (postgres.role)".to_owned(),
            "derived_roles composes primitive \"app\" with driver postgres.role, which refuses it: input `login` must be a bool.".to_owned(),
            Some(Path::root().attr("name")),
        )]
    );
    // At plan the tier is the first one, whose value is a string too.
    let errors = plan_errors(&engine, DERIVED, cfg);
    let summaries: Vec<&str> = errors.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "Invalid input for primitive \"owner\" (postgres.role)",
            "Invalid input for primitive \"app\" (postgres.role)"
        ]
    );
    assert_eq!(errors[0].2, None);
}

#[test]
fn undeclared_primitive_inputs_fail_the_catalog() {
    let Err(diags) = engine_on("undeclared").loaded() else {
        panic!("a catalog with superuser = true loads")
    };
    let file = test_catalog_file("undeclared", "role.hcl");
    let text = std::fs::read_to_string(&file).expect("catalog");
    let at = text
        .find("superuser = true")
        .expect("superuser in the catalog");
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    let shown = file.display();
    assert_eq!(
        error_parts(&diags),
        vec![(
            format!(
                "{shown}:{line}:{col}: error: primitive \"owner\": driver postgres.role has no input \"superuser\""
            ),
            "postgres.role accepts: name, login, connection_limit, valid_until, member_of, database."
                .to_owned(),
            None,
        )]
    );
    // The shipped catalog passes the same check.
    assert!(self::engine().loaded().is_ok());
}
