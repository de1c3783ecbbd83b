//! The HTTP plumbing every server front end shares (`mirror serve`, `serve`):
//! the accept loop (HTTPS on rustls, or plain HTTP), graceful shutdown, the
//! error shape, request ids and the access log.
//!
//! Errors are always `{"error": {"code", "message", "request_id"}}` with a
//! stable `code`; every response carries `x-request-id` (the client's, when
//! it sent a sane one, else a new UUID), and the access log line names it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The HTTP client of the broker's outgoing calls (webhooks, the CLI
/// against a server): HTTPS on rustls with the system's roots, or plain HTTP.
pub type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<hyper::body::Bytes>,
>;

/// A client whose connections time out after `connect_timeout`.
pub fn https_client(connect_timeout: Duration) -> Result<HttpsClient, String> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

/// A client error and its causes, without the URL (which may carry a token).
pub fn describe_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut out = String::from("request failed");
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// A request's id, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// An API error: HTTP status, stable code, message (never a secret).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// A failure of the server itself: the cause is logged, the client gets
    /// a generic message and the request id to quote.
    pub fn internal(error: &anyhow::Error) -> ApiError {
        eprintln!("error: {}", crate::render_error(error));
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; its log has the cause under this request id",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The request id is filled in by `request_id` on the way out.
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "request_id": "" }
        });
        json(self.status, &body)
    }
}

/// A JSON response that is never cached.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Gives the request an id (the client's `x-request-id` when it is 1-64
/// visible ASCII characters, else a new one), echoes it on the response and
/// in error bodies, and logs one line: method, path (as sent; never the
/// query or a header), status, milliseconds, id.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let response = if response.status().is_client_error() || response.status().is_server_error() {
        with_request_id(response, &id).await
    } else {
        response
    };
    eprintln!(
        "{method} {path} {} {:.1} ms {id}",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    response
}

/// Fills `request_id` into an error body of ours (other bodies pass).
async fn with_request_id(response: Response, id: &str) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        // An error of axum's own (a path segment that is not UTF-8, a body
        // over its limit): the same shape as ours, with its words.
        let status = response.status();
        let (_, body) = response.into_parts();
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let message = String::from_utf8_lossy(&text).trim().to_owned();
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        let message = if message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            message
        };
        let body = serde_json::json!({
            "error": { "code": code, "message": message, "request_id": id }
        });
        let mut response = json(status, &body);
        if let Ok(value) = HeaderValue::from_str(id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let mut doc: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(doc) => doc,
        Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    if let Some(error) = doc.get_mut("error").and_then(|e| e.as_object_mut()) {
        error.insert(
            "request_id".into(),
            serde_json::Value::String(id.to_owned()),
        );
    }
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(doc.to_string()))
}

/// The most a request body may hold on any route (a route's own
/// `DefaultBodyLimit` is smaller or equal): the state endpoint's 64 MiB.
pub const MAX_BODY: usize = 64 << 20;

/// Reads every request body in full before routing. An answer given before
/// the handler read the body (401, 404, 405, a refused extractor) would
/// otherwise leave it unread, and hyper then closes the keep-alive
/// connection under a client that already sent its next request on it
/// ("closed without response"). A body over `MAX_BODY` is a 413 that
/// closes the connection.
pub async fn whole_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(_) => {
            let mut response = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the request body is larger than {} MiB", MAX_BODY >> 20),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and gives open connections `grace` to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<()> {
    let app = app
        .layer(axum::middleware::from_fn(whole_body))
        .layer(axum::middleware::from_fn(request_id));
    let connections = tokio_util_tracker::Tracker::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of file descriptors and the like: wait, go on.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let tls = tls.clone();
        let guard = connections.enter();
        tokio::spawn(async move {
            let _guard = guard;
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut http = hyper::server::conn::http1::Builder::new();
            // A client that sends no complete request head in time is
            // dropped instead of holding a connection (and shutdown).
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            match tls {
                Some(acceptor) => {
                    // A handshake that stalls or fails costs this task only.
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = http.serve_connection(io, service).await;
                    }
                }
                None => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = http.serve_connection(io, service).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, connections.idle()).await;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// A rustls acceptor from PEM files (HTTP/1.1 only).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("--tls-cert {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--tls-cert {}: not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        bail!("--tls-cert {}: no certificate in it", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--tls-key {}: no PEM private key in it", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("--tls-cert and --tls-key do not form a usable certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Binds `addr` (port 0 picks one) and reports the address bound.
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Counts open connections so shutdown can wait for them.
mod tokio_util_tracker {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Default)]
    pub struct Tracker {
        inner: Arc<Inner>,
    }

    #[derive(Default)]
    struct Inner {
        open: AtomicUsize,
        changed: tokio::sync::Notify,
    }

    pub struct Guard {
        inner: Arc<Inner>,
    }

    impl Tracker {
        pub fn enter(&self) -> Guard {
            self.inner.open.fetch_add(1, Ordering::SeqCst);
            Guard {
                inner: self.inner.clone(),
            }
        }

        /// Completes when no connection is open.
        pub async fn idle(&self) {
            loop {
                let notified = self.inner.changed.notified();
                if self.inner.open.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.inner.open.fetch_sub(1, Ordering::SeqCst);
            self.inner.changed.notify_waiters();
        }
    }
}
