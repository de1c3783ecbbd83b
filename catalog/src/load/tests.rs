//! One `check` per problem class; expectations are the exact rendered diagnostics.
use crate::{Source, load_sources};

/// Loads `text` as `c.hcl` and compares the rendered diagnostics, one per line.
fn check(text: &str, expected: &str) {
    let (_, diags) = load_sources(vec![Source {
        name: "c.hcl".into(),
        text: text.into(),
    }]);
    let rendered: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(rendered.join("\n"), expected.trim());
}

/// Wraps a version body in a valid offering; body line N is file line N + 5. A body that
/// mentions no tier gets one after it (a version needs a tier).
fn in_version(body: &str) -> String {
    let tier = if body.contains("tier") {
        ""
    } else {
        "    tier \"t\" {\n      price {\n        amount = 0\n        unit   = \"month\"\n      }\n    }\n"
    };
    format!(
        "offering \"o\" {{\n  title = \"O\"\n  owner {{ team = \"t\" }}\n  version \"1.0.0\" {{\n    status = \"current\"\n{body}{tier}  }}\n}}\n"
    )
}

#[test]
fn wrapper_is_valid() {
    check(&in_version(""), "");
}

#[test]
fn syntax_error() {
    check(
        "offering \"x\" {\n  title = \n}\n",
        "c.hcl:2:11: error: syntax error: invalid expression; expected `\"`, `[`, `{`, `-`, `!`, `(`, `_`, `<`, letter or digit",
    );
    // hcl-edit itself rejects a repeated attribute.
    check(
        "catalog {\n  provider_prefix = \"a\"\n  provider_prefix = \"b\"\n}\n",
        "c.hcl:3:3: error: syntax error: invalid attribute; expected unique attribute key; found redefined attribute",
    );
    // A syntax error in one file does not hide problems in another.
    let (_, diags) = load_sources(vec![
        Source {
            name: "a.hcl".into(),
            text: "offering {".into(),
        },
        Source {
            name: "b.hcl".into(),
            text: "bogus {}".into(),
        },
    ]);
    assert_eq!(diags.len(), 2);
}

#[test]
fn unknown_block_types_and_attributes() {
    check(
        "colour = \"red\"\nofering \"x\" {}\n",
        r#"
c.hcl:1:1: error: unknown attribute "colour" at the top level
  no attributes are allowed here
c.hcl:2:1: error: unknown block type "ofering" at the top level
  expected one of: catalog, offering
"#,
    );
    check(
        &in_version(
            "    input \"a\" {\n      type = string\n      defualt = \"x\"\n    }\n    widget {}\n",
        ),
        r#"
c.hcl:8:7: error: unknown attribute "defualt" in input "a"
  expected one of: type, description, default, enum, pattern, min, max, min_length, max_length, on_change, sensitive
c.hcl:10:5: error: unknown block type "widget" in version "1.0.0"
  expected one of: deprecation, input, tier, compose, output
"#,
    );
}

#[test]
fn missing_required_attributes() {
    check(
        "offering \"x\" {\n  owner {}\n  version \"1.0.0\" {}\n}\n",
        r#"
c.hcl:1:1: error: missing required attribute "title" in offering "x"
c.hcl:2:3: error: missing required attribute "team" in owner block
c.hcl:3:3: error: missing required attribute "status" in version "1.0.0"
"#,
    );
    check(
        &in_version(
            "    input \"a\" {}\n    tier \"t\" {\n      price {}\n    }\n    output \"o\" {}\n",
        ),
        r#"
c.hcl:6:5: error: missing required attribute "type" in input "a"
c.hcl:8:7: error: missing required attribute "amount" in price block
c.hcl:8:7: error: missing required attribute "unit" in price block
c.hcl:10:5: error: missing required attribute "value" in output "o"
"#,
    );
    check(
        "offering \"x\" {\n  title = \"X\"\n}\n",
        r#"
c.hcl:1:1: error: missing required block "owner" in offering "x"
c.hcl:1:1: error: offering "x" has no versions
"#,
    );
}

