//! TLS to PostgreSQL, with libpq's `sslmode` semantics, on rustls (ring).
//!
//! | sslmode       | TLS                                 | certificate checked            |
//! |---------------|-------------------------------------|--------------------------------|
//! | `disable`     | never                               | —                              |
//! | `allow`       | plain first; TLS if that is refused | no                             |
//! | `prefer`      | TLS if the server offers it, else plain; plain again if the TLS attempt fails | no |
//! | `require`     | always                              | no (but see below)             |
//! | `verify-ca`   | always                              | chain to `sslrootcert`         |
//! | `verify-full` | always                              | chain, and the host name       |
//!
//! As in libpq, `require` with an `sslrootcert` behaves as `verify-ca`, and
//! no TLS is attempted over a unix socket (`host` a directory). Unset, the
//! mode is `prefer` (libpq's default). `sslrootcert` is a PEM file of trusted
//! roots; unset, or `system` (libpq's spelling, which then also requires
//! `verify-full`, the default with it), the operating system's roots are used
//! (rustls-native-certs). (libpq would look for `~/.postgresql/root.crt`
//! instead of the system's roots; not read here.) `sslcert` + `sslkey` (PEM) are a client
//! certificate and its key. The files are read when the provider is
//! configured, so a bad one is reported by ConfigureProvider, naming the file
//! and why, never their contents.
//!
//! Channel binding (SCRAM-SHA-256-PLUS) is not offered: the stream reports
//! [`ChannelBinding::none`], and SCRAM falls back to plain SCRAM-SHA-256.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::Settings;
use crate::tls_verify::{ServerCheck, ServerVerifier};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The accepted spellings, for error messages.
pub const MODES: &str = "disable, allow, prefer, require, verify-ca, verify-full";

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        Some(match text {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Allow => "allow",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate is checked.
    pub fn verifies(self) -> bool {
        matches!(self, Mode::VerifyCa | Mode::VerifyFull)
    }
}

/// Which setting a [`SetupError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Sslmode,
    Sslrootcert,
    Sslcert,
    Sslkey,
}

impl Field {
    /// The provider block attribute.
    pub fn attribute(self) -> &'static str {
        match self {
            Field::Sslmode => "sslmode",
            Field::Sslrootcert => "sslrootcert",
            Field::Sslcert => "sslcert",
            Field::Sslkey => "sslkey",
        }
    }

    /// The environment variable it falls back to.
    pub fn env_var(self) -> &'static str {
        match self {
            Field::Sslmode => "PGSSLMODE",
            Field::Sslrootcert => "PGSSLROOTCERT",
            Field::Sslcert => "PGSSLCERT",
            Field::Sslkey => "PGSSLKEY",
        }
    }
}

/// A TLS setting that cannot be used. The message names the file and the
/// reason, never the file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    pub field: Field,
    pub message: String,
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The TLS side of a connection: the effective mode and, unless TLS is never
/// used, the rustls configuration.
#[derive(Clone)]
pub struct Tls {
    pub mode: Mode,
    config: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("mode", &self.mode).finish()
    }
}

impl Tls {
    /// Plain connections only.
    pub fn disabled() -> Tls {
        Tls {
            mode: Mode::Disable,
            config: None,
        }
    }

