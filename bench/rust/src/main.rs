//! `platform-bench schema`: process start -> go-plugin handshake -> schema RPC
//! -> Shutdown -> exit, for our provider and hashicorp/null, measured the way
//! Terraform's go-plugin client does it (AutoMTLS, no Terraform in the loop).
//!
//! ```text
//! platform-bench schema --ours PATH --null PATH --catalog DIR [-n 30] [--json FILE]
//! ```
//!
//! Per run (timed from just before spawn):
//! 1. spawn the plugin with go-plugin's environment (magic cookie, protocol
//!    version, port range, `PLUGIN_CLIENT_CERT`, a private `TMPDIR`);
//! 2. read the handshake line `1|N|NETWORK|ADDR|grpc|CERT` (-> "handshake");
//! 3. TLS-connect (rustls/ring, server cert pinned to CERT, SNI "localhost",
//!    ALPN h2, client cert presented) over TCP or a unix socket, and call
//!    `tfplugin6.Provider/GetProviderSchema` (ours) or
//!    `tfplugin5.Provider/GetSchema` (null) (-> "schema");
//! 4. `plugin.GRPCController/Shutdown`, close the connection, wait for the
//!    process to exit (-> "exit").
//!
//! Differences from Terraform, noted in the output: the client certificate is
//! ECDSA P-256 (go-plugin uses P-521, which rcgen on ring cannot generate); the
//! go-plugin client's StartStream/StreamStdio side streams are not opened.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use bytes::{Buf as _, BufMut as _, Bytes};
use hyper_util::rt::TokioIo;
use provider::tls_verify::{ServerCheck, ServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint, Uri};

use provider::proto::plugin::Empty;
use provider::proto::plugin::grpc_controller_client::GrpcControllerClient;
use provider::proto::tfplugin6::get_provider_schema;
use provider::proto::tfplugin6::provider_client::ProviderClient;

const MAGIC_COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
const MAX_MESSAGE: usize = 256 * 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

// ----------------------------------------------------------------------- CLI

struct Args {
    ours: PathBuf,
    null: PathBuf,
    catalog: PathBuf,
    n: usize,
    json: Option<PathBuf>,
}