#[test]
fn wrong_attribute_types() {
    check(
        &in_version(concat!(
            "    input \"a\" {\n",
            "      type      = number\n",
            "      min       = \"x\"\n",
            "      on_change = \"sometimes\"\n",
            "      sensitive = 1\n",
            "    }\n",
            "    input \"b\" {\n",
            "      type = list(list(string))\n",
            "    }\n",
            "    input \"c\" {\n",
            "      type = strin\n",
            "    }\n",
        )),
        r#"
c.hcl:8:19: error: attribute "min" must be a number, got "x"
c.hcl:9:19: error: invalid on_change "sometimes"; expected update, replace, reject or grow_only
c.hcl:10:19: error: attribute "sensitive" must be a bool, got 1
c.hcl:13:14: error: invalid type "list(list(string))"
  expected string, number, bool, list(T), set(T) or map(T) where T is string, number or bool
c.hcl:16:14: error: invalid type "strin"
  expected string, number, bool, list(T), set(T) or map(T) where T is string, number or bool
"#,
    );
    check(
        "offering \"x\" {\n  title = \"X\"\n  owner { team = \"t\" }\n  version \"1.0.0\" { status = \"nope\" }\n}\n",
        "c.hcl:4:30: error: invalid status \"nope\"; expected preview, current, deprecated or retired",
    );
    check(
        "offering \"x\" {\n  title = var.title\n  owner { team = \"t\" }\n  version \"1.0.0\" { status = \"current\" }\n}\n",
        concat!(
            "c.hcl:1:1: error: offering \"x\" has no tiers\n",
            "  its current version \"1.0.0\" declares no input, tier, compose or output blocks; every resource chooses a tier, so declare at least one tier block there\n",
            "c.hcl:2:11: error: attribute \"title\" must be a constant: undefined variable `var`",
        ),
    );
}

#[test]
fn bad_names() {
    check(
        "catalog { provider_prefix = \"Acme_1\" }\noffering \"Bad-Name\" {\n  title = \"X\"\n  owner { team = \"t\" }\n  version \"1.0\" { status = \"current\" }\n}\n",
        r#"
c.hcl:1:29: error: invalid provider_prefix "Acme_1"; expected lowercase letters and digits, starting with a letter
c.hcl:2:1: error: offering "Bad-Name" has no tiers
  its current version "1.0" declares no input, tier, compose or output blocks; every resource chooses a tier, so declare at least one tier block there
c.hcl:2:10: error: invalid offering name "Bad-Name"; expected lowercase letters, digits and underscores, starting with a letter
c.hcl:5:11: error: invalid version "1.0"; expected a semantic version like 1.2.0
"#,
    );
    check(
        "offering {\n}\n",
        "c.hcl:1:1: error: block \"offering\" needs exactly one label, e.g. offering \"name\" { ... }",
    );
}

#[test]
fn bad_references() {
    check(
        &in_version(concat!(
            "    input \"name\" { type = string }\n",
            "    tier \"a\" {\n",
            "      price {\n",
            "        amount   = 1\n",
            "        unit     = \"month\"\n",
            "        quantity = input.size\n",
            "      }\n",
            "      values = { conns = 1, extra = 2 }\n",
            "    }\n",
            "    tier \"b\" {\n",
            "      price {\n",
            "        amount = 1\n",
            "        unit   = \"hour\"\n",
            "      }\n",
            "      values = { conns = 2 }\n",
            "    }\n",
            "    compose {\n",
            "      primitive \"p\" {\n",
            "        driver = \"pg.role\"\n",
            "        inputs = {\n",
            "          a = input.nam\n",
            "          b = tier.values.extra\n",
            "          c = primitive.q.outputs.x\n",
            "          d = foo.bar\n",
            "          e = \"${input.name}-${tier.values.conns}\"\n",
            "          f = upper(input.name)\n",
            "        }\n",
            "      }\n",
            "    }\n",
            "    output \"o\" { value = primitive.p.name }\n",
        )),
        r#"
c.hcl:11:20: error: unknown input "size"
c.hcl:26:15: error: unknown input "nam"
c.hcl:27:15: error: tier value "extra" is not defined by tier "b"
c.hcl:28:15: error: unknown primitive "q"
c.hcl:29:15: error: unknown reference "foo"; expressions can reference input.<name>, tier.values.<key> and primitive.<name>.outputs.<key>
c.hcl:31:15: error: unknown function "upper"; catalog expressions cannot call functions
c.hcl:35:26: error: a primitive reference must look like primitive.<name>.outputs.<key>
"#,
    );
}

