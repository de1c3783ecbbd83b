//! Runs through the API: queue one for a workspace, follow it, approve it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::api::{ApiJson, ErrorBody, Principal, ok_json};
use crate::http::ApiError;
use crate::store::Source;
use crate::store::configs::Configuration;
use crate::store::runs::{LogLine, NotApprovable, NotDiscardable, Run};

type Shared = Arc<AppState>;

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
}

/// An approval's reason, for the audit trail.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Recorded as given (JSON-escaped in the audit event).
    #[schema(min_length = 1, max_length = 1024)]
    pub reason: String,
}

/// What to run (the body of a queue request; none for a git workspace).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueRun {
    /// An uploaded configuration version of this workspace (required when
    /// its source is `upload`, refused otherwise).
    #[schema(min_length = 1, max_length = 64)]
    pub configuration: Option<String>,
    /// Plan the destruction of every resource (`terraform plan -destroy`).
    #[serde(default)]
    pub destroy: bool,
}

fn invalid(message: impl Into<String>) -> Response {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).into_response()
}

/// Uploads a configuration version (a gzipped tar of the Terraform
/// directory) to a workspace whose source is `upload`; queue a run of it
/// next. Only regular files and directories under plain relative paths are
/// taken; the archive is never served back.
#[utoipa::path(post, path = "/v1/workspaces/{name}/configurations",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "a gzipped tar (also taken as application/gzip), at most 32 MiB \
            (256 MiB unpacked, 20,000 entries)"),
    responses(
        (status = 201, body = Configuration),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<Shared>,
    who: Principal,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(
        kind.split(';').next().unwrap_or("").trim(),
        "application/gzip" | "application/x-gzip" | "application/octet-stream"
    ) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the configuration as application/gzip (a gzipped tar)",
        )
        .into_response();
    }
    let ws = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    if !matches!(ws.source, Source::Upload {}) {
        return ApiError::conflict(format!(
            "workspace {name:?} runs its git source; it takes no uploads"
        ))
        .into_response();
    }
    // Checking decompresses: off the async threads.
    let checked = {
        let body = body.clone();
        tokio::task::spawn_blocking(move || crate::archive::check(&body)).await
    };
    let summary = match checked {
        Ok(Ok(summary)) => summary,
        Ok(Err(why)) => return invalid(format!("the configuration archive: {why}")),
        Err(_) => {
            return ApiError::internal(&anyhow::anyhow!("the archive check panicked"))
                .into_response();
        }
    };
    match state
        .store
        .add_configuration(&ws.id, &who.name, &body, summary.files)
        .await
    {
        Ok(config) => ok_json(StatusCode::CREATED, &config),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Queues a run (plan, then apply once approved) of the workspace: of its
/// git source, or of an uploaded configuration version.
#[utoipa::path(post, path = "/v1/workspaces/{name}/runs",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    request_body(content = Option<QueueRun>, content_type = "application/json",
        description = "optional for a git workspace; `configuration` is required for an upload one"),
    responses(
        (status = 202, body = Run, headers(("location" = String))),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody),
    ))]