const USAGE: &str = "usage: platform-bench schema --ours PATH --null PATH --catalog DIR \
                     [-n 30] [--json FILE]";

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    match it.next().as_deref() {
        Some("schema") => {}
        Some("-h" | "--help") | None => bail!("{USAGE}"),
        Some(other) => bail!("unknown subcommand {other:?}\n{USAGE}"),
    }
    let (mut ours, mut null, mut catalog, mut n, mut json) = (None, None, None, 30usize, None);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--ours" => ours = Some(PathBuf::from(value()?)),
            "--null" => null = Some(PathBuf::from(value()?)),
            "--catalog" => catalog = Some(PathBuf::from(value()?)),
            "-n" => {
                let v = value()?;
                n = v.parse().with_context(|| format!("-n {v:?}"))?;
                if n == 0 {
                    bail!("-n must be at least 1");
                }
            }
            "--json" => json = Some(PathBuf::from(value()?)),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let need =
        |v: Option<PathBuf>, name: &str| v.ok_or_else(|| anyhow!("{name} is required\n{USAGE}"));
    Ok(Args {
        ours: need(ours, "--ours")?,
        null: need(null, "--null")?,
        catalog: need(catalog, "--catalog")?,
        n,
        json,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("platform-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("platform-bench: starting the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench_schema(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("platform-bench: ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ----------------------------------------------------------------------- plugins

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Our provider: tfplugin6, GetProviderSchema through the generated client.
    Ours,
    /// hashicorp/null 2.1.2: tfplugin5, GetSchema with a raw-bytes codec.
    Null,
}

struct Plugin {
    kind: Kind,
    label: &'static str,
    path: PathBuf,
    env: Vec<(String, String)>,
    _tmpdir: tempfile::TempDir,
}

impl Plugin {
    fn new(kind: Kind, path: &Path, catalog: &Path, client_pem: &str) -> anyhow::Result<Self> {
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("plugin binary {}", path.display()))?;
        // A private TMPDIR: go-plugin servers put their unix socket there.
        let tmpdir = tempfile::Builder::new()
            .prefix("platform-bench-")
            .tempdir()
            .context("creating a private TMPDIR")?;
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                !k.starts_with("TF_") && !k.starts_with("PLUGIN_") && k != "PLATFORM_CATALOG"
            })
            .filter(|(k, _)| k != "TMPDIR")
            .collect();
        let version = match kind {
            Kind::Ours => "6",
            Kind::Null => "5",
        };
        env.extend(
            [
                ("TF_PLUGIN_MAGIC_COOKIE", MAGIC_COOKIE),
                ("PLUGIN_PROTOCOL_VERSIONS", version),
                ("PLUGIN_MIN_PORT", "10000"),
                ("PLUGIN_MAX_PORT", "25000"),
                ("PLUGIN_CLIENT_CERT", client_pem),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env.push(("TMPDIR".to_owned(), tmpdir.path().display().to_string()));
        if kind == Kind::Ours {
            let catalog = std::fs::canonicalize(catalog)
                .with_context(|| format!("catalog {}", catalog.display()))?;
            env.push(("PLATFORM_CATALOG".to_owned(), catalog.display().to_string()));
        }
        Ok(Plugin {
            kind,
            label: match kind {
                Kind::Ours => "ours",
                Kind::Null => "null",
            },
            path,
            env,
            _tmpdir: tmpdir,
        })
    }
}

// ----------------------------------------------------------------------- client identity

/// The client certificate, generated once per benchmark (Terraform: once per command).
struct ClientIdentity {
    pem: String,
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

/// Like go-plugin's `generateCert`: self-signed, CA:TRUE, CN/SAN localhost,
/// O=HashiCorp, EKU client+server auth; but P-256 instead of P-521.
fn client_identity() -> anyhow::Result<ClientIdentity> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating the client key")?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .context("client certificate parameters")?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "HashiCorp");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyAgreement,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let cert = params
        .self_signed(&key)
        .context("self-signing the client certificate")?;
    Ok(ClientIdentity {
        pem: cert.pem(),
        der: cert.der().clone(),
        key: key.serialize_der(),
    })
}

// ----------------------------------------------------------------------- TLS

/// ring's verification algorithms plus ECDSA P-521/SHA-512 (go-plugin's server
/// certificates, e.g. hashicorp/null's, are P-521; ring cannot verify those).
/// ring's algorithms plus P-521 (null's server certificate), shared with the
/// provider's own verifier.
fn algorithms() -> WebPkiSupportedAlgorithms {
    static ALGS: OnceLock<WebPkiSupportedAlgorithms> = OnceLock::new();
    *ALGS.get_or_init(|| {
        provider::plugin::tls::with_p521(
            rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    })
}

fn client_tls(
    identity: &ClientIdentity,
    server_der: Vec<u8>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    // Terraform puts the handshake line's certificate, alone, in RootCAs:
    // trust exactly that one.
    let verifier = Arc::new(ServerVerifier::new(
        ServerCheck::Pinned(server_der),
        algorithms(),
    ));
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(rustls::ALL_VERSIONS)
    .context("TLS protocol versions")?
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_client_auth_cert(
        vec![identity.der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.clone())),
    )
    .context("TLS client certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Clone, Debug)]
enum Target {
    Tcp(String),
    Unix(PathBuf),
}

async fn tls_connect(
    target: Target,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TokioIo<tokio_rustls::client::TlsStream<Box<dyn Io>>>> {
    let stream: Box<dyn Io> = match &target {
        Target::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Box::new(s)
        }
        Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
    };
    let name = ServerName::try_from("localhost")
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await?;
    Ok(TokioIo::new(tls))
}

async fn channel(target: Target, config: Arc<rustls::ClientConfig>) -> anyhow::Result<Channel> {
    let connector = tower::service_fn(move |_: Uri| tls_connect(target.clone(), config.clone()));
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .context("gRPC/TLS connect")
}

// ----------------------------------------------------------------------- raw codec

/// Sends and receives message bytes as they are (null's tfplugin5 schema).
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

// ----------------------------------------------------------------------- one run

#[derive(Clone, Copy)]
struct Sample {
    handshake: Duration,
    connected: Duration,
    schema: Duration,
    exit: Duration,
}

struct RunInfo {
    sample: Sample,
    response_bytes: usize,
    detail: String,
    network: String,
    shutdown_ok: bool,
}

struct Running {
    child: Child,
    stderr: JoinHandle<Vec<u8>>,
}

impl Running {
    /// Kills the plugin (if still running) and returns what it wrote to stderr.
    async fn abort(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await;
        stderr_text(self.stderr).await
    }
}

async fn stderr_text(task: JoinHandle<Vec<u8>>) -> String {
    match tokio::time::timeout(Duration::from_secs(2), task).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => "<stderr not available>".to_owned(),
    }
}

fn drain<R: AsyncRead + Unpin + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf).await;
        buf
    })
}