#[test]
fn quantity_sees_only_inputs() {
    check(
        &in_version(
            "    tier \"a\" {\n      price {\n        amount   = 1\n        unit     = \"month\"\n        quantity = tier.values.x\n      }\n    }\n",
        ),
        "c.hcl:10:20: error: tier.values.x cannot be referenced here; only input.<name> can",
    );
}

#[test]
fn cycles() {
    check(
        &in_version(concat!(
            "    compose {\n",
            "      primitive \"a\" {\n",
            "        driver = \"x.y\"\n",
            "        inputs = { v = primitive.b.outputs.v }\n",
            "      }\n",
            "      primitive \"b\" {\n",
            "        driver = \"x.y\"\n",
            "        inputs = { v = primitive.a.outputs.v }\n",
            "      }\n",
            "      primitive \"c\" {\n",
            "        driver = \"x.y\"\n",
            "        inputs = { v = primitive.c.outputs.v }\n",
            "      }\n",
            "    }\n",
        )),
        r#"
c.hcl:7:7: error: cycle between primitives: a -> b -> a
c.hcl:15:7: error: cycle between primitives: c -> c
"#,
    );
}

#[test]
fn duplicates() {
    check(
        &in_version(concat!(
            "    input \"a\" { type = string }\n",
            "    input \"a\" { type = number }\n",
            "    tier \"t\" {\n",
            "      price {\n",
            "        amount = 1\n",
            "        unit   = \"month\"\n",
            "      }\n",
            "    }\n",
            "    tier \"t\" {}\n",
            "    compose {\n",
            "      primitive \"p\" { driver = \"x.y\" }\n",
            "      primitive \"p\" { driver = \"x.y\" }\n",
            "    }\n",
            "    output \"o\" { value = 1 }\n",
            "    output \"o\" { value = 2 }\n",
            "  }\n",
            "  version \"1.0.0\" {\n",
            "    status = \"retired\"\n",
        )),
        r#"
c.hcl:7:11: error: duplicate input "a"
  first declared at c.hcl:6:11
c.hcl:14:10: error: duplicate tier "t"
  first declared at c.hcl:8:10
c.hcl:17:17: error: duplicate primitive "p"
  first declared at c.hcl:16:17
c.hcl:20:12: error: duplicate output "o"
  first declared at c.hcl:19:12
c.hcl:22:11: error: duplicate version "1.0.0"
  first declared at c.hcl:4:11
"#,
    );
}

#[test]
fn defaults_respect_guardrails() {
    check(
        &in_version(concat!(
            "    input \"a\" {\n",
            "      type    = string\n",
            "      pattern = \"^[a-z]+$\"\n",
            "      default = \"ABC\"\n",
            "    }\n",
            "    input \"b\" {\n",
            "      type    = number\n",
            "      min     = 1\n",
            "      max     = 5\n",
            "      default = 9\n",
            "    }\n",
            "    input \"c\" {\n",
            "      type    = set(string)\n",
            "      enum    = [\"x\"]\n",
            "      default = [\"x\", \"y\"]\n",
            "    }\n",
            "    input \"d\" {\n",
            "      type       = string\n",
            "      max_length = 2\n",
            "      default    = \"abc\"\n",
            "    }\n",
            "    input \"e\" {\n",
            "      type    = bool\n",
            "      default = \"yes\"\n",
            "    }\n",
        )),
        r#"
c.hcl:9:17: error: default violates the input's own guardrails: "ABC" does not match the pattern ^[a-z]+$
c.hcl:15:17: error: default violates the input's own guardrails: 9 is greater than the maximum of 5
c.hcl:20:17: error: default violates the input's own guardrails: element [1]: "y" is not one of "x"
c.hcl:25:20: error: default violates the input's own guardrails: length 3 is greater than the maximum of 2
c.hcl:29:17: error: default violates the input's own guardrails: expected bool, got string
"#,
    );
}

