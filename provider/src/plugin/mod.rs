//! The go-plugin process protocol: how Terraform starts, connects to and stops
//! a provider process (facts: shared/notes/protocol.md §2 and §5).
//!
//! Terraform runs the binary with no arguments, a magic cookie and the
//! protocol versions it speaks in the environment; we answer with exactly one
//! handshake line on stdout (`1|6|tcp|127.0.0.1:PORT|grpc|CERT`) and then
//! serve gRPC. After that line nothing is ever written to stdout again.

pub mod tls;

use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use crate::proto::plugin as pb;
use crate::proto::tfplugin6::provider_server::{Provider, ProviderServer};

/// Terraform's handshake cookie (its `TF_PLUGIN_MAGIC_COOKIE`).
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The only application protocol we speak.
pub const PROTOCOL_VERSION: u32 = 6;
/// Terraform's own client allows far more; tonic's default decode limit is 4 MiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "This binary is a plugin for Terraform. It is not meant to be run by hand: \
         Terraform starts it when a configuration uses the \"platform\" provider.\n\
         To serve it for a debugger or a benchmark, run it with --debug."
    )]
    NotStartedByTerraform,
    #[error(
        "Terraform offered plugin protocol versions {offered:?}, but this provider speaks only \
         version 6 (Terraform 1.0 or newer). Upgrade Terraform."
    )]
    NoCommonProtocol { offered: String },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("listening on loopback: {0}")]
    Listen(std::io::Error),
    #[error("writing the handshake line: {0}")]
    Handshake(std::io::Error),
    #[error("serving gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// What the environment says about how we were started.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub cookie: Option<String>,
    pub protocol_versions: Option<String>,
    pub client_cert_pem: Option<String>,
}

impl Launch {
    pub fn from_env() -> Self {
        Launch {
            cookie: std::env::var(MAGIC_COOKIE_KEY).ok(),
            protocol_versions: std::env::var("PLUGIN_PROTOCOL_VERSIONS").ok(),
            client_cert_pem: std::env::var("PLUGIN_CLIENT_CERT")
                .ok()
                .filter(|pem| !pem.trim().is_empty()),
        }
    }

    /// Checks the cookie and negotiates the protocol version.
    pub fn check(&self) -> Result<u32, StartError> {
        if self.cookie.as_deref() != Some(MAGIC_COOKIE_VALUE) {
            return Err(StartError::NotStartedByTerraform);
        }
        // Absent means an old go-plugin client that only knows its own default;
        // we try 6 and let the client explain a mismatch.
        let Some(offered) = self.protocol_versions.as_deref() else {
            return Ok(PROTOCOL_VERSION);
        };
        let speaks_6 = offered
            .split(',')
            .any(|v| v.trim().parse::<u32>() == Ok(PROTOCOL_VERSION));
        if speaks_6 {
            Ok(PROTOCOL_VERSION)
        } else {
            Err(StartError::NoCommonProtocol {
                offered: offered.to_owned(),
            })
        }
    }
}

/// Serves the provider as Terraform's child process: handshake line, then gRPC
/// until `GRPCController/Shutdown`. Returns only on error; a shutdown exits the
/// process.
pub async fn serve_managed<P: Provider>(provider: P, launch: &Launch) -> Result<(), StartError> {
    let version = launch.check()?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(StartError::Listen)?;
    let addr = listener.local_addr().map_err(StartError::Listen)?;
    let tls = match &launch.client_cert_pem {
        Some(pem) => Some(tls::server_tls(pem)?),
        None => None,
    };
    ignore_interrupts();

    let cert = tls.as_ref().map(|t| t.handshake_cert()).unwrap_or_default();
    let line = format!("1|{version}|tcp|{addr}|grpc|{cert}\n");
    {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(line.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(StartError::Handshake)?;
    }
    tracing::debug!(%addr, tls = tls.is_some(), "handshake sent");

    let router = routes(provider, true);
    match tls {
        Some(tls) => {
            let incoming = tls_incoming(listener, tokio_rustls::TlsAcceptor::from(tls.config));
            router.serve_with_incoming(incoming).await?;
        }
        None => {
            router.serve_with_incoming(plain_incoming(listener)).await?;
        }
    }
    Ok(())
}

/// Serves in reattach ("debug") mode: plaintext on loopback, no cookie, no
/// Shutdown from Terraform; prints the `TF_REATTACH_PROVIDERS` value to use and
/// runs until interrupted. `Test: true` is required for protocol 6 clients.
pub async fn serve_debug<P: Provider>(
    provider: P,
    source_address: &str,
    mut out: impl std::io::Write,
) -> Result<(), StartError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(StartError::Listen)?;
    let addr: SocketAddr = listener.local_addr().map_err(StartError::Listen)?;
    let reattach = serde_json::json!({
        source_address: {
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": std::process::id(),
            "Test": true,
            "Addr": {"Network": "tcp", "String": addr.to_string()},
        }
    });
    writeln!(
        out,
        "Provider started. To attach Terraform CLI, set the TF_REATTACH_PROVIDERS environment variable with the following:\n\n\tTF_REATTACH_PROVIDERS='{reattach}'\n"
    )
    .and_then(|()| out.flush())
    .map_err(StartError::Handshake)?;
    // Ctrl-C ends debug mode at once; a graceful shutdown would wait for
    // Terraform's idle connections.
    tokio::select! {
        result = routes(provider, false).serve_with_incoming(plain_incoming(listener)) => result?,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: stopping"),
    }
    Ok(())
}