pub async fn queue(
    State(state): State<Shared>,
    who: Principal,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request = if body.is_empty() {
        QueueRun {
            configuration: None,
            destroy: false,
        }
    } else {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == "application/json");
        if !json {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json (or no body)",
            )
            .into_response();
        }
        match serde_json::from_slice::<Option<QueueRun>>(&body) {
            Ok(request) => request.unwrap_or(QueueRun {
                configuration: None,
                destroy: false,
            }),
            Err(e) => return ApiError::bad_request(format!("the body: {e}")).into_response(),
        }
    };
    let ws = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    match (&ws.source, request.configuration.as_deref()) {
        (Source::Upload {}, None) => {
            return ApiError::conflict(
                "configuration: required: this workspace runs uploaded configurations \
                 (POST /v1/workspaces/NAME/configurations first)",
            )
            .into_response();
        }
        (Source::Upload {}, Some(id)) => match state.store.configuration(id).await {
            Ok(Some(config)) if config.workspace_id == ws.id => {}
            Ok(_) => {
                return ApiError::not_found(
                    "configuration: no such configuration in this workspace",
                )
                .into_response();
            }
            Err(e) => return ApiError::internal(&e).into_response(),
        },
        (Source::Git { .. }, Some(_)) => {
            return ApiError::conflict("configuration: this workspace runs its git source")
                .into_response();
        }
        (Source::Git { .. }, None) => {}
    }
    match state
        .store
        .queue_run_of(
            &ws.id,
            &who.name,
            request.configuration.as_deref(),
            request.destroy,
        )
        .await
    {
        Ok(run) => {
            state.wake.notify_waiters();
            let mut response = ok_json(StatusCode::ACCEPTED, &run);
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/runs/{}", run.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// The workspace's runs, in queue order.
#[utoipa::path(get, path = "/v1/workspaces/{name}/runs",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = RunList),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn list_runs(
    State(state): State<Shared>,
    _who: Principal,
    Path(name): Path<String>,
) -> Response {
    let id = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws.id,
        Err(r) => return r,
    };
    match state.store.runs(&id).await {
        Ok(runs) => ok_json(StatusCode::OK, &RunList { runs }),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// One run.
#[utoipa::path(get, path = "/v1/runs/{id}",
    params(
        ("id" = String, Path, description = "the run"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = Run),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get_run(
    State(state): State<Shared>,
    _who: Principal,
    Path(id): Path<String>,
) -> Response {
    match state.store.run(&id).await {
        Ok(Some(run)) => ok_json(StatusCode::OK, &run),
        Ok(None) => ApiError::not_found("no such run").into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Approves a planned run for apply; a run that needs an approval takes
/// someone other than who queued it.
#[utoipa::path(post, path = "/v1/runs/{id}/approve",
    params(
        ("id" = String, Path, description = "the run"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    request_body = Approval,
    responses(
        (status = 200, body = Run),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn approve(
    State(state): State<Shared>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(approval): ApiJson<Approval>,
) -> Response {
    if approval.reason.is_empty() || approval.reason.chars().count() > 1024 {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "reason: 1-1024 characters",
        )
        .into_response();
    }
    match state.store.run(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return ApiError::not_found("no such run").into_response(),
        Err(e) => return ApiError::internal(&e).into_response(),
    }
    match state
        .store
        .approve_run(&id, &who.name, &approval.reason)
        .await
    {
        Ok(Ok(run)) => {
            state.wake.notify_waiters();
            ok_json(StatusCode::OK, &run)
        }
        Ok(Err(e @ NotApprovable::FourEyes(..))) => {
            ApiError::new(StatusCode::FORBIDDEN, "four_eyes", e.to_string()).into_response()
        }
        Ok(Err(e)) => ApiError::conflict(e.to_string()).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Discards a run that waits (queued, or a plan waiting for a decision):
/// it is never planned or applied, and the workspace's next run goes ahead.
#[utoipa::path(post, path = "/v1/runs/{id}/discard",
    params(
        ("id" = String, Path, description = "the run"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    request_body = Approval,
    responses(
        (status = 200, body = Run),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn discard(
    State(state): State<Shared>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Approval>,
) -> Response {
    if body.reason.is_empty() || body.reason.chars().count() > 1024 {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "reason: 1-1024 characters",
        )
        .into_response();
    }
    match state.store.run(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return ApiError::not_found("no such run").into_response(),
        Err(e) => return ApiError::internal(&e).into_response(),
    }
    match state.store.discard_run(&id, &who.name, &body.reason).await {
        Ok(Ok(run)) => {
            state.wake.notify_waiters();
            ok_json(StatusCode::OK, &run)
        }
        Ok(Err(e @ NotDiscardable(..))) => ApiError::conflict(e.to_string()).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunLog {
    pub lines: Vec<LogLine>,
}

/// What the run's plan and apply printed (the CLI's output for them), as
/// they print it: follow a run by asking for lines `after` the last seen.
#[utoipa::path(get, path = "/v1/runs/{id}/log",
    params(
        ("id" = String, Path, description = "the run"),
        ("after" = Option<i64>, Query, description = "lines after this seq (default 0)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 10000, description = "at most this many (default 10000)"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = RunLog),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn log(
    State(state): State<Shared>,
    _who: Principal,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    if let Err(e) = super::api::only_query(&uri, &["after", "limit"]) {
        return e.into_response();
    }
    let after = match super::api::query_i64(&uri, "after") {
        Ok(v) => v.unwrap_or(0),
        Err(e) => return e.into_response(),
    };
    let limit = match super::api::query_i64(&uri, "limit") {
        Ok(v) => v.unwrap_or(10_000),
        Err(e) => return e.into_response(),
    };
    if !(1..=10_000).contains(&limit) {
        return ApiError::bad_request("limit must be 1-10000").into_response();
    }
    match state.store.run(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return ApiError::not_found("no such run").into_response(),
        Err(e) => return ApiError::internal(&e).into_response(),
    }
    match state.store.run_log(&id, after, limit).await {
        Ok(lines) => ok_json(StatusCode::OK, &RunLog { lines }),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}
