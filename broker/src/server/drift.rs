//! Drift through the API: a workspace's schedule (cron), its checks'
//! findings, "check now", and acknowledgements by fingerprint.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::api::{ApiJson, ErrorBody, Principal, ok_json};
use crate::http::ApiError;
use crate::store::Refused;
use crate::store::drift::{DriftAck, DriftResult};

type Shared = Arc<AppState>;

/// A drift schedule (`null` turns it off).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A cron expression, UTC: five fields (minute hour day month weekday), or six with
    /// seconds first.
    #[schema(min_length = 1, max_length = 256)]
    pub cron: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduleState {
    pub cron: Option<String>,
    /// Unix ms of the next check.
    pub next_at: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct DriftState {
    pub cron: Option<String>,
    pub next_at: Option<i64>,
    /// The latest checks, newest first (at most 20).
    pub results: Vec<DriftResult>,
    pub acknowledgements: Vec<DriftAck>,
}

/// Accepts one drifted attribute until a day.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAck {
    /// The drifted attribute's fingerprint (from a check's `items`).
    #[schema(min_length = 1, max_length = 128)]
    pub fingerprint: String,
    /// The last day (UTC) it holds: `YYYY-MM-DD`, today or later.
    #[schema(format = Date)]
    pub until: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub reason: String,
}

fn invalid(message: impl Into<String>) -> Response {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid", message).into_response()
}

/// The workspace's drift schedule, its latest checks and acknowledgements.
#[utoipa::path(get, path = "/v1/workspaces/{name}/drift",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = DriftState),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn drift_state(
    State(state): State<Shared>,
    _who: Principal,
    Path(name): Path<String>,
) -> Response {
    let id = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws.id,
        Err(r) => return r,
    };
    let read = async {
        let (cron, next_at) = state.store.drift_schedule(&id).await?;
        Ok::<_, anyhow::Error>(DriftState {
            cron,
            next_at,
            results: state.store.drift_results(&id, 20).await?,
            acknowledgements: state.store.drift_acks(&id).await?,
        })
    };
    match read.await {
        Ok(doc) => ok_json(StatusCode::OK, &doc),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Sets the workspace's drift schedule.
#[utoipa::path(put, path = "/v1/workspaces/{name}/drift/schedule",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    request_body = Schedule,
    responses(
        (status = 200, body = ScheduleState),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn set_drift_schedule(
    State(state): State<Shared>,
    who: Principal,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Schedule>,
) -> Response {
    let id = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws.id,
        Err(r) => return r,
    };
    match state
        .store
        .set_drift_schedule(&id, body.cron.as_deref(), &who.name)
        .await
    {
        Ok(Ok(next_at)) => ok_json(
            StatusCode::OK,
            &ScheduleState {
                cron: body.cron,
                next_at,
            },
        ),
        Ok(Err(refused @ Refused::Invalid { .. })) => invalid(refused.to_string()),
        Ok(Err(refused)) => ApiError::conflict(refused.to_string()).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Queues a drift check of the workspace now.
#[utoipa::path(post, path = "/v1/workspaces/{name}/drift/checks",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 202, body = crate::store::runs::Run),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn check_drift_now(
    State(state): State<Shared>,
    who: Principal,
    Path(name): Path<String>,
) -> Response {
    let id = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws.id,
        Err(r) => return r,
    };
    match state.store.queue_drift_now(&id, &who.name).await {
        Ok(run) => {
            state.wake.notify_waiters();
            ok_json(StatusCode::ACCEPTED, &run)
        }
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Acknowledges one drifted attribute until a day: it no longer counts as
/// open drift (nor notifies) until then.
#[utoipa::path(post, path = "/v1/workspaces/{name}/drift/acks",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    request_body = NewAck,
    responses(
        (status = 201, body = DriftAck),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn acknowledge_drift(
    State(state): State<Shared>,
    who: Principal,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<NewAck>,
) -> Response {
    let id = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws.id,
        Err(r) => return r,
    };
    if body.fingerprint.is_empty() || body.fingerprint.len() > 128 {
        return invalid("fingerprint: 1-128 characters");
    }
    if body.reason.trim().is_empty() || body.reason.chars().count() > 1024 {
        return invalid("reason: 1-1024 characters");
    }
    let until = match crate::dates::parse_date(&body.until) {
        Ok(date) => date,
        Err(e) => return invalid(format!("until: {e}")),
    };
    match crate::dates::today() {
        Ok(today) if until >= today => {}
        _ => return invalid("until: today or later (UTC)"),
    }
    // The acknowledgement holds to the end of that day (UTC).
    let end = until
        .with_hms(23, 59, 59)
        .map(|t| t.assume_utc().unix_timestamp() * 1000 + 999)
        .unwrap_or(i64::MAX);
    match state
        .store
        .ack_drift(&id, &body.fingerprint, end, &body.reason, &who.name)
        .await
    {
        Ok(ack) => ok_json(StatusCode::CREATED, &ack),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}