async fn run_once(plugin: &Plugin, identity: &ClientIdentity) -> anyhow::Result<RunInfo> {
    let t0 = Instant::now();
    let mut child = Command::new(&plugin.path)
        .env_clear()
        .envs(plugin.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", plugin.path.display()))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        bail!(
            "spawned {} without stdout/stderr pipes",
            plugin.path.display()
        );
    };
    let running = Running {
        child,
        stderr: drain(stderr),
    };
    match talk(plugin, identity, t0, stdout, running).await {
        Ok(info) => Ok(info),
        Err((e, running)) => {
            let stderr = running.abort().await;
            let stderr = stderr.trim_end();
            Err(anyhow!(
                "{} run failed: {e:#}\n--- plugin stderr ---\n{}",
                plugin.label,
                if stderr.is_empty() { "<empty>" } else { stderr }
            ))
        }
    }
}

type TalkError = (anyhow::Error, Running);

async fn talk(
    plugin: &Plugin,
    identity: &ClientIdentity,
    t0: Instant,
    stdout: tokio::process::ChildStdout,
    mut running: Running,
) -> Result<RunInfo, TalkError> {
    macro_rules! tryr {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err((anyhow::Error::from(e), running)),
            }
        };
    }

    // 1. Handshake line.
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, stdout.read_line(&mut line)).await;
    let handshake = t0.elapsed();
    let n = tryr!(
        tryr!(read.map_err(|_| anyhow!("no handshake line within {HANDSHAKE_TIMEOUT:?}")))
            .context("reading the handshake line")
    );
    if n == 0 {
        return Err((anyhow!("stdout closed before the handshake line"), running));
    }
    let _stdout_drain = drain(stdout);
    let want_version = match plugin.kind {
        Kind::Ours => "6",
        Kind::Null => "5",
    };
    let (target, server_der, network) = tryr!(parse_handshake(line.trim(), want_version));

    // 2. TLS + gRPC, schema RPC.
    let config = tryr!(client_tls(identity, server_der));
    let channel = tryr!(
        tokio::time::timeout(RPC_TIMEOUT, channel(target, config))
            .await
            .map_err(|_| anyhow!("TLS connect timed out"))
    );
    let channel = tryr!(channel);
    let connected = t0.elapsed();
    let response_bytes = tryr!(
        tokio::time::timeout(RPC_TIMEOUT, schema_rpc(plugin.kind, channel.clone()))
            .await
            .map_err(|_| anyhow!("schema RPC timed out after {RPC_TIMEOUT:?}"))
    );
    let (response_bytes, detail) = tryr!(response_bytes);
    let schema = t0.elapsed();

    // 3. Shutdown, close, wait for the exit.
    let shutdown = tokio::time::timeout(
        RPC_TIMEOUT,
        GrpcControllerClient::new(channel.clone()).shutdown(Empty {}),
    )
    .await;
    drop(channel);
    // Like go-plugin's Client.Kill, a failed Shutdown is not an error by itself:
    // go-plugin servers answer it with grpc.Server.Stop(), which may drop the
    // connection before the reply is sent. What counts is that the process exits.
    let shutdown_ok = matches!(shutdown, Ok(Ok(_)));
    let status = tryr!(
        tokio::time::timeout(EXIT_TIMEOUT, running.child.wait())
            .await
            .map_err(|_| anyhow!("process did not exit within {EXIT_TIMEOUT:?} after Shutdown"))
    );
    let status = tryr!(status.context("waiting for the plugin"));
    let exit = t0.elapsed();
    if !status.success() {
        return Err((
            anyhow!("plugin exited with {status} after Shutdown"),
            running,
        ));
    }
    Ok(RunInfo {
        sample: Sample {
            handshake,
            connected,
            schema,
            exit,
        },
        response_bytes,
        detail,
        network,
        shutdown_ok,
    })
}

