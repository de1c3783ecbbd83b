//! The Redis driver against a real redis-server: the one `REDIS_URL` names
//! (`scripts/redis start DIR && . DIR/env`; scripts/test starts one). Without
//! `REDIS_URL` the tests say they are skipped and pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use provider::drivers::redis::{Redis, Settings};
use provider::drivers::{Driver, Found, Owner, Values};

fn settings() -> Option<Settings> {
    if std::env::var_os("REDIS_URL").is_none() {
        eprintln!(
            "SKIPPED: no Redis (scripts/test starts one; or scripts/redis start DIR && . DIR/env)"
        );
        return None;
    }
    Some(Settings::from_env())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn owner(resource: &str) -> Owner {
    Owner {
        offering: "cache_user".into(),
        resource_id: resource.into(),
        primitive: "user".into(),
        generation: Some("a1b2".into()),
    }
}

fn list(items: &[&str]) -> hcl::Value {
    hcl::Value::Array(items.iter().map(|s| hcl::Value::from(*s)).collect())
}

fn user_inputs(name: &str, commands: &[&str]) -> Values {
    let mut v = Values::new();
    v.insert("name".into(), name.into());
    v.insert("keys".into(), list(&[&format!("{name}:*")]));
    v.insert("read_keys".into(), list(&["shared:*"]));
    v.insert("channels".into(), list(&[&format!("{name}.events")]));
    v.insert("commands".into(), list(commands));
    v
}

fn driver(settings: &Settings) -> Arc<dyn Driver> {
    Redis::new(settings.clone())
        .drivers()
        .into_iter()
        .find(|(n, _)| *n == "redis.acl_user")
        .expect("driver")
        .1
}

async fn admin() -> redis::aio::MultiplexedConnection {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

async fn admin_cmd(args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut conn = admin().await;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await
}

/// Runs `args` as `user`; `Err` with the server's words when refused.
async fn as_user(user: &str, password: &str, args: &[&str]) -> Result<redis::Value, String> {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let host = url
        .rsplit_once('@')
        .map(|(_, h)| h.to_owned())
        .expect("host");
    let client = redis::Client::open(format!("redis://{user}:{password}@{host}"))
        .map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await.map_err(|e| e.to_string())
}

fn password(state: &Values) -> String {
    match state.get("password") {
        Some(hcl::Value::String(p)) => p.clone(),
        other => panic!("no password in state: {other:?}"),
    }
}

async fn acl_file_has(name: &str) -> bool {
    let mut conn = admin().await;
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("aclfile")
        .query_async(&mut conn)
        .await
        .expect("config");
    let path = config.get(1).cloned().unwrap_or_default();
    assert!(
        !path.is_empty(),
        "the test server runs with an aclfile (scripts/redis)"
    );
    std::fs::read_to_string(path)
        .expect("aclfile")
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(name))
}

#[test]
fn acl_user_gets_exactly_its_grants_and_drift_is_undone() {
    let Some(settings) = settings() else { return };
    runtime().block_on(async {
        let d = driver(&settings);
        let name = unique("orders");
        let me = owner(&format!("{name}~a1b2"));
        let inputs = user_inputs(&name, &["+@read", "+@write", "+@connection"]);
        let state = d.create(&me, &inputs).await.expect("create");
        let pw = password(&state);
        assert!(acl_file_has(&name).await, "ACL SAVE wrote the user");
        // What it was given works; nothing else does.
        let own_key = format!("{name}:x");
        as_user(&name, &pw, &["SET", &own_key, "1"])
            .await
            .expect("own keys");
        as_user(&name, &pw, &["GET", "shared:y"])
            .await
            .expect("shared keys are readable");
        for refused in [
            vec!["SET", "shared:y", "1"],
            vec!["SET", "other:x", "1"],
            vec!["CONFIG", "GET", "*"],
            vec!["FLUSHALL"],
            vec!["FUNCTION", "FLUSH"],
            vec!["ACL", "SETUSER", &name, "+@all"],
            vec!["KEYS", "*"],
        ] {
            let err = as_user(&name, &pw, &refused)
                .await
                .expect_err(&format!("{refused:?}"));
            assert!(
                err.contains("NOPERM") || err.contains("no permissions"),
                "{refused:?}: {err}"
            );
        }
        assert!(as_user(&name, "wrong", &["PING"]).await.is_err());
        // No drift right after create.
        let read = d.read(&state).await.expect("read").expect("exists");
        assert_eq!(read, state);
        // Behind Terraform's back: admin powers added, the password changed.
        admin_cmd(&["ACL", "SETUSER", &name, "+@admin", "resetpass", ">changed"])
            .await
            .expect("out of band");
        let drifted = d.read(&state).await.expect("read").expect("exists");
        assert_ne!(
            drifted.get("commands"),
            state.get("commands"),
            "a change shows"
        );
        assert_eq!(
            drifted.get("password"),
            Some(&hcl::Value::Null),
            "a lost password shows"
        );
        let fixed = d.update(&me, &drifted, &inputs).await.expect("update");
        let new_pw = password(&fixed);
        assert_ne!(new_pw, pw);
        assert!(
            as_user(&name, &new_pw, &["CONFIG", "GET", "*"])
                .await
                .is_err()
        );
        assert!(as_user(&name, "changed", &["PING"]).await.is_err());
        assert_eq!(d.read(&fixed).await.expect("read").expect("exists"), fixed);
        // Switched off behind Terraform's back: a change, undone by update.
        admin_cmd(&["ACL", "SETUSER", &name, "off"])
            .await
            .expect("off");
        assert!(as_user(&name, &new_pw, &["PING"]).await.is_err());
        let off = d.read(&fixed).await.expect("read").expect("exists");
        assert_ne!(
            off.get("commands"),
            fixed.get("commands"),
            "a disabled user shows"
        );
        let fixed = d.update(&me, &off, &inputs).await.expect("switch on again");
        assert_eq!(password(&fixed), new_pw, "the password stays");
        as_user(&name, &new_pw, &["PING"]).await.expect("on again");
        // Narrowed in place.
        let narrower = user_inputs(&name, &["+@read", "+@connection"]);
        let narrowed = d.update(&me, &fixed, &narrower).await.expect("narrow");
        let err = as_user(&name, &new_pw, &["SET", &own_key, "2"])
            .await
            .expect_err("no writes");
        assert!(err.contains("no permissions"), "{err}");
        // Deleted, and gone from the ACL file.
        d.delete(&me, &narrowed).await.expect("delete");
        assert!(
            admin_cmd(&["ACL", "GETUSER", &name])
                .await
                .expect("getuser")
                == redis::Value::Nil
        );
        assert!(!acl_file_has(&name).await);
        d.delete(&me, &narrowed)
            .await
            .expect("deleting what is gone succeeds");
    });
}

#[test]
fn acl_users_not_marked_as_this_resources_are_left_alone() {
    let Some(settings) = settings() else { return };
    runtime().block_on(async {
        let d = driver(&settings);
        // A user made by hand: create refuses, delete refuses, import adopts.
        let name = unique("legacy");
        admin_cmd(&[
            "ACL",
            "SETUSER",
            &name,
            "on",
            ">handmade",
            "~legacy:*",
            "+get",
        ])
        .await
        .expect("hand-made user");
        let me = owner(&format!("{name}~a1b2"));
        let inputs = user_inputs(&name, &["+@read"]);
        let err = d.create(&me, &inputs).await.expect_err("exists, unmarked");
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = d.delete(&me, &inputs).await.expect_err("not ours");
        assert!(!err.to_string().contains("handmade"), "{err}");
        as_user(&name, "handmade", &["GET", "legacy:a"])
            .await
            .expect("untouched");
        let imported = d
            .import(&me, &inputs)
            .await
            .expect("import")
            .expect("exists");
        assert_eq!(imported.get("adopted"), Some(&hcl::Value::Bool(true)));
        assert!(matches!(
            d.find(&me, &inputs).await.expect("find"),
            Found::Ours(_)
        ));
        // Another resource's user: refused to it, found as foreign.
        let other = owner("someone-else~ffff");
        let err = d
            .update(&other, &imported, &inputs)
            .await
            .expect_err("another resource's");
        assert!(err.to_string().contains("another resource"), "{err}");
        assert!(matches!(
            d.find(&other, &inputs).await.expect("find"),
            Found::Foreign(_)
        ));
        // The same resource, another generation (a re-run): superseded.
        let later = Owner {
            generation: Some("c3d4".into()),
            ..me.clone()
        };
        let err = d.delete(&later, &imported).await.expect_err("superseded");
        assert!(err.is_superseded(), "{err}");
        // Its own: the update converges it (and sets a password), delete works.
        let state = d
            .update(&me, &imported, &inputs)
            .await
            .expect("update imported");
        as_user(&name, &password(&state), &["GET", "legacy:a"])
            .await
            .expect_err("keys now its own");
        d.delete(&me, &state).await.expect("delete");
        // The default user is never the platform's.
        let mut default = user_inputs("default", &["+@read"]);
        default.insert("name".into(), "default".into());
        assert!(d.create(&me, &default).await.is_err());
        assert!(d.import(&me, &default).await.is_err());
        as_user("default", "x", &["PING"])
            .await
            .expect_err("bad password still refused");
    });
}
