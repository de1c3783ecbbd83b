//! A blocking client of `platform-broker serve`'s API, for the CLI's
//! `--server` mode: JSON in and out, the server's error shape turned into a
//! typed error, the caller's identity on every request.

use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

/// How long one request may take (an upload of the largest archive too).
const TIMEOUT: Duration = Duration::from_secs(120);

/// An error the server answered with (its stable `code`).
#[derive(Debug, thiserror::Error)]
#[error("the server refused: {message} ({code}, HTTP {status}, request {request_id})")]
pub struct ServerError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: String,
}

pub struct Client {
    base: String,
    user: String,
    runtime: tokio::runtime::Runtime,
    http: crate::http::HttpsClient,
}

impl Client {
    /// A client of the server at `url` (`http://host:port` or `https://…`),
    /// calling as `user` (development auth: the `x-platform-dev-user` header).
    pub fn new(url: &str, user: &str) -> Result<Client> {
        let base = url.trim_end_matches('/').to_owned();
        let parsed: hyper::Uri = base
            .parse()
            .map_err(|_| anyhow::anyhow!("--server {url:?} is not a URL"))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            anyhow::bail!("--server must be an http:// or https:// URL");
        }
        if parsed.path_and_query().is_some_and(|p| p.as_str() != "/") {
            anyhow::bail!("--server takes the server's base URL (scheme, host and port only)");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let http = {
            let _guard = runtime.enter();
            crate::http::https_client(Duration::from_secs(10)).map_err(anyhow::Error::msg)?
        };
        Ok(Client {
            base,
            user: user.to_owned(),
            runtime,
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, None)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(
            "POST",
            path,
            Some(("application/json", serde_json::to_vec(body)?)),
        )
    }

    pub fn post_bytes(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Value> {
        self.call("POST", path, Some((content_type, body)))
    }

    fn call(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Result<Value> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("x-platform-dev-user", &self.user)
            .header(
                "user-agent",
                concat!("platform-broker/", env!("CARGO_PKG_VERSION")),
            );
        let payload = match body {
            Some((kind, bytes)) => {
                request = request.header("content-type", kind);
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| anyhow::anyhow!("cannot build the request to {path}: {e}"))?;
        let (status, bytes) = self
            .runtime
            .block_on(async {
                let call = async {
                    let response = self
                        .http
                        .request(request)
                        .await
                        .map_err(|e| crate::http::describe_error(&e))?;
                    let status = response.status().as_u16();
                    let bytes = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| format!("reading the answer: {e}"))?
                        .to_bytes();
                    Ok::<_, String>((status, bytes))
                };
                match tokio::time::timeout(TIMEOUT, call).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {TIMEOUT:?}")),
                }
            })
            .map_err(|e| anyhow::anyhow!("{} {}{path}: {e}", method, self.base))?;
        let value: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{method} {}{path}: HTTP {status} with a body that is not JSON (is this a platform-broker server?)",
                self.base
            )
        })?;
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let text = |key: &str| {
            value
                .pointer(&format!("/error/{key}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Err(ServerError {
            status,
            code: text("code"),
            message: text("message"),
            request_id: text("request_id"),
        }
        .into())
    }
}