/// `1|N|NETWORK|ADDR|grpc|CERT` -> where to connect, the server cert DER, and
/// the network name.
fn parse_handshake(line: &str, want_version: &str) -> anyhow::Result<(Target, Vec<u8>, String)> {
    let parts: Vec<&str> = line.splitn(6, '|').collect();
    let [core, app, network, addr, protocol, cert] = parts.as_slice() else {
        bail!("malformed handshake line {line:?}");
    };
    if *core != "1" || *app != want_version || *protocol != "grpc" {
        bail!("unexpected handshake line {line:?} (want 1|{want_version}|...|grpc|CERT)");
    }
    if cert.is_empty() {
        bail!(
            "handshake line carries no server certificate although PLUGIN_CLIENT_CERT is set: {line:?}"
        );
    }
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(cert)
        .with_context(|| format!("server certificate is not unpadded standard base64: {line:?}"))?;
    let target = match *network {
        "tcp" => Target::Tcp((*addr).to_owned()),
        "unix" => Target::Unix(PathBuf::from(addr)),
        other => bail!("unsupported network {other:?} in {line:?}"),
    };
    Ok((target, der, (*network).to_owned()))
}

/// The schema RPC; returns the response size and a short description.
async fn schema_rpc(kind: Kind, channel: Channel) -> anyhow::Result<(usize, String)> {
    match kind {
        Kind::Ours => {
            let mut client = ProviderClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            let resp = client
                .get_provider_schema(get_provider_schema::Request {})
                .await
                .context("tfplugin6.Provider/GetProviderSchema")?
                .into_inner();
            let errors: Vec<String> = resp
                .diagnostics
                .iter()
                .filter(|d| d.severity == 1)
                .map(|d| format!("{}: {}", d.summary, d.detail))
                .collect();
            if !errors.is_empty() {
                bail!("GetProviderSchema returned errors: {}", errors.join("; "));
            }
            if resp.provider.is_none() {
                bail!("GetProviderSchema returned no provider schema");
            }
            let size = prost::Message::encoded_len(&resp);
            Ok((
                size,
                format!(
                    "{} resource types, {} data sources",
                    resp.resource_schemas.len(),
                    resp.data_source_schemas.len()
                ),
            ))
        }
        Kind::Null => {
            let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE);
            grpc.ready()
                .await
                .map_err(|e| anyhow!("gRPC channel not ready: {e}"))?;
            let resp = grpc
                .unary(
                    tonic::Request::new(Bytes::new()),
                    http_path("/tfplugin5.Provider/GetSchema"),
                    RawCodec,
                )
                .await
                .context("tfplugin5.Provider/GetSchema")?
                .into_inner();
            Ok((resp.len(), "raw tfplugin5 GetSchema response".to_owned()))
        }
    }
}

fn http_path(p: &'static str) -> tonic::codegen::http::uri::PathAndQuery {
    tonic::codegen::http::uri::PathAndQuery::from_static(p)
}

// ----------------------------------------------------------------------- stats + main flow

struct Stats {
    median: f64,
    p90: f64,
    min: f64,
}

fn stats(xs: &[Duration]) -> Stats {
    let mut ms: Vec<f64> = xs.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    // Nearest-rank p90, like bench/schema.py.
    let p90 = if n == 0 {
        f64::NAN
    } else {
        ms[((0.9 * n as f64).ceil() as usize).max(1) - 1]
    };
    Stats {
        median,
        p90,
        min: ms.first().copied().unwrap_or(f64::NAN),
    }
}