    /// A connector for tokio-postgres; `None` when TLS is never used.
    pub fn connector(&self) -> Option<MakeRustls> {
        self.config.clone().map(|config| MakeRustls {
            config,
            attempted: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Reads and checks the TLS settings: the mode, and the PEM files the
    /// mode uses (none for `disable`, or over a unix socket).
    pub fn from_settings(settings: &Settings) -> Result<Tls, SetupError> {
        let system = settings.sslrootcert.as_deref() == Some("system");
        let mode = match settings.sslmode.as_deref() {
            // libpq: sslrootcert=system makes verify-full the default.
            None if system => Mode::VerifyFull,
            None => Mode::Prefer,
            Some(text) => Mode::parse(text).ok_or_else(|| SetupError {
                field: Field::Sslmode,
                message: format!("unknown sslmode {text:?}; use one of {MODES}"),
            })?,
        };
        if system && mode != Mode::VerifyFull {
            // libpq refuses the weaker modes with the system's roots: any
            // public CA could then vouch for any host.
            return Err(SetupError {
                field: Field::Sslmode,
                message: format!(
                    "weak sslmode {:?} may not be used with sslrootcert=system (use \"verify-full\")",
                    mode.name()
                ),
            });
        }
        if mode == Mode::Disable || settings.host_or_default().starts_with('/') {
            // libpq never attempts TLS over a unix socket, whatever sslmode says.
            return Ok(Tls::disabled());
        }
        let rootcert = settings
            .sslrootcert
            .as_deref()
            .filter(|path| *path != "system");
        // libpq: `require` with a root certificate file verifies the chain.
        let mode = if mode == Mode::Require && rootcert.is_some() {
            Mode::VerifyCa
        } else {
            mode
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = if mode.verifies() {
            let roots = match rootcert {
                Some(path) => Arc::new(read_roots(path)?),
                None => system_roots()?,
            };
            if mode == Mode::VerifyFull {
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|error| SetupError {
                        field: Field::Sslrootcert,
                        message: format!("sslrootcert: {error}"),
                    })?
            } else {
                Arc::new(ServerVerifier::new(ServerCheck::ChainTo(roots), algorithms))
            }
        } else {
            // `prefer` / `allow` / `require` without a root: any certificate,
            // but the handshake signatures are still checked.
            Arc::new(ServerVerifier::new(ServerCheck::Any, algorithms))
        };
        let client_auth = match (&settings.sslcert, &settings.sslkey) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(SetupError {
                    field: Field::Sslcert,
                    message: "sslcert is set but sslkey is not: a client certificate needs its private key".into(),
                });
            }
            (None, Some(_)) => {
                return Err(SetupError {
                    field: Field::Sslkey,
                    message: "sslkey is set but sslcert is not: a client key needs its certificate"
                        .into(),
                });
            }
            (Some(cert), Some(key)) => Some((read_chain(cert)?, read_key(key)?)),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|error| SetupError {
                field: Field::Sslmode,
                message: format!("TLS setup: {error}"),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match client_auth {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let (cert, key_path) = (
                    settings.sslcert.as_deref().unwrap_or_default(),
                    settings.sslkey.as_deref().unwrap_or_default(),
                );
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| SetupError {
                        field: Field::Sslkey,
                        message: format!(
                            "sslkey {key_path}: cannot be used with the certificate in sslcert {cert}: {}",
                            key_error(&error)
                        ),
                    })?
            }
        };
        Ok(Tls {
            mode,
            config: Some(Arc::new(config)),
        })
    }
}

/// A rustls error about a key, without anything of the key.
fn key_error(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InconsistentKeys(_) => "the key does not match the certificate".into(),
        other => other.to_string(),
    }
}

fn read_file(field: Field, path: &str) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|error| SetupError {
        field,
        message: format!("{} {path}: cannot read: {error}", field.attribute()),
    })
}

fn read_roots(path: &str) -> Result<RootCertStore, SetupError> {
    let field = Field::Sslrootcert;
    let certs = read_certs(field, path)?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|error| SetupError {
            field,
            message: format!(
                "sslrootcert {path}: certificate {} is not usable as a root: {error}",
                i + 1
            ),
        })?;
    }
    Ok(roots)
}

fn read_chain(path: &str) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    read_certs(Field::Sslcert, path)
}

