//! A throwaway TLS-only PostgreSQL for the TLS tests (driver tests in
//! `provider/tests/it` and the acceptance tests both include this file).
//!
//! Certificates are generated here with rcgen: a CA, a server certificate for
//! `localhost` ONLY (so `127.0.0.1` is a host name the certificate does not
//! carry: verify-full must refuse it, verify-ca must not care), a client
//! certificate for the role `platform_cert`, and a second, unrelated CA (the
//! "wrong CA"). The cluster is `scripts/pg start DIR --ssl …`: plain TCP is
//! rejected by pg_hba (`hostnossl … reject`), so a working connection proves
//! TLS; `platform_cert` also needs its client certificate
//! (`clientcert=verify-full`). Stopped when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The role that must present a client certificate.
pub const CERT_ROLE: &str = "platform_cert";

pub struct TlsCluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub password: String,
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A certificate for `CERT_ROLE` from `other_ca` (the server refuses it).
    pub foreign_client_cert: PathBuf,
    pub foreign_client_key: PathBuf,
    repo: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let pem = params.self_signed(&key).expect("CA cert").pem();
    (params, key, pem)
}

/// (certificate PEM, key PEM) signed by `issuer`.
fn leaf(
    issuer: &Issuer<'_, &KeyPair>,
    sans: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).expect("leaf cert");
    (cert.pem(), key.serialize_pem())
}

impl TlsCluster {
    /// Generates the certificates and starts the cluster with `scripts/pg`
    /// (`repo` is the repository root).
    pub fn start(repo: &Path) -> TlsCluster {
        let dir = tempfile::Builder::new()
            .prefix("platform-tls-pg.")
            .tempdir()
            .expect("temp dir");
        // scripts/pg runs the server as the `postgres` OS user: it must reach DIR/pg.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod temp dir");
        }
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        let write = |name: &str, text: &str| {
            let path = certs.join(name);
            std::fs::write(&path, text).expect("write cert file");
            path
        };
        let (ca_params, ca_key, ca_pem) = ca("platform test CA");
        let (_, _, other_ca_pem) = ca("platform unrelated CA");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let (server_pem, server_key) = leaf(
            &issuer,
            &["localhost"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_pem, client_key) =
            leaf(&issuer, &[], CERT_ROLE, ExtendedKeyUsagePurpose::ClientAuth);
        let (other_params, other_key, _) = ca("platform foreign CA");
        let other_issuer = Issuer::from_params(&other_params, &other_key);
        let (foreign_pem, foreign_key) = leaf(
            &other_issuer,
            &[],
            CERT_ROLE,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let ca = write("ca.crt", &ca_pem);
        let other_ca = write("other-ca.crt", &other_ca_pem);
        let server_cert = write("server.crt", &server_pem);
        let server_key = write("server.key", &server_key);
        let client_cert = write("client.crt", &client_pem);
        let client_key = write("client.key", &client_key);
        let foreign_client_cert = write("foreign.crt", &foreign_pem);
        let foreign_client_key = write("foreign.key", &foreign_key);

        let pg_dir = dir.path().join("pg");
        let out = Command::new("bash")
            .arg(repo.join("scripts/pg"))
            .arg("start")
            .arg(&pg_dir)
            .arg("--ssl")
            .args([&server_cert, &server_key, &ca])
            .output()
            .expect("run scripts/pg");
        assert!(
            out.status.success(),
            "scripts/pg start --ssl failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |name: &str| {
            std::fs::read_to_string(pg_dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .trim()
                .to_owned()
        };
        let cluster = TlsCluster {
            port: read("port").parse().expect("port"),
            password: read("password"),
            ca,
            other_ca,
            client_cert,
            client_key,
            foreign_client_cert,
            foreign_client_key,
            repo: repo.to_path_buf(),
            dir,
        };
        // The client-certificate role, over the unix socket (trust).
        cluster.psql(&format!(
            "DROP ROLE IF EXISTS {CERT_ROLE}; \
             CREATE ROLE {CERT_ROLE} LOGIN CREATEROLE CREATEDB PASSWORD '{}'",
            cluster.password
        ));
        cluster
    }

    pub fn pg_dir(&self) -> PathBuf {
        self.dir.path().join("pg")
    }

    /// Runs SQL as `platform` over the unix socket; the output trimmed.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "platform",
            ])
            .arg("-h")
            .arg(self.pg_dir().join("sock"))
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .env_remove("PGSSLMODE")
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `path` as a string (for settings and HCL).
    pub fn path(path: &Path) -> String {
        path.to_str().expect("UTF-8 temp path").to_owned()
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(self.repo.join("scripts/pg"))
            .arg("stop")
            .arg(self.pg_dir())
            .output();
    }
}