/// A phase's label and how to read its duration from a sample.
type Phase = (&'static str, fn(&Sample) -> Duration);

const PHASES: [Phase; 4] = [
    ("start -> handshake", |s| s.handshake),
    ("start -> TLS connected", |s| s.connected),
    ("start -> schema", |s| s.schema),
    ("start -> exit", |s| s.exit),
];

async fn bench_schema(args: Args) -> anyhow::Result<()> {
    // Outside the timed region, as Terraform does once per command.
    let identity = client_identity()?;
    let _ = algorithms();
    let plugins = [
        Plugin::new(Kind::Ours, &args.ours, &args.catalog, &identity.pem)?,
        Plugin::new(Kind::Null, &args.null, &args.catalog, &identity.pem)?,
    ];

    // Warm-up (page cache, first-run effects): one untimed run each.
    let mut last: [Option<RunInfo>; 2] = [None, None];
    for (i, p) in plugins.iter().enumerate() {
        last[i] = Some(run_once(p, &identity).await.context("warm-up")?);
    }

    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let mut shutdown_answered = [0usize; 2];
    for round in 0..args.n {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let info = run_once(&plugins[i], &identity)
                .await
                .with_context(|| format!("run {} of {}", round + 1, args.n))?;
            samples[i].push(info.sample);
            shutdown_answered[i] += usize::from(info.shutdown_ok);
            last[i] = Some(info);
        }
    }
    let (Some(ours_info), Some(null_info)) = (&last[0], &last[1]) else {
        bail!("no runs recorded");
    };

    println!(
        "platform-bench schema: spawn -> handshake -> schema RPC -> Shutdown -> exit, \
         go-plugin AutoMTLS, no Terraform; n={} each, interleaved",
        args.n
    );
    println!(
        "  client cert: self-signed ECDSA P-256 (go-plugin uses P-521; rcgen on ring cannot \
         generate it), generated once outside the timed region"
    );
    println!(
        "  ours: {} (protocol 6, {}), PLATFORM_CATALOG={}",
        plugins[0].path.display(),
        ours_info.network,
        args.catalog.display()
    );
    println!(
        "  null: {} (protocol 5, {})",
        plugins[1].path.display(),
        null_info.network
    );
    println!(
        "  {:<30} {:>8} {:>8} {:>8}   (ms)",
        "", "median", "p90", "min"
    );
    let mut json_phases = serde_json::Map::new();
    let mut ratios = Vec::new();
    for (name, get) in PHASES {
        let mut medians = [0.0; 2];
        let mut per_plugin = serde_json::Map::new();
        for (i, p) in plugins.iter().enumerate() {
            let xs: Vec<Duration> = samples[i].iter().map(get).collect();
            let s = stats(&xs);
            println!(
                "  {:<30} {:8.1} {:8.1} {:8.1}   n={}",
                format!("{}: {}", p.label, name),
                s.median,
                s.p90,
                s.min,
                xs.len()
            );
            medians[i] = s.median;
            per_plugin.insert(
                p.label.to_owned(),
                serde_json::json!({"median_ms": s.median, "p90_ms": s.p90, "min_ms": s.min}),
            );
        }
        let ratio = medians[0] / medians[1];
        per_plugin.insert("ratio".to_owned(), serde_json::json!(ratio));
        json_phases.insert(name.to_owned(), serde_json::Value::Object(per_plugin));
        ratios.push((name, ratio));
    }
    println!(
        "  ratio ours/null (medians): {}",
        ratios
            .iter()
            .map(|(n, r)| format!("{n} {r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  response sizes: ours GetProviderSchema {} bytes ({}); null GetSchema {} bytes",
        ours_info.response_bytes, ours_info.detail, null_info.response_bytes
    );
    println!(
        "  Shutdown replied: ours {}/{n}, null {}/{n} (go-plugin servers may drop the connection \
         instead of replying; like Terraform, only the process exit is required)",
        shutdown_answered[0],
        shutdown_answered[1],
        n = args.n
    );
    let schema_ratio = ratios.get(2).map(|(_, r)| *r).unwrap_or(f64::NAN);
    println!(
        "  target (ours <= 0.5 x null, start -> schema): {}",
        if schema_ratio <= 0.5 {
            "met"
        } else {
            "NOT met"
        }
    );

    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "n": args.n,
            "client_cert": "ECDSA P-256 self-signed",
            "phases": json_phases,
            "shutdown_replied": {"ours": shutdown_answered[0], "null": shutdown_answered[1]},
            "response_bytes": {"ours": ours_info.response_bytes, "null": null_info.response_bytes},
            "ours_detail": ours_info.detail,
        });
        let text = serde_json::to_string_pretty(&doc).context("encoding JSON")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
