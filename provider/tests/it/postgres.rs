//! The PostgreSQL driver against a real server: the one the `PG*` variables
//! name (`scripts/pg start DIR && . DIR/env`). Without `PGHOST` the tests say
//! they are skipped and pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use provider::drivers::postgres::{Postgres, Settings};
use provider::drivers::{Driver, DriverError, Owner, Values};
use tokio_postgres::{Client, NoTls};

fn settings() -> Option<Settings> {
    if std::env::var_os("PGHOST").is_none() {
        eprintln!(
            "SKIPPED: no PostgreSQL (scripts/test starts one; or scripts/pg start DIR && . DIR/env)"
        );
        return None;
    }
    Some(Settings::from_env())
}

struct Kit {
    settings: Settings,
    pg: Postgres,
    role: Arc<dyn Driver>,
    database: Arc<dyn Driver>,
    schema: Arc<dyn Driver>,
    grant: Arc<dyn Driver>,
}

fn kit() -> Option<Kit> {
    let settings = settings()?;
    let pg = Postgres::new(settings.clone());
    let mut drivers = pg
        .drivers()
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>();
    let mut take = |name: &str| drivers.remove(name).expect("driver");
    Some(Kit {
        role: take("postgres.role"),
        database: take("postgres.database"),
        schema: take("postgres.schema"),
        grant: take("postgres.grant"),
        settings,
        pg,
    })
}

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn owner(resource: &str, primitive: &str) -> Owner {
    Owner {
        offering: "postgres_database".into(),
        resource_id: resource.into(),
        primitive: primitive.into(),
        generation: Some("0123456789ab".into()),
    }
}

/// Reads back an object the test expects to exist.
async fn read_existing(driver: &dyn Driver, state: &Values) -> Values {
    driver.read(state).await.expect("read").expect("exists")
}

