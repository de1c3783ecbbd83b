//! TLS to PostgreSQL against a real TLS-only cluster (see
//! `acceptance/tls_cluster.rs`), every sslmode, through the driver's pool and
//! through ConfigureProvider's probe. Runs where the other PostgreSQL tests
//! run (`PGHOST` set: PostgreSQL is installed here); skipped otherwise. The
//! cluster is its own, started and stopped by the test.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use platform_value::{Number, Path as AttrPath, Value};
use provider::drivers::postgres::tls::{self, Mode, Tls};
use provider::drivers::postgres::{Postgres, Settings};
use provider::engine::{CatalogSource, Diag, Engine, Severity};

use crate::tls_cluster::{CERT_ROLE, TlsCluster};

fn cluster() -> Option<TlsCluster> {
    if std::env::var_os("PGHOST").is_none() {
        eprintln!(
            "SKIPPED: no PostgreSQL (scripts/test starts one; or scripts/pg start DIR && . DIR/env)"
        );
        return None;
    }
    Some(TlsCluster::start(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    ))
}

fn base(c: &TlsCluster, host: &str, sslmode: &str) -> Settings {
    Settings {
        host: Some(host.into()),
        port: Some(c.port),
        username: Some("platform".into()),
        password: Some(c.password.clone()),
        database: Some("postgres".into()),
        sslmode: Some(sslmode.into()),
        ..Settings::default()
    }
}

fn with_root(mut settings: Settings, root: &Path) -> Settings {
    settings.sslrootcert = Some(TlsCluster::path(root));
    settings
}

/// Connects through the provider's pool; Ok(whether the session uses TLS,
/// as the server sees it) or Err(the driver's message).
async fn connect(settings: Settings) -> Result<bool, String> {
    let pg = Postgres::new(settings);
    let mut conn = pg.pool().maintenance().await.map_err(|e| e.0)?;
    let row = conn
        .client()
        .map_err(|e| e.0)?
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[track_caller]
fn assert_tls(case: &str, result: Result<bool, String>) {
    match result {
        Ok(ssl) => assert!(ssl, "{case}: connected, but without TLS"),
        Err(error) => panic!("{case}: {error}"),
    }
}

#[track_caller]
fn assert_refused(case: &str, result: Result<bool, String>, needles: &[&str]) {
    let error = match result {
        Ok(ssl) => panic!("{case}: connected (ssl={ssl}), expected a refusal"),
        Err(error) => error,
    };
    for needle in needles {
        assert!(error.contains(needle), "{case}: {needle:?} not in: {error}");
    }
    eprintln!("{case}: refused: {error}");
}

fn s(text: &str) -> Value {
    Value::String(text.into())
}

/// A provider configuration with the postgres block `fields`.
fn provider_config(c: &TlsCluster, fields: &[(&str, Value)]) -> Value {
    let mut block = BTreeMap::from([
        (
            "port".to_owned(),
            Value::Number(Number::from_i64(c.port.into())),
        ),
        ("username".to_owned(), s("platform")),
        ("password".to_owned(), s(&c.password)),
        ("database".to_owned(), s("postgres")),
    ]);
    for (name, value) in fields {
        block.insert((*name).to_owned(), value.clone());
    }
    Value::Object(BTreeMap::from([(
        "postgres".to_owned(),
        Value::Object(block),
    )]))
}

fn errors(diags: &[Diag]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}: {}", d.summary, d.detail))
        .collect()
}