#[test]
fn guardrail_declarations() {
    check(
        &in_version(concat!(
            "    input \"a\" {\n",
            "      type       = number\n",
            "      pattern    = \"x\"\n",
            "      min        = 5\n",
            "      max        = 1\n",
            "      min_length = 1\n",
            "      enum       = [1, \"two\"]\n",
            "    }\n",
            "    input \"b\" {\n",
            "      type       = string\n",
            "      pattern    = \"^(a\"\n",
            "      max_length = -1\n",
            "    }\n",
        )),
        r#"
c.hcl:8:20: error: pattern applies only to string values, not number
c.hcl:10:20: error: max is less than min
c.hcl:11:20: error: min_length applies only to strings and collections, not number
c.hcl:12:20: error: enum value "two" is not a number
c.hcl:16:20: error: invalid regex "^(a": unclosed group
c.hcl:17:20: error: attribute "max_length" must be a non-negative integer, got -1
"#,
    );
}

#[test]
fn dates_successors_transitions() {
    check(
        concat!(
            "offering \"x\" {\n",
            "  title = \"X\"\n",
            "  owner { team = \"t\" }\n",
            "  version \"1.0.0\" {\n",
            "    status = \"deprecated\"\n",
            "    deprecation {\n",
            "      create_until = \"2027-02-30\"\n",
            "      update_until = \"next year\"\n",
            "      successor    = \"2.0.0\"\n",
            "    }\n",
            "    tier \"a\" {\n",
            "      price {\n",
            "        amount = 1\n",
            "        unit   = \"day\"\n",
            "      }\n",
            "      transitions_to = [\"b\", \"huge\"]\n",
            "    }\n",
            "    tier \"b\" {\n",
            "      price {\n",
            "        amount = 1\n",
            "        unit   = \"month\"\n",
            "      }\n",
            "    }\n",
            "  }\n",
            "}\n",
        ),
        r#"
c.hcl:7:22: error: invalid date "2027-02-30" in create_until; expected YYYY-MM-DD
c.hcl:8:22: error: invalid date "next year" in update_until; expected YYYY-MM-DD
c.hcl:9:22: error: unknown successor version "2.0.0" of offering "x"
c.hcl:14:18: error: invalid unit "day"; expected month or hour
c.hcl:16:30: error: unknown transition target "huge" in tier "a"
"#,
    );
}

#[test]
fn reserved_and_colliding_names() {
    check(
        &in_version(concat!(
            "    input \"id\" { type = string }\n",
            "    input \"size\" { type = number }\n",
            "    output \"size\" { value = input.size }\n",
            "    output \"monthly_cost\" { value = 1 }\n",
        )),
        r#"
c.hcl:6:11: error: input name "id" is reserved
  resources carry attributes of these names themselves: id, tier, team, labels, offering_version, monthly_cost, status, secret_version
c.hcl:8:12: error: output "size" has the same name as an input; both would be the attribute "size"
c.hcl:9:12: error: output name "monthly_cost" is reserved
  resources carry attributes of these names themselves: id, tier, team, labels, offering_version, monthly_cost, status, secret_version
"#,
    );
}