fn read_certs(field: Field, path: &str) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let bytes = read_file(field, path)?;
    let name = field.attribute();
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        certs.push(cert.map_err(|error| SetupError {
            field,
            message: format!("{name} {path}: not a valid PEM file: {}", pem_error(&error)),
        })?);
    }
    if certs.is_empty() {
        return Err(SetupError {
            field,
            message: format!("{name} {path}: no PEM certificate (CERTIFICATE section) in it"),
        });
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, SetupError> {
    let bytes = read_file(Field::Sslkey, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| SetupError {
        field: Field::Sslkey,
        message: format!(
            "sslkey {path}: no usable private key (PEM PKCS#8, PKCS#1 or SEC1; unencrypted): {}",
            pem_error(&error)
        ),
    })
}

/// A PEM parse error, without the offending line (it could be key material).
fn pem_error(error: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { .. } => "a section has no END line",
        Error::IllegalSectionStart { .. } => "a malformed BEGIN line",
        Error::Base64Decode(_) => "invalid base64",
        Error::NoItemsFound => "no item of the expected kind",
        Error::SectionTooLarge => "a section is too large",
        _ => "unreadable",
    }
}

/// The operating system's trusted roots, loaded once per process.
fn system_roots() -> Result<Arc<RootCertStore>, SetupError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(format!(
                    "no sslrootcert given and no system root certificates found{why}; set sslrootcert (PGSSLROOTCERT) to the CA's PEM file"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
        .map_err(|message| SetupError {
            field: Field::Sslrootcert,
            message,
        })
}

/// tokio-postgres's TLS hook on rustls. `attempted` records whether a TLS
/// handshake was started (the server answered the SSLRequest with `S`):
/// `prefer` retries in plain only then, as libpq does.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
    attempted: Arc<AtomicBool>,
}

impl MakeRustls {
    pub fn handshake_attempted(&self) -> bool {
        self.attempted.load(Ordering::Acquire)
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{domain:?} is not a valid host name for TLS"),
            )
        })?;
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
            attempted: self.attempted.clone(),
        })
    }
}

pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    attempted: Arc<AtomicBool>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        self.attempted.store(true, Ordering::Release);
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(stream))
        })
    }
}

/// A TLS connection to PostgreSQL.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// What a TLS probe found.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// Nothing to check (the mode does not verify certificates, or a unix socket).
    Skipped,
    /// The server's certificate passed the mode's checks.
    Verified,
    /// The server's certificate was refused; the message says why.
    Refused(String),
    /// The server answered the SSLRequest with "no TLS".
    NoTls,
    /// Could not tell (unreachable, timeout, a handshake failure that is not
    /// about the certificate); the message says what happened.
    Unknown(String),
}

/// How long a configure-time probe may take at most.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One TLS handshake with the server, nothing more: TCP connect, the
/// PostgreSQL SSLRequest, the rustls handshake, then close. No startup
/// message, no authentication. Only for the modes that verify the
/// certificate (`verify-ca`, `verify-full`, `require` with a root).
pub async fn probe(settings: &Settings, tls: &Tls, timeout: Duration) -> Probe {
    let Some(config) = tls.config.clone().filter(|_| tls.mode.verifies()) else {
        return Probe::Skipped;
    };
    let host = settings.host_or_default().to_owned();
    let port = settings.port_or_default();
    match tokio::time::timeout(timeout, probe_once(&host, port, config)).await {
        Ok(result) => result,
        Err(_) => Probe::Unknown(format!("no answer from {host}:{port} within {timeout:?}")),
    }
}