#[tokio::test]
async fn tls_modes_against_a_tls_only_server() {
    let Some(c) = cluster() else { return };
    let ca = c.ca.clone();
    let other_ca = c.other_ca.clone();

    // disable: plain TCP, which pg_hba rejects (hostnossl … reject).
    assert_refused(
        "disable",
        connect(base(&c, "localhost", "disable")).await,
        &["sslmode=disable", "no encryption"],
    );
    // prefer, allow, require: TLS without certificate checks (an unknown CA is fine).
    assert_tls("prefer", connect(base(&c, "127.0.0.1", "prefer")).await);
    assert_tls("allow", connect(base(&c, "127.0.0.1", "allow")).await);
    assert_tls("require", connect(base(&c, "127.0.0.1", "require")).await);
    // Unset sslmode is prefer, as in libpq.
    let mut unset = base(&c, "localhost", "prefer");
    unset.sslmode = None;
    assert_tls("unset sslmode", connect(unset).await);
    // libpq: require with a root file verifies the chain (the host is not checked).
    assert_tls(
        "require + right root",
        connect(with_root(base(&c, "127.0.0.1", "require"), &ca)).await,
    );
    assert_refused(
        "require + wrong root",
        connect(with_root(base(&c, "127.0.0.1", "require"), &other_ca)).await,
        &["sslmode=verify-ca", "not signed by a trusted root"],
    );
    // verify-ca: the chain, not the host name (the certificate names localhost only).
    assert_tls(
        "verify-ca",
        connect(with_root(base(&c, "127.0.0.1", "verify-ca"), &ca)).await,
    );
    assert_refused(
        "verify-ca + wrong CA",
        connect(with_root(base(&c, "localhost", "verify-ca"), &other_ca)).await,
        &["not signed by a trusted root"],
    );
    // verify-full: the chain and the host name.
    assert_tls(
        "verify-full",
        connect(with_root(base(&c, "localhost", "verify-full"), &ca)).await,
    );
    assert_refused(
        "verify-full + wrong host",
        connect(with_root(base(&c, "127.0.0.1", "verify-full"), &ca)).await,
        &[
            "not valid for the host name \"127.0.0.1\"",
            "sslmode=verify-full",
        ],
    );
    // A driver operation over verify-full (the role does not exist).
    let pg = Postgres::new(with_root(base(&c, "localhost", "verify-full"), &ca));
    let (_, role) = pg.drivers().into_iter().next().expect("role driver");
    let absent: provider::drivers::Values =
        [("name".to_owned(), hcl::Value::from("no_such_role_tls"))]
            .into_iter()
            .collect();
    assert_eq!(role.read(&absent).await.expect("read over TLS"), None);

    // Client certificates: platform_cert needs password AND certificate.
    let as_cert_role = |settings: Settings| Settings {
        username: Some(CERT_ROLE.into()),
        ..settings
    };
    let mut with_cert = as_cert_role(with_root(base(&c, "localhost", "verify-full"), &ca));
    with_cert.sslcert = Some(TlsCluster::path(&c.client_cert));
    with_cert.sslkey = Some(TlsCluster::path(&c.client_key));
    assert_tls("client certificate", connect(with_cert.clone()).await);
    assert_refused(
        "no client certificate",
        connect(as_cert_role(with_root(
            base(&c, "localhost", "verify-full"),
            &ca,
        )))
        .await,
        &["certificate"],
    );
    let foreign = Settings {
        sslcert: Some(TlsCluster::path(&c.foreign_client_cert)),
        sslkey: Some(TlsCluster::path(&c.foreign_client_key)),
        ..with_cert.clone()
    };
    assert!(
        connect(foreign).await.is_err(),
        "a client certificate from another CA was accepted"
    );

    // ConfigureProvider: the probe refuses a wrong host name, before any connection.
    let engine = Engine::new(CatalogSource::Embedded);
    let root = s(&TlsCluster::path(&ca));
    let wrong_host = provider_config(
        &c,
        &[
            ("host", s("127.0.0.1")),
            ("sslmode", s("verify-full")),
            ("sslrootcert", root.clone()),
        ],
    );
    let diags = engine.configure_and_probe(&wrong_host).await;
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1, "{diags:?}");
    assert!(
        errs[0].contains("PostgreSQL server certificate refused")
            && errs[0].contains("not valid for the host name \"127.0.0.1\""),
        "{errs:?}"
    );
    let wrong_ca = provider_config(
        &c,
        &[
            ("host", s("localhost")),
            ("sslmode", s("verify-ca")),
            ("sslrootcert", s(&TlsCluster::path(&other_ca))),
        ],
    );
    let errs = errors(&engine.configure_and_probe(&wrong_ca).await);
    assert!(
        errs.len() == 1 && errs[0].contains("not signed by a trusted root"),
        "{errs:?}"
    );
    let right = provider_config(
        &c,
        &[
            ("host", s("localhost")),
            ("sslmode", s("verify-full")),
            ("sslrootcert", root.clone()),
        ],
    );
    assert_eq!(engine.configure_and_probe(&right).await, Vec::<Diag>::new());
    // An unknown host in the block (known only at apply): no probe.
    let unknown = provider_config(
        &c,
        &[
            ("host", Value::Unknown(Default::default())),
            ("sslmode", s("verify-full")),
            ("sslrootcert", root.clone()),
        ],
    );
    assert_eq!(
        engine.configure_and_probe(&unknown).await,
        Vec::<Diag>::new()
    );

    // What the probe costs a provider start: configure with and without it.
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        assert!(engine.configure(&right).is_empty());
    }
    let without = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        assert!(engine.configure_and_probe(&right).await.is_empty());
    }
    let with = started.elapsed() / rounds;
    eprintln!(
        "MEASURED: ConfigureProvider with verify-full: {with:?} with the TLS probe, {without:?} without (mean of {rounds}, loopback)"
    );
}