fn routes<P: Provider>(provider: P, exit_on_shutdown: bool) -> tonic::transport::server::Router {
    let provider = ProviderServer::new(provider)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(provider)
        .add_service(pb::grpc_controller_server::GrpcControllerServer::new(
            Controller { exit_on_shutdown },
        ))
        .add_service(pb::grpc_stdio_server::GrpcStdioServer::new(Stdio))
        .add_service(pb::grpc_broker_server::GrpcBrokerServer::new(Broker))
}

/// Ctrl-C reaches the whole process group, provider included. Terraform itself
/// handles it (StopProvider, then Shutdown), so the provider must not die.
fn ignore_interrupts() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        Ok(mut interrupts) => {
            tokio::spawn(async move {
                while interrupts.recv().await.is_some() {
                    tracing::debug!("ignoring SIGINT: Terraform coordinates the stop");
                }
            });
        }
        Err(error) => tracing::warn!(%error, "could not install the SIGINT handler"),
    }
}

/// Accepts TCP connections and completes their TLS handshakes concurrently, so
/// a slow or failing peer never blocks the next one.
fn tls_incoming(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> ReceiverStream<std::io::Result<TlsConn>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            };
            no_delay(&tcp);
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let _ = sender.send(Ok(TlsConn(stream))).await;
                    }
                    Err(error) => tracing::warn!(%error, %peer, "TLS handshake failed"),
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// Without TCP_NODELAY, the tail of a large reply (the schema) waits for the
/// client's delayed ACK: measured 44 ms per GetProviderSchema on loopback.
fn no_delay(tcp: &TcpStream) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}

/// Plaintext connections (no AutoMTLS, reattach mode), with TCP_NODELAY.
fn plain_incoming(listener: TcpListener) -> ReceiverStream<std::io::Result<TcpStream>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((tcp, _)) => {
                    no_delay(&tcp);
                    if sender.send(Ok(tcp)).await.is_err() {
                        break;
                    }
                }
                Err(error) => tracing::warn!(%error, "accept failed"),
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// A TLS connection as tonic's incoming stream wants it.
pub struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

struct Controller {
    exit_on_shutdown: bool,
}

#[tonic::async_trait]
impl pb::grpc_controller_server::GrpcController for Controller {
    /// Terraform waits 2 s for the process to exit after this call before it
    /// kills it, on every one of the 3–5 provider processes of a command: exit
    /// promptly, just after the reply has gone out.
    async fn shutdown(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        tracing::debug!("shutdown requested");
        if self.exit_on_shutdown {
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                std::process::exit(0);
            });
        }
        Ok(Response::new(pb::Empty {}))
    }
}

struct Stdio;

#[tonic::async_trait]
impl pb::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::StdioData, Status>> + Send>>;

    /// We never write to stdout/stderr through this channel (logs go to stderr
    /// directly), so the stream stays open and silent until the process ends.
    async fn stream_stdio(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

struct Broker;

#[tonic::async_trait]
impl pb::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::ConnInfo, Status>> + Send>>;

    /// Terraform never brokers extra connections; keep the stream open.
    async fn start_stream(
        &self,
        _: Request<tonic::Streaming<pb::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn launch(cookie: Option<&str>, versions: Option<&str>) -> Launch {
        Launch {
            cookie: cookie.map(str::to_owned),
            protocol_versions: versions.map(str::to_owned),
            client_cert_pem: None,
        }
    }

    #[test]
    fn missing_cookie_is_a_human_error() {
        let error = launch(None, Some("5,6")).check().unwrap_err();
        assert!(error.to_string().contains("not meant to be run by hand"));
    }

    #[test]
    fn negotiates_6_in_any_order() {
        assert_eq!(
            launch(Some(MAGIC_COOKIE_VALUE), Some("6,5")).check().ok(),
            Some(6)
        );
        assert_eq!(
            launch(Some(MAGIC_COOKIE_VALUE), Some("5, 6")).check().ok(),
            Some(6)
        );
        let error = launch(Some(MAGIC_COOKIE_VALUE), Some("4,5"))
            .check()
            .unwrap_err();
        assert!(error.to_string().contains("\"4,5\""), "{error}");
    }
}