#[test]
fn many_problems_in_one_file_are_all_reported() {
    check(
        concat!(
            "offering \"a\" {\n",
            "  title = 1\n",
            "  owner { team = \"t\" }\n",
            "  version \"1.0.0\" {\n",
            "    status = \"current\"\n",
            "    input \"x\" { type = text }\n",
            "  }\n",
            "}\n",
            "offering \"b\" {\n",
            "  title = \"B\"\n",
            "  owner { team = \"t\" }\n",
            "  version \"1.0.0\" { status = \"gone\" }\n",
            "}\n",
        ),
        r#"
c.hcl:2:11: error: attribute "title" must be a string, got 1
c.hcl:4:3: error: version "1.0.0" has no tiers
  every resource chooses a tier; declare at least one tier block, e.g. tier "standard" { price { amount = 0, unit = "month" } }
c.hcl:6:24: error: invalid type "text"
  expected string, number, bool, list(T), set(T) or map(T) where T is string, number or bool
c.hcl:12:30: error: invalid status "gone"; expected preview, current, deprecated or retired
"#,
    );
}

#[test]
fn driver_names() {
    check(
        &in_version("    compose {\n      primitive \"p\" { driver = \"postgres\" }\n    }\n"),
        "c.hcl:7:32: error: invalid driver \"postgres\"; expected backend.kind, e.g. postgres.role",
    );
}

#[test]
fn topological_order() {
    let text = in_version(concat!(
        "    compose {\n",
        "      primitive \"grant\" {\n",
        "        driver = \"pg.grant\"\n",
        "        inputs = { schema = primitive.schema.outputs.name, role = primitive.role.outputs.name }\n",
        "      }\n",
        "      primitive \"schema\" {\n",
        "        driver = \"pg.schema\"\n",
        "        inputs = { owner = primitive.role.outputs.name }\n",
        "      }\n",
        "      primitive \"role\" { driver = \"pg.role\" }\n",
        "      primitive \"other\" { driver = \"pg.role\" }\n",
        "    }\n",
    ));
    let (catalog, diags) = load_sources(vec![Source {
        name: "c.hcl".into(),
        text,
    }]);
    assert!(diags.is_empty(), "{diags:?}");
    let Some(offering) = catalog.offering("o") else {
        panic!("no offering")
    };
    let order: Vec<(&str, Vec<String>)> = offering
        .current()
        .compose
        .iter()
        .map(|p| (p.name.as_str(), p.depends_on.clone()))
        .collect();
    assert_eq!(
        order,
        [
            ("role", vec![]),
            ("schema", vec!["role".to_string()]),
            ("grant", vec!["schema".to_string(), "role".to_string()]),
            ("other", vec![]),
        ]
    );
}

#[test]
fn for_expression_locals_are_not_references() {
    check(
        &in_version(concat!(
            "    input \"names\" { type = list(string) }\n",
            "    output \"upper\" { value = [for n in input.names : \"${n}_x\" if n != \"\"] }\n",
        )),
        "",
    );
}

#[test]
fn negative_prices() {
    check(
        &in_version(
            "    tier \"a\" {\n      price {\n        amount = -5\n        unit   = \"month\"\n      }\n    }\n    tier \"b\" {\n      price {\n        amount = -0.5\n        unit   = \"hour\"\n      }\n    }\n",
        ),
        r#"
c.hcl:8:18: error: price amount must not be negative, got -5
c.hcl:14:18: error: price amount must not be negative, got -0.5
"#,
    );
    // Zero is a price (free tiers exist).
    check(
        &in_version(
            "    tier \"a\" {\n      price {\n        amount = 0\n        unit   = \"month\"\n      }\n    }\n",
        ),
        "",
    );
}

#[test]
fn versions_without_tiers() {
    // A version with a schema but no tier block.
    check(
        "offering \"o\" {\n  title = \"O\"\n  owner { team = \"t\" }\n  version \"1.0.0\" {\n    status = \"current\"\n    input \"a\" {\n      type = string\n    }\n  }\n}\n",
        r#"
c.hcl:4:3: error: version "1.0.0" has no tiers
  every resource chooses a tier; declare at least one tier block, e.g. tier "standard" { price { amount = 0, unit = "month" } }
"#,
    );
    // No version declares a schema: reported once, for the offering.
    check(
        "offering \"o\" {\n  title = \"O\"\n  owner { team = \"t\" }\n  version \"1.0.0\" {\n    status = \"current\"\n  }\n  version \"0.9.0\" {\n    status = \"deprecated\"\n  }\n}\n",
        r#"
c.hcl:1:1: error: offering "o" has no tiers
  its current version "1.0.0" declares no input, tier, compose or output blocks; every resource chooses a tier, so declare at least one tier block there
"#,
    );
    // An older version without blocks inherits the current version's tiers: no problem.
    let text = in_version("").replace(
        "  }\n}\n",
        "  }\n  version \"0.9.0\" {\n    status = \"deprecated\"\n  }\n}\n",
    );
    check(&text, "");
}