#[tokio::test]
async fn probe_of_an_unreachable_server_is_not_an_error() {
    // No server needed: a closed loopback port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca_pem, _) = self_signed_ca();
    let root = dir.path().join("root.crt");
    std::fs::write(&root, ca_pem).expect("write");
    let settings = Settings {
        host: Some("localhost".into()),
        port: Some(port),
        sslmode: Some("verify-full".into()),
        sslrootcert: Some(TlsCluster::path(&root)),
        ..Settings::default()
    };
    let tls = Tls::from_settings(&settings).expect("settings");
    assert_eq!(tls.mode, Mode::VerifyFull);
    let started = Instant::now();
    let outcome = tls::probe(&settings, &tls, Duration::from_secs(3)).await;
    assert!(matches!(outcome, tls::Probe::Unknown(_)), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let engine = Engine::new(CatalogSource::Embedded);
    let config = Value::Object(BTreeMap::from([(
        "postgres".to_owned(),
        Value::Object(BTreeMap::from([
            ("host".to_owned(), s("localhost")),
            (
                "port".to_owned(),
                Value::Number(Number::from_i64(port.into())),
            ),
            ("sslmode".to_owned(), s("verify-full")),
            ("sslrootcert".to_owned(), s(&TlsCluster::path(&root))),
        ])),
    )]));
    assert_eq!(
        engine.configure_and_probe(&config).await,
        Vec::<Diag>::new()
    );
}

#[test]
fn bad_tls_settings_are_configure_errors_at_their_attribute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let secret = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7SECRET";
    let bad_key = dir.path().join("bad.key");
    std::fs::write(
        &bad_key,
        format!("-----BEGIN PRIVATE KEY-----\n{secret}!!\n-----END PRIVATE KEY-----\n"),
    )
    .expect("write");
    let (ca_pem, key_pem) = self_signed_ca();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, &ca_pem).expect("write");
    let other_key = dir.path().join("other.key");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().expect("key").serialize_pem(),
    )
    .expect("write");
    let key = dir.path().join("key.pem");
    std::fs::write(&key, &key_pem).expect("write");
    let missing = dir.path().join("missing.pem");
    let p = |path: &Path| s(&TlsCluster::path(path));

    let engine = Engine::new(CatalogSource::Embedded);
    let check = |fields: Vec<(&str, Value)>, attribute: &str, needles: &[&str]| {
        let config = Value::Object(BTreeMap::from([(
            "postgres".to_owned(),
            Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        )]));
        let diags = engine.configure(&config);
        let errs: Vec<&Diag> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert_eq!(errs.len(), 1, "{attribute}: {diags:?}");
        assert_eq!(
            errs[0].path,
            Some(AttrPath::root().attr("postgres").attr(attribute)),
            "{diags:?}"
        );
        for needle in needles {
            assert!(
                errs[0].detail.contains(needle),
                "{needle:?} not in {:?}",
                errs[0]
            );
        }
        assert!(
            !errs[0].detail.contains(secret),
            "key material in {:?}",
            errs[0]
        );
        assert!(
            !errs[0].detail.contains("BEGIN"),
            "file contents in {:?}",
            errs[0]
        );
    };
    check(
        vec![("sslmode", s("verify_full"))],
        "sslmode",
        &[
            "\"verify_full\"",
            "disable, allow, prefer, require, verify-ca, verify-full",
        ],
    );
    check(
        vec![("sslmode", s("verify-ca")), ("sslrootcert", p(&missing))],
        "sslrootcert",
        &[&TlsCluster::path(&missing), "cannot read"],
    );
    check(
        vec![("sslmode", s("verify-full")), ("sslrootcert", p(&garbage))],
        "sslrootcert",
        &[&TlsCluster::path(&garbage), "no PEM certificate"],
    );
    check(
        vec![("sslmode", s("require")), ("sslcert", p(&cert))],
        "sslcert",
        &["sslkey is not"],
    );
    check(
        vec![
            ("sslmode", s("require")),
            ("sslcert", p(&cert)),
            ("sslkey", p(&bad_key)),
        ],
        "sslkey",
        &[&TlsCluster::path(&bad_key), "no usable private key"],
    );
    check(
        vec![
            ("sslmode", s("require")),
            ("sslcert", p(&cert)),
            ("sslkey", p(&other_key)),
        ],
        "sslkey",
        &["does not match the certificate"],
    );
    check(
        vec![("sslmode", s("verify-ca")), ("sslrootcert", s("system"))],
        "sslmode",
        &["weak sslmode \"verify-ca\" may not be used with sslrootcert=system"],
    );
    // The right pair, and disable ignoring unreadable files (as libpq).
    let ok = Value::Object(BTreeMap::from([(
        "postgres".to_owned(),
        Value::Object(BTreeMap::from([
            ("sslmode".to_owned(), s("require")),
            ("sslcert".to_owned(), p(&cert)),
            ("sslkey".to_owned(), p(&key)),
        ])),
    )]));
    assert_eq!(errors(&engine.configure(&ok)), Vec::<String>::new());
    let disabled = Value::Object(BTreeMap::from([(
        "postgres".to_owned(),
        Value::Object(BTreeMap::from([
            ("sslmode".to_owned(), s("disable")),
            ("sslrootcert".to_owned(), p(&missing)),
        ])),
    )]));
    assert_eq!(errors(&engine.configure(&disabled)), Vec::<String>::new());
}

/// (certificate PEM, key PEM) of a throwaway self-signed CA.
fn self_signed_ca() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    (
        params.self_signed(&key).expect("cert").pem(),
        key.serialize_pem(),
    )
}