fn values(pairs: &[(&str, hcl::Value)]) -> Values {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn text(state: &Values, key: &str) -> String {
    match state.get(key) {
        Some(hcl::Value::String(s)) => s.clone(),
        other => panic!("{key} is not a string: {other:?}"),
    }
}

fn list(state: &Values, key: &str) -> Vec<String> {
    match state.get(key) {
        Some(hcl::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().expect("string element").to_owned())
            .collect(),
        other => panic!("{key} is not a list: {other:?}"),
    }
}

fn int(state: &Values, key: &str) -> i64 {
    state
        .get(key)
        .and_then(|v| v.as_i64())
        .unwrap_or_else(|| panic!("{key} is not a number"))
}

async fn connect_as(
    settings: &Settings,
    user: &str,
    password: Option<&str>,
    database: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(settings.host_or_default())
        .port(settings.port_or_default())
        .user(user)
        .dbname(database);
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A superuser connection (the test's own, for out-of-band changes).
async fn superuser(settings: &Settings, database: &str) -> Client {
    let user = settings
        .username
        .clone()
        .unwrap_or_else(|| "postgres".into());
    connect_as(settings, &user, settings.password.as_deref(), database)
        .await
        .expect("superuser connection")
}

/// Terraform runs ten operations at once; every role and database operation
/// uses the maintenance database. Waves of ten must reuse the connections of
/// the first wave instead of closing most of them and connecting again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn maintenance_connections_are_reused_at_terraform_parallelism() {
    let Some(kit) = kit() else { return };
    const WAVES: usize = 4;
    const PARALLEL: usize = 10;
    let res = unique("pres");
    for wave in 0..WAVES {
        let tasks: Vec<_> = (0..PARALLEL)
            .map(|i| {
                let (role, o) = (kit.role.clone(), owner(&res, &format!("w{wave}r{i}")));
                let inputs = role_inputs(&unique("pool"), false, -1);
                tokio::spawn(async move {
                    let state = role.create(&o, &inputs).await?;
                    role.delete(&o, &state).await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("create and delete");
        }
    }
    let made = kit.pg.pool().connections_made();
    assert!(
        made <= PARALLEL,
        "{made} connections for {WAVES} waves of {PARALLEL} role create+delete: connections are not reused"
    );
}

/// Creating a database without extensions never connects into it (it comes
/// from template0, whose contents are known); with extensions, once (to
/// converge and read them back) — however many are created at once. Either
/// way the created state matches what a later read finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_create_connects_into_the_new_database_only_for_extensions() {
    let Some(kit) = kit() else { return };
    const PARALLEL: usize = 10;
    let res = unique("dres");
    let owner_name = unique("downer");
    let owner_state = kit
        .role
        .create(&owner(&res, "owner"), &role_inputs(&owner_name, false, -1))
        .await
        .expect("owner");
    let mut connects = Vec::new();
    for extensions in [vec![], vec!["citext"]] {
        let before = kit.pg.pool().connections_made();
        let tasks: Vec<_> = (0..PARALLEL)
            .map(|i| {
                let (database, o) = (kit.database.clone(), owner(&res, &format!("db{i}")));
                let inputs = values(&[
                    ("name", unique("ddb").into()),
                    ("owner", owner_name.clone().into()),
                    ("extensions", extensions.clone().into()),
                ]);
                tokio::spawn(async move { database.create(&o, &inputs).await.map(|s| (o, s)) })
            })
            .collect();
        let mut made = Vec::new();
        for task in tasks {
            made.push(task.await.expect("join").expect("create"));
        }
        connects.push(kit.pg.pool().connections_made() - before);
        for (o, state) in made {
            assert_eq!(list(&state, "extensions"), extensions);
            let read = read_existing(kit.database.as_ref(), &state).await;
            assert_eq!(read, state, "create's state and a later read differ");
            kit.database.delete(&o, &state).await.expect("delete");
        }
    }
    kit.role
        .delete(&owner(&res, "owner"), &owner_state)
        .await
        .expect("delete owner");
    assert!(
        connects[0] <= PARALLEL,
        "{} connections to create {PARALLEL} databases without extensions at once (at most one maintenance connection each, none into the new databases)",
        connects[0]
    );
    assert!(
        connects[1] <= 2 * PARALLEL,
        "{} connections to create {PARALLEL} databases with an extension at once (at most one maintenance connection and one into each new database each)",
        connects[1]
    );
}

fn role_inputs(name: &str, login: bool, limit: i64) -> Values {
    values(&[
        ("name", name.into()),
        ("login", login.into()),
        ("connection_limit", limit.into()),
    ])
}

#[tokio::test]
async fn role_lifecycle_password_login_and_drift() {
    let Some(kit) = kit() else { return };
    let me = owner(&unique("res"), "owner");
    let name = unique("role");
    let state = kit
        .role
        .create(&me, &role_inputs(&name, true, 5))
        .await
        .expect("create");
    assert_eq!(text(&state, "name"), name);
    assert_eq!(state.get("login"), Some(&hcl::Value::Bool(true)));
    assert_eq!(int(&state, "connection_limit"), 5);
    assert_eq!(state.get("valid_until"), Some(&hcl::Value::Null));
    assert_eq!(list(&state, "member_of"), Vec::<String>::new());
    let password = text(&state, "password");
    assert!(password.len() >= 32 && password.chars().all(|c| c.is_ascii_alphanumeric()));
    let uri = text(&state, "uri");
    assert!(
        uri.starts_with(&format!("postgres://{name}:{password}@")),
        "{uri}"
    );
    assert!(
        uri.ends_with(&format!(":{}/postgres", kit.settings.port_or_default())),
        "{uri}"
    );

    // The password works (SCRAM verifier made by the driver).
    let client = connect_as(&kit.settings, &name, Some(&password), "postgres")
        .await
        .expect("login as the role");
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(who, name);
    drop(client);
    assert!(
        connect_as(&kit.settings, &name, Some("wrong"), "postgres")
            .await
            .is_err()
    );

    // Read is the same; drift shows.
    let read = read_existing(kit.role.as_ref(), &state).await;
    assert_eq!(read, state);
    let admin = superuser(&kit.settings, "postgres").await;
    admin
        .batch_execute(&format!("ALTER ROLE \"{name}\" CONNECTION LIMIT 99"))
        .await
        .expect("alter");
    let drifted = read_existing(kit.role.as_ref(), &state).await;
    assert_eq!(int(&drifted, "connection_limit"), 99);
    assert_eq!(text(&drifted, "password"), password, "carried over");

    // Update converges and keeps the password.
    let mut inputs = role_inputs(&name, true, 7);
    inputs.insert("valid_until".into(), "2099-01-01".into());
    let updated = kit
        .role
        .update(&me, &drifted, &inputs)
        .await
        .expect("update");
    assert_eq!(int(&updated, "connection_limit"), 7);
    assert_eq!(text(&updated, "valid_until"), "2099-01-01");
    assert_eq!(text(&updated, "password"), password);
    let limit: i32 = admin
        .query_one(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
            &[&name],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(limit, 7);
    assert_eq!(read_existing(kit.role.as_ref(), &updated).await, updated);

    // Memberships: granted, then a REVOKE out of band shows.
    let group = unique("group");
    let group_owner = owner(&unique("res"), "group");
    let group_state = kit
        .role
        .create(&group_owner, &role_inputs(&group, false, -1))
        .await
        .expect("group");
    assert_eq!(group_state.get("uri"), Some(&hcl::Value::Null));
    inputs.insert("member_of".into(), vec![group.clone()].into());
    inputs.shift_remove("valid_until");
    let member = kit
        .role
        .update(&me, &updated, &inputs)
        .await
        .expect("join group");
    assert_eq!(list(&member, "member_of"), [group.as_str()]);
    assert_eq!(
        member.get("valid_until"),
        Some(&hcl::Value::Null),
        "expiry cleared"
    );
    admin
        .batch_execute(&format!("REVOKE \"{group}\" FROM \"{name}\""))
        .await
        .expect("revoke");
    let read = read_existing(kit.role.as_ref(), &member).await;
    assert_eq!(list(&read, "member_of"), Vec::<String>::new());

    // Delete, then delete again (gone) succeeds.
    kit.role.delete(&me, &read).await.expect("delete");
    assert_eq!(kit.role.read(&read).await.expect("read"), None);
    kit.role
        .delete(&me, &read)
        .await
        .expect("delete what is gone");
    kit.role
        .delete(&group_owner, &group_state)
        .await
        .expect("delete group");
}

#[tokio::test]
async fn database_with_owner_and_extensions() {
    let Some(kit) = kit() else { return };
    let me = owner(&unique("res"), "db");
    let role_owner = owner(&me.resource_id, "owner");
    let role = unique("dbowner");
    let role_state = kit
        .role
        .create(&role_owner, &role_inputs(&role, true, -1))
        .await
        .expect("role");
    let name = unique("db");
    let inputs = values(&[
        ("name", name.clone().into()),
        ("owner", role.clone().into()),
        ("connection_limit", 10.into()),
        ("extensions", vec!["pg_trgm", "citext"].into()),
    ]);
    let state = kit
        .database
        .create(&me, &inputs)
        .await
        .expect("create database");
    assert_eq!(text(&state, "name"), name);
    assert_eq!(text(&state, "owner"), role);
    assert_eq!(text(&state, "encoding"), "UTF8");
    assert_eq!(int(&state, "connection_limit"), 10);
    assert_eq!(list(&state, "extensions"), ["pg_trgm", "citext"]);
    assert_eq!(read_existing(kit.database.as_ref(), &state).await, state);

    // The owner can log in to it.
    let password = text(&role_state, "password");
    let client = connect_as(&kit.settings, &role, Some(&password), &name)
        .await
        .expect("owner logs in");
    client
        .batch_execute("CREATE TABLE t (x citext)")
        .await
        .expect("owner creates a table using citext");
    drop(client);

    // Drift, then update.
    let admin = superuser(&kit.settings, "postgres").await;
    admin
        .batch_execute(&format!("ALTER DATABASE \"{name}\" CONNECTION LIMIT 3"))
        .await
        .expect("alter");
    let drifted = read_existing(kit.database.as_ref(), &state).await;
    assert_eq!(int(&drifted, "connection_limit"), 3);
    let mut inputs = inputs.clone();
    inputs.insert("connection_limit".into(), 20.into());
    inputs.insert("extensions".into(), vec!["citext", "pgcrypto"].into());
    let updated = kit
        .database
        .update(&me, &drifted, &inputs)
        .await
        .expect("update");
    assert_eq!(int(&updated, "connection_limit"), 20);
    assert_eq!(list(&updated, "extensions"), ["citext", "pgcrypto"]);

    // An encoding change is refused, clearly.
    inputs.insert("encoding".into(), "LATIN1".into());
    let err = kit
        .database
        .update(&me, &updated, &inputs)
        .await
        .expect_err("encoding");
    assert!(err.0.contains("encoding"), "{err}");

    kit.database
        .delete(&me, &updated)
        .await
        .expect("delete database");
    assert_eq!(kit.database.read(&updated).await.expect("read"), None);
    kit.database
        .delete(&me, &updated)
        .await
        .expect("delete what is gone");
    kit.role
        .delete(&role_owner, &role_state)
        .await
        .expect("delete role");
}

#[tokio::test]
async fn schema_and_grant_with_out_of_band_revoke() {
    let Some(kit) = kit() else { return };
    let res = unique("res");
    let (o_owner, o_reader, o_db, o_schema, o_grant) = (
        owner(&res, "owner"),
        owner(&res, "reader"),
        owner(&res, "db"),
        owner(&res, "schema"),
        owner(&res, "readers"),
    );
    let schema_owner = unique("sowner");
    let reader = unique("reader");
    let owner_state = kit
        .role
        .create(&o_owner, &role_inputs(&schema_owner, false, -1))
        .await
        .expect("owner");
    let reader_state = kit
        .role
        .create(&o_reader, &role_inputs(&reader, true, -1))
        .await
        .expect("reader");
    let db = unique("sdb");
    let db_state = kit
        .database
        .create(
            &o_db,
            &values(&[
                ("name", db.clone().into()),
                ("owner", schema_owner.clone().into()),
            ]),
        )
        .await
        .expect("database");

    let schema = unique("app");
    let schema_inputs = values(&[
        ("database", db.clone().into()),
        ("name", schema.clone().into()),
        ("owner", schema_owner.clone().into()),
    ]);
    let schema_state = kit
        .schema
        .create(&o_schema, &schema_inputs)
        .await
        .expect("schema");
    assert_eq!(text(&schema_state, "owner"), schema_owner);
    assert_eq!(
        read_existing(kit.schema.as_ref(), &schema_state).await,
        schema_state
    );
    // Create is idempotent for the resource whose marker the schema carries
    // (a re-run after a crash) and refused for any other resource.
    let again = kit
        .schema
        .create(&o_schema, &schema_inputs)
        .await
        .expect("the same resource adopts its own schema");
    assert_eq!(again, schema_state);
    let err = kit
        .schema
        .create(&owner(&unique("other"), "schema"), &schema_inputs)
        .await
        .expect_err("another resource's schema");
    assert!(err.0.contains("is managed by another resource"), "{err}");
    // Another instance (generation) of the same resource takes it over; the
    // first instance then neither changes nor drops it.
    let newer = Owner {
        generation: Some("ba9876543210".into()),
        ..o_schema.clone()
    };
    kit.schema
        .create(&newer, &schema_inputs)
        .await
        .expect("another generation adopts");
    let err = kit
        .schema
        .delete(&o_schema, &schema_state)
        .await
        .expect_err("superseded");
    assert!(err.is_superseded(), "{err}");
    assert!(
        read_existing(kit.schema.as_ref(), &schema_state).await == schema_state,
        "the superseded delete dropped the schema"
    );
    kit.schema
        .create(&o_schema, &schema_inputs)
        .await
        .expect("and back");

    // A table made by the schema owner before the grant.
    let admin = superuser(&kit.settings, &db).await;
    admin
        .batch_execute(&format!(
            "SET ROLE \"{schema_owner}\"; CREATE TABLE \"{schema}\".before (x int); RESET ROLE"
        ))
        .await
        .expect("table");

    let grant_inputs = values(&[
        ("database", db.clone().into()),
        ("schema", schema.clone().into()),
        ("roles", vec![reader.clone()].into()),
        ("privileges", "read".into()),
    ]);
    let grant_state = kit
        .grant
        .create(&o_grant, &grant_inputs)
        .await
        .expect("grant");
    assert_eq!(list(&grant_state, "roles"), [reader.as_str()]);
    assert_eq!(text(&grant_state, "privileges"), "read");

    // Tables made after the grant are readable too (default privileges).
    admin
        .batch_execute(&format!(
            "SET ROLE \"{schema_owner}\"; CREATE TABLE \"{schema}\".after (x int); RESET ROLE"
        ))
        .await
        .expect("table");
    let password = text(&reader_state, "password");
    let as_reader = connect_as(&kit.settings, &reader, Some(&password), &db)
        .await
        .expect("reader logs in");
    for table in ["before", "after"] {
        as_reader
            .batch_execute(&format!("SELECT * FROM \"{schema}\".{table}"))
            .await
            .unwrap_or_else(|e| panic!("reader selects from {table}: {e}"));
    }
    assert!(
        as_reader
            .batch_execute(&format!("INSERT INTO \"{schema}\".before VALUES (1)"))
            .await
            .is_err()
    );
    assert_eq!(
        read_existing(kit.grant.as_ref(), &grant_state).await,
        grant_state
    );

    // REVOKE out of band: the role is missing on read; update grants again.
    admin
        .batch_execute(&format!(
            "REVOKE USAGE ON SCHEMA \"{schema}\" FROM \"{reader}\""
        ))
        .await
        .expect("revoke");
    let drifted = read_existing(kit.grant.as_ref(), &grant_state).await;
    assert_eq!(list(&drifted, "roles"), Vec::<String>::new());
    let regranted = kit
        .grant
        .update(&o_grant, &drifted, &grant_inputs)
        .await
        .expect("update");
    assert_eq!(list(&regranted, "roles"), [reader.as_str()]);

    // write, then back to an explicit list.
    let mut write = grant_inputs.clone();
    write.insert("privileges".into(), "write".into());
    let written = kit
        .grant
        .update(&o_grant, &regranted, &write)
        .await
        .expect("write");
    assert_eq!(list(&written, "roles"), [reader.as_str()]);
    as_reader
        .batch_execute(&format!("INSERT INTO \"{schema}\".before VALUES (1)"))
        .await
        .expect("reader may write");
    let mut explicit = grant_inputs.clone();
    explicit.insert("privileges".into(), vec!["USAGE", "SELECT"].into());
    let narrowed = kit
        .grant
        .update(&o_grant, &written, &explicit)
        .await
        .expect("narrow");
    assert_eq!(list(&narrowed, "roles"), [reader.as_str()]);
    assert!(
        as_reader
            .batch_execute(&format!("INSERT INTO \"{schema}\".before VALUES (2)"))
            .await
            .is_err()
    );
    drop(as_reader);

    kit.grant.delete(&o_grant, &narrowed).await.expect("revoke");
    let usage: bool = admin
        .query_one(
            "SELECT has_schema_privilege($1, $2, 'USAGE')",
            &[&reader, &schema],
        )
        .await
        .expect("query")
        .get(0);
    assert!(!usage);
    let after_revoke = kit
        .grant
        .read(&narrowed)
        .await
        .expect("read")
        .expect("schema exists");
    assert_eq!(list(&after_revoke, "roles"), Vec::<String>::new());
    drop(admin);

    kit.schema
        .delete(&o_schema, &schema_state)
        .await
        .expect("drop schema");
    assert_eq!(kit.schema.read(&schema_state).await.expect("read"), None);
    assert_eq!(
        kit.grant.read(&narrowed).await.expect("read"),
        None,
        "schema gone"
    );
    kit.grant
        .delete(&o_grant, &narrowed)
        .await
        .expect("grant on a gone schema");
    kit.database
        .delete(&o_db, &db_state)
        .await
        .expect("drop db");
    kit.schema
        .delete(&o_schema, &schema_state)
        .await
        .expect("schema in a gone database");
    assert_eq!(kit.schema.read(&schema_state).await.expect("read"), None);
    kit.role
        .delete(&o_reader, &reader_state)
        .await
        .expect("drop reader");
    kit.role
        .delete(&o_owner, &owner_state)
        .await
        .expect("drop owner");
}

/// Terraform applies sibling resources in parallel: several grants on ONE
/// schema (e.g. a read-write and a read-only role of modules/service-database)
/// are created and deleted at the same time. Each must succeed; PostgreSQL
/// would otherwise fail one with "tuple concurrently updated".
#[tokio::test]
async fn concurrent_grants_on_one_schema() {
    let Some(kit) = kit() else { return };
    let res = unique("cres");
    let schema_owner = unique("csowner");
    let owner_state = kit
        .role
        .create(
            &owner(&res, "owner"),
            &role_inputs(&schema_owner, false, -1),
        )
        .await
        .expect("owner");
    let db = unique("cdb");
    let db_state = kit
        .database
        .create(
            &owner(&res, "db"),
            &values(&[
                ("name", db.clone().into()),
                ("owner", schema_owner.clone().into()),
            ]),
        )
        .await
        .expect("database");
    let schema = unique("capp");
    let schema_state = kit
        .schema
        .create(
            &owner(&res, "schema"),
            &values(&[
                ("database", db.clone().into()),
                ("name", schema.clone().into()),
                ("owner", schema_owner.clone().into()),
            ]),
        )
        .await
        .expect("schema");

    const N: usize = 8;
    let mut roles = Vec::new();
    for i in 0..N {
        let name = unique(&format!("cr{i}"));
        let state = kit
            .role
            .create(
                &owner(&res, &format!("r{i}")),
                &role_inputs(&name, true, -1),
            )
            .await
            .expect("role");
        roles.push((name, state));
    }
    let grant_inputs = |role: &str, i: usize| {
        values(&[
            ("database", db.clone().into()),
            ("schema", schema.clone().into()),
            ("roles", vec![role.to_owned()].into()),
            (
                "privileges",
                if i.is_multiple_of(2) { "write" } else { "read" }.into(),
            ),
        ])
    };

    let mut tasks = Vec::new();
    for (i, (role, _)) in roles.iter().enumerate() {
        let (grant, o, inputs) = (
            kit.grant.clone(),
            owner(&res, &format!("g{i}")),
            grant_inputs(role, i),
        );
        tasks.push(tokio::spawn(async move { grant.create(&o, &inputs).await }));
    }
    let mut states = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let state = task
            .await
            .expect("task")
            .unwrap_or_else(|e| panic!("concurrent grant {i}: {e}"));
        assert_eq!(list(&state, "roles"), [roles[i].0.as_str()]);
        states.push(state);
    }
    for state in &states {
        let read = kit.grant.read(state).await.expect("read").expect("schema");
        assert_eq!(
            &read, state,
            "every grant holds after the concurrent creates"
        );
    }

    let mut tasks = Vec::new();
    for (i, state) in states.into_iter().enumerate() {
        let (grant, o) = (kit.grant.clone(), owner(&res, &format!("g{i}")));
        tasks.push(tokio::spawn(async move { grant.delete(&o, &state).await }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        task.await
            .expect("task")
            .unwrap_or_else(|e| panic!("concurrent revoke {i}: {e}"));
    }
    // Every privilege is gone, so every role drops.
    for (i, (_, state)) in roles.iter().enumerate() {
        kit.role
            .delete(&owner(&res, &format!("r{i}")), state)
            .await
            .expect("drop role after the revokes");
    }
    kit.schema
        .delete(&owner(&res, "schema"), &schema_state)
        .await
        .expect("drop schema");
    kit.database
        .delete(&owner(&res, "db"), &db_state)
        .await
        .expect("drop db");
    kit.role
        .delete(&owner(&res, "owner"), &owner_state)
        .await
        .expect("drop owner");
}

#[tokio::test]
async fn unmarked_objects_are_refused_until_imported() {
    let Some(kit) = kit() else { return };
    let me = owner(&unique("res"), "owner");
    let name = unique("handmade");
    let admin = superuser(&kit.settings, "postgres").await;
    admin
        .batch_execute(&format!("CREATE ROLE \"{name}\" LOGIN CONNECTION LIMIT 4"))
        .await
        .expect("hand-made role");

    let err = kit
        .role
        .create(&me, &role_inputs(&name, true, 5))
        .await
        .expect_err("exists");
    assert_eq!(
        err.0,
        format!(
            "postgres.role \"{name}\": role \"{name}\" already exists; import it to manage it with this resource"
        )
    );
    let pretend = role_inputs(&name, true, 4);
    let err = kit.role.delete(&me, &pretend).await.expect_err("unmarked");
    assert!(
        err.0
            .contains("exists but is not managed by this resource; import it first"),
        "{err}"
    );
    let err = kit
        .role
        .update(&me, &pretend, &role_inputs(&name, true, 6))
        .await
        .expect_err("unmarked");
    assert!(err.0.contains("not managed by this resource"), "{err}");
    let still: i32 = admin
        .query_one(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
            &[&name],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(still, 4, "untouched");

    // Import adopts: marker written, adopted = true; then update works.
    let imported = kit
        .role
        .import(&me, &values(&[("name", name.clone().into())]))
        .await
        .expect("import")
        .expect("found");
    assert_eq!(imported.get("adopted"), Some(&hcl::Value::Bool(true)));
    assert_eq!(int(&imported, "connection_limit"), 4);
    let comment: Option<String> = admin
        .query_one(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
            &[&name],
        )
        .await
        .expect("query")
        .get(0);
    let comment = comment.expect("marker");
    assert!(
        comment.starts_with("managed-by=terraform-provider-platform offering=postgres_database"),
        "{comment}"
    );
    let updated = kit
        .role
        .update(&me, &imported, &role_inputs(&name, true, 6))
        .await
        .expect("update");
    assert_eq!(int(&updated, "connection_limit"), 6);
    assert!(
        text(&updated, "password").len() >= 32,
        "a login role gets a password"
    );

    // Another resource may not touch it.
    let other = owner(&unique("res"), "owner");
    let err = kit
        .role
        .delete(&other, &updated)
        .await
        .expect_err("someone else's");
    assert!(err.0.contains("managed by another resource"), "{err}");
    assert_eq!(
        kit.role
            .import(&me, &values(&[("name", unique("nope").into())]))
            .await
            .expect("import"),
        None
    );

    kit.role.delete(&me, &updated).await.expect("delete");
    assert_eq!(kit.role.read(&updated).await.expect("read"), None);

    // The same for a database and a schema made by hand.
    let db = unique("handdb");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{db}\""))
        .await
        .expect("db");
    let db_state = values(&[("name", db.clone().into())]);
    let err = kit
        .database
        .delete(&me, &db_state)
        .await
        .expect_err("unmarked db");
    assert!(
        err.0
            .contains(&format!("database \"{db}\" exists but is not managed")),
        "{err}"
    );
    let schema_state = values(&[("database", db.clone().into()), ("name", "public".into())]);
    let err = kit
        .schema
        .delete(&me, &schema_state)
        .await
        .expect_err("unmarked schema");
    assert!(
        err.0
            .contains("schema \"public\" exists but is not managed"),
        "{err}"
    );
    let adopted = kit
        .database
        .import(&me, &db_state)
        .await
        .expect("import")
        .expect("found");
    kit.database
        .delete(&me, &adopted)
        .await
        .expect("delete adopted");
}

#[tokio::test]
async fn hostile_names_are_inert_and_round_trip() {
    let Some(kit) = kit() else { return };
    let me = owner("it's \\ a \"resource\"", "owner");
    let suffix = unique("h");
    let role = format!("x\"; DROP ROLE postgres; -- {suffix}");
    let role2 = format!("o'k\\{suffix}");
    let state = kit
        .role
        .create(&me, &role_inputs(&role, true, -1))
        .await
        .expect("hostile role");
    assert_eq!(text(&state, "name"), role);
    let state2 = kit
        .role
        .create(&me, &role_inputs(&role2, false, -1))
        .await
        .expect("quote role");
    assert_eq!(text(&state2, "name"), role2);
    let admin = superuser(&kit.settings, "postgres").await;
    let found: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)",
            &[&vec![role.clone(), role2.clone()]],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(found, 2);
    let platform: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(platform, 1);
    // URI is percent-encoded and logs in.
    let uri = text(&state, "uri");
    assert!(
        uri.starts_with("postgres://x%22%3B%20DROP%20ROLE%20postgres%3B%20--%20"),
        "{uri}"
    );
    connect_as(
        &kit.settings,
        &role,
        Some(&text(&state, "password")),
        "postgres",
    )
    .await
    .expect("hostile role logs in");

    let db = format!("d'b\"; DROP DATABASE postgres; {suffix}");
    let db_state = kit
        .database
        .create(
            &me,
            &values(&[("name", db.clone().into()), ("owner", role.clone().into())]),
        )
        .await
        .expect("hostile database");
    assert_eq!(text(&db_state, "name"), db);
    assert_eq!(text(&db_state, "owner"), role);
    let schema = "s\"; DROP SCHEMA public; --".to_owned();
    let schema_state = kit
        .schema
        .create(
            &me,
            &values(&[
                ("database", db.clone().into()),
                ("name", schema.clone().into()),
                ("owner", role2.clone().into()),
            ]),
        )
        .await
        .expect("hostile schema");
    assert_eq!(
        read_existing(kit.schema.as_ref(), &schema_state).await,
        schema_state
    );
    let grant_state = kit
        .grant
        .create(
            &me,
            &values(&[
                ("database", db.clone().into()),
                ("schema", schema.clone().into()),
                ("roles", vec![role.clone()].into()),
                ("privileges", "write".into()),
            ]),
        )
        .await
        .expect("hostile grant");
    assert_eq!(list(&grant_state, "roles"), [role.as_str()]);
    assert_eq!(
        read_existing(kit.grant.as_ref(), &grant_state).await,
        grant_state
    );
    let in_db = superuser(&kit.settings, &db).await;
    let public: i64 = in_db
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'public'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(public, 1);
    drop(in_db);

    // Too long, NUL: refused before any SQL.
    let long = "x".repeat(64);
    let err = kit
        .role
        .create(&me, &role_inputs(&long, false, -1))
        .await
        .expect_err("long");
    assert!(err.0.contains("at most 63"), "{err}");
    assert!(
        kit.role
            .create(&me, &role_inputs("a\0b", false, -1))
            .await
            .is_err()
    );
    assert!(
        !provider::drivers::Registry::validate("postgres.role", &role_inputs(&long, false, -1))
            .is_empty()
    );

    kit.grant.delete(&me, &grant_state).await.expect("revoke");
    kit.schema
        .delete(&me, &schema_state)
        .await
        .expect("drop schema");
    kit.database.delete(&me, &db_state).await.expect("drop db");
    kit.role.delete(&me, &state2).await.expect("drop role2");
    kit.role.delete(&me, &state).await.expect("drop role");
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)",
            &[&vec![role, role2]],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn errors_never_contain_the_password() {
    let Some(kit) = kit() else { return };
    let me = owner(&unique("res"), "owner");
    let name = unique("secret");
    let state = kit
        .role
        .create(&me, &role_inputs(&name, true, -1))
        .await
        .expect("create");
    let password = text(&state, "password");
    let mut bad = role_inputs(&name, true, -1);
    bad.insert("valid_until".into(), "not a date".into());
    let err: DriverError = kit
        .role
        .update(&me, &state, &bad)
        .await
        .expect_err("bad timestamp");
    assert!(
        err.0.starts_with(&format!("postgres.role \"{name}\": ")),
        "{err}"
    );
    assert!(
        err.0.contains("not a date"),
        "the PostgreSQL message: {err}"
    );
    assert!(!err.0.contains(&password), "{err}");
    assert!(!format!("{err:?}").contains(&password));

    // A role that gains login gets a password in a failing ALTER: not in the error either.
    let nologin = unique("nologin");
    let quiet = kit
        .role
        .create(&me, &role_inputs(&nologin, false, -1))
        .await
        .expect("create");
    assert_eq!(quiet.get("password"), Some(&hcl::Value::Null));
    let mut bad = role_inputs(&nologin, true, -1);
    bad.insert("valid_until".into(), "garbage".into());
    let err = kit
        .role
        .update(&me, &quiet, &bad)
        .await
        .expect_err("bad timestamp");
    assert!(
        !err.0.contains("PASSWORD") && !err.0.contains("SCRAM"),
        "{err}"
    );
    let gained = kit
        .role
        .update(&me, &quiet, &role_inputs(&nologin, true, -1))
        .await
        .expect("login");
    assert!(text(&gained, "password").len() >= 32);

    kit.role.delete(&me, &gained).await.expect("delete");
    kit.role.delete(&me, &state).await.expect("delete");
}

#[tokio::test]
async fn deleting_what_is_gone_succeeds() {
    let Some(kit) = kit() else { return };
    let me = owner(&unique("res"), "x");
    let ghost = unique("ghost");
    kit.role
        .delete(&me, &values(&[("name", ghost.clone().into())]))
        .await
        .expect("role");
    kit.database
        .delete(&me, &values(&[("name", ghost.clone().into())]))
        .await
        .expect("database");
    let in_missing_db = values(&[("database", ghost.clone().into()), ("name", "s".into())]);
    kit.schema
        .delete(&me, &in_missing_db)
        .await
        .expect("schema in missing db");
    kit.schema
        .delete(
            &me,
            &values(&[
                ("database", "postgres".into()),
                ("name", ghost.clone().into()),
            ]),
        )
        .await
        .expect("schema");
    let grant = values(&[
        ("database", "postgres".into()),
        ("schema", ghost.clone().into()),
        ("roles", vec![ghost.clone()].into()),
        ("privileges", "read".into()),
    ]);
    kit.grant.delete(&me, &grant).await.expect("grant");
    assert_eq!(kit.grant.read(&grant).await.expect("read"), None);
    assert_eq!(
        kit.role
            .read(&values(&[("name", ghost.into())]))
            .await
            .expect("read"),
        None
    );
}

#[tokio::test]
async fn unknown_sslmode_is_refused_clearly() {
    // No server needed: the refusal comes before connecting.
    let settings = Settings {
        host: Some("127.0.0.1".into()),
        port: Some(1),
        sslmode: Some("verify_full".into()),
        ..Settings::default()
    };
    let pg = Postgres::new(settings);
    let (_, role) = pg.drivers().into_iter().next().expect("role driver");
    let err = role
        .read(&values(&[("name", "x".into())]))
        .await
        .expect_err("unknown sslmode");
    assert!(
        err.0.contains("unknown sslmode \"verify_full\"")
            && err
                .0
                .contains("disable, allow, prefer, require, verify-ca, verify-full"),
        "{err}"
    );
}

#[tokio::test]
async fn unix_socket_host_connects_and_builds_uris() {
    // `scripts/pg` puts the socket in DIR/sock; point at it to run this test.
    let Some(dir) = std::env::var_os("PLATFORM_TEST_PG_SOCKET") else {
        eprintln!("SKIPPED: set PLATFORM_TEST_PG_SOCKET=DIR/sock to test unix-socket connections");
        return;
    };
    let Some(env) = settings() else { return };
    let socket = dir.to_string_lossy().into_owned();
    let settings = Settings {
        host: Some(socket.clone()),
        password: None,
        ..env
    };
    let pg = Postgres::new(settings);
    let (_, role) = pg.drivers().into_iter().next().expect("role driver");
    let me = owner(&unique("res"), "owner");
    let name = unique("sock");
    let mut inputs = role_inputs(&name, true, -1);
    inputs.insert("database".into(), "app db".into());
    let state = role
        .create(&me, &inputs)
        .await
        .expect("create over the socket");
    let uri = text(&state, "uri");
    let password = text(&state, "password");
    assert_eq!(
        uri,
        format!(
            "postgres://{name}:{password}@/app%20db?host={socket}&port={}",
            pg.pool().settings().port_or_default()
        )
    );
    role.delete(&me, &state).await.expect("delete");
}

#[tokio::test]
async fn short_lived_credentials_log_in_then_vanish() {
    let Some(settings) = settings() else { return };
    let admin = superuser(&settings, "postgres").await;
    let parent = unique("cred_parent");
    admin
        .batch_execute(&format!("CREATE ROLE \"{parent}\" NOLOGIN"))
        .await
        .expect("parent role");
    let pg = Postgres::new(settings.clone());
    let ttl = provider::drivers::postgres::credentials::parse_ttl("15m").expect("ttl");
    // Credentials join their role: an unmarked one is refused, as is the
    // provider's own (a superuser here).
    for refused in [
        parent.as_str(),
        settings.username.as_deref().unwrap_or("postgres"),
    ] {
        let err =
            provider::drivers::postgres::credentials::open(pg.pool(), refused, "postgres", ttl)
                .await
                .expect_err("refused");
        assert!(err.0.contains("refused to join role"), "{err}");
        assert_eq!(err.1.as_deref(), Some("role"), "{err}");
    }
    admin
        .batch_execute(&format!(
            "COMMENT ON ROLE \"{parent}\" IS 'managed-by=terraform-provider-platform offering=t resource=r primitive=p'"
        ))
        .await
        .expect("mark the parent role");
    let opened =
        provider::drivers::postgres::credentials::open(pg.pool(), &parent, "postgres", ttl)
            .await
            .expect("opens");
    assert!(opened.password.len() >= 32);
    assert!(
        !format!("{opened:?}").contains(&opened.password),
        "Debug hides the password"
    );
    // It logs in, acts as the parent role, and expires in about 15 minutes.
    let client = connect_as(
        &settings,
        &opened.username,
        Some(&opened.password),
        "postgres",
    )
    .await
    .expect("logs in");
    let row = client
        .query_one(
            "SELECT pg_has_role(current_user, $1, 'MEMBER'), \
             extract(epoch from rolvaliduntil - now())::int FROM pg_roles WHERE rolname = current_user",
            &[&parent],
        )
        .await
        .expect("query");
    assert!(row.get::<_, bool>(0));
    let seconds: i32 = row.get(1);
    assert!((800..=900).contains(&seconds), "valid for {seconds}s");
    drop(client);
    provider::drivers::postgres::credentials::close(pg.pool(), &opened.username)
        .await
        .expect("closes");
    let left = admin
        .query_opt(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[&opened.username],
        )
        .await
        .expect("query");
    assert!(left.is_none(), "the role is dropped on close");
    // Closing again (Terraform may retry) is fine; a foreign role is refused.
    provider::drivers::postgres::credentials::close(pg.pool(), &opened.username)
        .await
        .expect("idempotent");
    assert!(
        provider::drivers::postgres::credentials::close(pg.pool(), &parent)
            .await
            .is_err()
    );
    admin
        .batch_execute(&format!("DROP ROLE \"{parent}\""))
        .await
        .expect("cleanup");
}