#[test]
fn numbers_that_a_float_cannot_hold() {
    check(
        &in_version(
            "    input \"a\" {\n      type    = number\n      default = 123456789012345678901234567890\n    }\n    input \"b\" {\n      type    = list(number)\n      default = [1, 0.1, 1e-400]\n      max     = 1.00000000000000000001\n    }\n",
        ),
        r#"
c.hcl:8:17: error: number 123456789012345678901234567890 cannot be represented exactly
  numbers are 64-bit floats (about 15 significant digits, magnitudes up to 1.8e308); this one would become 1.2345678901234568e29
c.hcl:12:26: error: number 1e-400 cannot be represented exactly
  numbers are 64-bit floats (about 15 significant digits, magnitudes up to 1.8e308); this one would become 0e0
c.hcl:13:17: error: number 1.00000000000000000001 cannot be represented exactly
  numbers are 64-bit floats (about 15 significant digits, magnitudes up to 1.8e308); this one would become 1e0
"#,
    );
    // Expressions evaluated later (compose inputs, outputs, price quantities) are checked too.
    check(
        &in_version(concat!(
            "    input \"a\" {\n      type = number\n    }\n",
            "    compose {\n      primitive \"p\" {\n        driver = \"x.y\"\n",
            "        inputs = { n = input.a * 1e-999 }\n      }\n    }\n",
        )),
        r#"
c.hcl:12:34: error: number 1e-999 cannot be represented exactly
  numbers are 64-bit floats (about 15 significant digits, magnitudes up to 1.8e308); this one would become 0e0
"#,
    );
    // Exactly representable ones, however written, are fine.
    check(
        &in_version(
            "    input \"a\" {\n      type    = list(number)\n      default = [18446744073709551615, 1e29, 0.1, 1.50, 2.5e-3]\n    }\n",
        ),
        "",
    );
    check(
        &in_version("    input \"a\" {\n      type    = number\n      default = 1e400\n    }\n"),
        r#"
c.hcl:8:17: error: number 1e400 is out of range
  numbers are 64-bit floats; their magnitude must be below about 1.8e308
"#,
    );
    check(
        &in_version(
            "    input \"a\" {\n      type    = list(number)\n      default = [\n        1,\n        -2.5E+400,\n      ]\n    }\n",
        ),
        r#"
c.hcl:10:10: error: number 2.5E+400 is out of range
  numbers are 64-bit floats; their magnitude must be below about 1.8e308
"#,
    );
}

#[test]
fn arithmetic_without_a_finite_result_is_a_diagnostic_not_a_panic() {
    // Found by the catalog_load / broker_config fuzz targets: hcl's arithmetic
    // debug-asserts a finite result.
    check(
        &in_version("    input \"a\" {\n      type    = number\n      default = 1/0\n    }\n"),
        "c.hcl:8:17: error: attribute \"default\" must be a constant: arithmetic on 1 and 0 has no finite result (division by zero or overflow)",
    );
    for (ty, expr) in [
        ("number", "0/0"),
        ("number", "7 % 0"),
        ("number", "1e308 * 10"),
        ("list(number)", "[1, (2 - 1/0)]"),
    ] {
        let text = in_version(&format!(
            "    input \"a\" {{\n      type    = {ty}\n      default = {expr}\n    }}\n"
        ));
        let (_, diags) = load_sources(vec![Source {
            name: "c.hcl".into(),
            text,
        }]);
        assert!(
            diags
                .iter()
                .any(|d| d.to_string().contains("no finite result")),
            "{expr}: {diags:?}"
        );
    }
}