async fn probe_once(host: &str, port: u16, config: Arc<ClientConfig>) -> Probe {
    let name = match ServerName::try_from(host.to_owned()) {
        Ok(name) => name,
        Err(_) => return Probe::Refused(format!("{host:?} is not a valid host name for TLS")),
    };
    let mut stream = match tokio::net::TcpStream::connect((host, port)).await {
        Ok(stream) => stream,
        Err(error) => return Probe::Unknown(format!("cannot reach {host}:{port}: {error}")),
    };
    // SSLRequest: length 8, code 80877103 (1234 << 16 | 5679).
    let request = [0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let mut answer = [0u8; 1];
    if let Err(error) = async {
        stream.write_all(&request).await?;
        stream.read_exact(&mut answer).await
    }
    .await
    {
        return Probe::Unknown(format!("{host}:{port}: {error}"));
    }
    if answer[0] != b'S' {
        return Probe::NoTls;
    }
    match tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
    {
        Ok(mut tls) => {
            // Best effort: a close_notify so the server logs no EOF error.
            let _ = tls.shutdown().await;
            Probe::Verified
        }
        Err(error) => match error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::InvalidCertificate(why)) => {
                Probe::Refused(certificate_problem(why, host))
            }
            _ => Probe::Unknown(format!("TLS handshake with {host}:{port}: {error}")),
        },
    }
}

/// A rustls certificate error in words.
pub fn certificate_problem(error: &rustls::CertificateError, host: &str) -> String {
    use rustls::CertificateError as E;
    match error {
        E::NotValidForName | E::NotValidForNameContext { .. } => format!(
            "the server's certificate is not valid for the host name {host:?} ({error}); \
             verify-full checks the host against the certificate's names, verify-ca does not"
        ),
        E::UnknownIssuer => "the server's certificate is not signed by a trusted root \
             (sslrootcert, else the system's roots): unknown issuer"
            .to_owned(),
        E::Expired | E::ExpiredContext { .. } => {
            format!("the server's certificate has expired ({error})")
        }
        other => format!("the server's certificate was refused: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(sslmode: Option<&str>, sslrootcert: Option<&str>) -> Settings {
        Settings {
            host: Some("db.example".into()),
            sslmode: sslmode.map(str::to_owned),
            sslrootcert: sslrootcert.map(str::to_owned),
            ..Settings::default()
        }
    }

    fn mode(sslmode: Option<&str>, sslrootcert: Option<&str>) -> Result<Mode, SetupError> {
        Tls::from_settings(&settings(sslmode, sslrootcert)).map(|tls| tls.mode)
    }

    #[test]
    fn modes_as_libpq() {
        for name in MODES.split(", ") {
            assert_eq!(Mode::parse(name).map(Mode::name), Some(name));
        }
        assert_eq!(mode(None, None), Ok(Mode::Prefer));
        assert_eq!(mode(Some("require"), None), Ok(Mode::Require));
        // require with a root file verifies the chain.
        let dir = std::env::temp_dir().join(format!("pg-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root = dir.join("root.crt");
        std::fs::write(&root, params.self_signed(&key).expect("cert").pem()).expect("write");
        let root = root.to_str().expect("utf-8");
        assert_eq!(mode(Some("require"), Some(root)), Ok(Mode::VerifyCa));
        assert_eq!(mode(Some("verify-full"), Some(root)), Ok(Mode::VerifyFull));
        let _ = std::fs::remove_dir_all(&dir);
        // sslrootcert=system: verify-full by default, and nothing weaker.
        let system = mode(None, Some("system"));
        assert!(
            matches!(system, Ok(Mode::VerifyFull))
                || matches!(&system, Err(e) if e.message.contains("no system root certificates")),
            "{system:?}"
        );
        let weak = mode(Some("require"), Some("system")).expect_err("weak");
        assert_eq!(weak.field, Field::Sslmode);
        assert!(weak.message.contains("use \"verify-full\""), "{weak}");
        // Unknown modes name the allowed ones; unix sockets never use TLS.
        let unknown = mode(Some("on"), None).expect_err("unknown");
        assert!(unknown.message.contains(MODES), "{unknown}");
        let socket = Settings {
            host: Some("/run/postgresql".into()),
            ..settings(Some("verify-full"), Some("/nonexistent"))
        };
        assert_eq!(
            Tls::from_settings(&socket).map(|tls| tls.mode),
            Ok(Mode::Disable)
        );
    }
}
