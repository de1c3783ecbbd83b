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
use crate::store::runs::{LogLine, NotApprovable, Run};

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

async fn workspace_id(state: &Shared, name: &str) -> Result<String, Response> {
    match state.store.workspace(name).await {
        Ok(Some(ws)) => Ok(ws.id),
        Ok(None) => {
            Err(ApiError::not_found(format!("no workspace named {name:?}")).into_response())
        }
        Err(e) => Err(ApiError::internal(&e).into_response()),
    }
}

/// Queues a run (plan, then apply once approved) of the workspace.
#[utoipa::path(post, path = "/v1/workspaces/{name}/runs",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 202, body = Run, headers(("location" = String))),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn queue(
    State(state): State<Shared>,
    who: Principal,
    Path(name): Path<String>,
) -> Response {
    let id = match workspace_id(&state, &name).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    match state.store.queue_run(&id, &who.name).await {
        Ok(run) => {
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
pub async fn list(
    State(state): State<Shared>,
    _who: Principal,
    Path(name): Path<String>,
) -> Response {
    let id = match workspace_id(&state, &name).await {
        Ok(id) => id,
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
pub async fn get(State(state): State<Shared>, _who: Principal, Path(id): Path<String>) -> Response {
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
        Ok(Ok(run)) => ok_json(StatusCode::OK, &run),
        Ok(Err(e @ NotApprovable::FourEyes(..))) => {
            ApiError::new(StatusCode::FORBIDDEN, "four_eyes", e.to_string()).into_response()
        }
        Ok(Err(e)) => ApiError::conflict(e.to_string()).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunLog {
    pub lines: Vec<LogLine>,
}

/// What the run's plan and apply printed (the CLI's output for them).
#[utoipa::path(get, path = "/v1/runs/{id}/log",
    params(
        ("id" = String, Path, description = "the run"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = RunLog),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn log(State(state): State<Shared>, _who: Principal, Path(id): Path<String>) -> Response {
    match state.store.run(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return ApiError::not_found("no such run").into_response(),
        Err(e) => return ApiError::internal(&e).into_response(),
    }
    match state.store.run_log(&id).await {
        Ok(lines) => ok_json(StatusCode::OK, &RunLog { lines }),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}
