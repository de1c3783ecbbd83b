//! Terraform's `http` backend on the server: a workspace's state and lock.
//!
//! ```hcl
//! terraform {
//!   backend "http" {
//!     address        = "https://platform.example.com/v1/workspaces/orders/state"
//!     lock_address   = "https://platform.example.com/v1/workspaces/orders/lock"
//!     unlock_address = "https://platform.example.com/v1/workspaces/orders/lock"
//!   }
//! }
//! ```
//!
//! `GET state` (204 when there is none), `POST state?ID=LOCK` (only the lock
//! holder; lineage kept, serial never back), `LOCK`/`UNLOCK lock` with
//! Terraform's lock info (423 with the holder's info when taken; an UNLOCK
//! without a body is `terraform force-unlock`). Every accepted write is a new
//! version; `state/versions` lists them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::api::{ErrorBody, Principal, ok_json};
use crate::http::ApiError;
use crate::store::Workspace;
use crate::store::state::{Locked, RestoreRefused, StateRefused, StateVersion, Unlocked};

/// The largest state a POST may carry.
pub const MAX_STATE_BYTES: usize = 64 << 20;

type Shared = Arc<AppState>;

/// The workspace `name`, or the API's 404 (or 500) answer.
pub(super) async fn workspace(state: &Shared, name: &str) -> Result<Workspace, Response> {
    match state.store.workspace(name).await {
        Ok(Some(w)) => Ok(w),
        Ok(None) => {
            Err(ApiError::not_found(format!("no workspace named {name:?}")).into_response())
        }
        Err(e) => Err(ApiError::internal(&e).into_response()),
    }
}

/// `ID` from the query string (Terraform's lock ID: a UUID).
fn lock_id(uri: &Uri) -> Option<String> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("ID="))
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_owned)
}

fn raw_json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The workspace's newest state (204 when it has none).
#[utoipa::path(get, path = "/v1/workspaces/{name}/state",
    params(("name" = String, Path, description = "the workspace")),
    responses(
        (status = 200, description = "the state (Terraform's JSON)", content_type = "application/json"),
        (status = 204, description = "no state yet"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get_state(
    State(state): State<Shared>,
    _who: Principal,
    Path(name): Path<String>,
) -> Response {
    let ws = match workspace(&state, &name).await {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    match state.store.state_latest(&ws.id).await {
        Ok(Some((_, body))) => raw_json(StatusCode::OK, body),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Stores a new state version: only for the lock's holder (`?ID=`), same
/// lineage, serial not going back.
#[utoipa::path(post, path = "/v1/workspaces/{name}/state",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("ID" = Option<String>, Query, description = "the lock ID Terraform holds"),
    ),
    request_body(content = TerraformState, description = "the state (Terraform's JSON)", content_type = "application/json"),
    responses(
        (status = 200, body = StateVersion),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not the lock's holder, or a write that would lose state"),
    ))]
pub async fn post_state(
    State(state): State<Shared>,
    who: Principal,
    Path(name): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let ws = match workspace(&state, &name).await {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    if let Err(e) = super::api::only_query(&uri, &["ID"]) {
        return e.into_response();
    }
    let id = lock_id(&uri);
    match state
        .store
        .state_write(&ws.id, id.as_deref(), &body, &who.name)
        .await
    {
        Ok(Ok(version)) => ok_json(StatusCode::OK, &version),
        Ok(Err(refused)) => {
            let (status, code) = match &refused {
                StateRefused::Malformed(_) => (StatusCode::BAD_REQUEST, "invalid"),
                StateRefused::NotLocked | StateRefused::LockedByOther => {
                    (StatusCode::CONFLICT, "not_lock_holder")
                }
                StateRefused::Lineage { .. }
                | StateRefused::Serial { .. }
                | StateRefused::SameSerial(_) => (StatusCode::CONFLICT, "state_conflict"),
            };
            ApiError::new(status, code, refused.to_string()).into_response()
        }
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// LOCK and UNLOCK (Terraform's http backend methods; not in this document's
/// method set, so described here): the body is Terraform's lock info
/// (`{"ID", "Operation", "Who", …}`). LOCK: 200 when taken (or already held
/// by that ID), 423 with the holder's lock info. UNLOCK: 200 when released by
/// its holder, 409 with the holder's info when another ID holds it; without a
/// body (`terraform force-unlock`) it releases whoever holds it.
pub async fn lock(
    State(state): State<Shared>,
    who: Principal,
    Path(name): Path<String>,
    method: Method,
    body: Bytes,
) -> Response {
    let ws = match workspace(&state, &name).await {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    let info: Option<serde_json::Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return ApiError::bad_request(format!("lock info is not JSON: {e}"))
                    .into_response();
            }
        }
    };
    let id = info
        .as_ref()
        .and_then(|i| i.get("ID"))
        .and_then(serde_json::Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map(str::to_owned);
    match method.as_str() {
        "LOCK" => {
            let Some(id) = id else {
                return ApiError::bad_request("LOCK needs lock info with an `ID`").into_response();
            };
            let text = String::from_utf8_lossy(&body).into_owned();
            match state.store.state_lock(&ws.id, &id, &text, &who.name).await {
                Ok(Locked::Acquired) => raw_json(StatusCode::OK, body.to_vec()),
                Ok(Locked::HeldBy(info)) => raw_json(StatusCode::LOCKED, info.into_bytes()),
                Err(e) => ApiError::internal(&e).into_response(),
            }
        }
        "UNLOCK" => {
            if info.is_some() && id.is_none() {
                return ApiError::bad_request("UNLOCK lock info has no `ID`").into_response();
            }
            match state
                .store
                .state_unlock(&ws.id, id.as_deref(), &who.name)
                .await
            {
                Ok(Unlocked::Released) => {
                    if id.is_none() {
                        eprintln!(
                            "state of workspace {:?} force-unlocked by {}",
                            ws.name, who.name
                        );
                    }
                    StatusCode::OK.into_response()
                }
                Ok(Unlocked::NotLocked) => StatusCode::OK.into_response(),
                Ok(Unlocked::HeldBy(info)) => raw_json(StatusCode::CONFLICT, info.into_bytes()),
                Err(e) => ApiError::internal(&e).into_response(),
            }
        }
        _ => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path takes LOCK and UNLOCK",
        )
        .into_response(),
    }
}

/// The fields of a Terraform state the server checks (the rest is kept as sent).
#[derive(Serialize, ToSchema)]
pub struct TerraformState {
    /// The state format: 4.
    #[schema(minimum = 4, maximum = 4)]
    pub version: i64,
    #[schema(minimum = 0)]
    pub serial: i64,
    #[schema(min_length = 1, max_length = 128)]
    pub lineage: String,
}

#[derive(Serialize, ToSchema)]
pub struct StateVersionList {
    pub versions: Vec<StateVersion>,
}

/// Every state version of the workspace, oldest first.
#[utoipa::path(get, path = "/v1/workspaces/{name}/state/versions",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = StateVersionList),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn list_versions(
    State(state): State<Shared>,
    _who: Principal,
    Path(name): Path<String>,
) -> Response {
    let ws = match workspace(&state, &name).await {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    match state.store.state_versions(&ws.id).await {
        Ok(versions) => ok_json(StatusCode::OK, &StateVersionList { versions }),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// One state version's bytes.
#[utoipa::path(get, path = "/v1/workspaces/{name}/state/versions/{version}",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("version" = i64, Path, description = "the version number"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, description = "the state (Terraform's JSON)", content_type = "application/json"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get_version(
    State(state): State<Shared>,
    _who: Principal,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let Ok(version) = version.parse::<i64>() else {
        return ApiError::bad_request("the version is a whole number").into_response();
    };
    let ws = match workspace(&state, &name).await {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    match state.store.state_version(&ws.id, version).await {
        Ok(Some(body)) => raw_json(StatusCode::OK, body),
        Ok(None) => ApiError::not_found(format!("no state version {version}")).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Rolls the workspace's state back to an earlier version: its content
/// becomes the newest version (serial moved past the current one), nothing
/// is overwritten. Refused while the state is locked.
#[utoipa::path(post, path = "/v1/workspaces/{name}/state/versions/{version}/restore",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("version" = i64, Path, description = "the version to restore"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 201, body = StateVersion),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ))]
pub async fn restore_version(
    State(state): State<Shared>,
    who: Principal,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let Ok(version) = version.parse::<i64>() else {
        return ApiError::bad_request("the version is a whole number").into_response();
    };
    let ws = match workspace(&state, &name).await {
        Ok(ws) => ws,
        Err(r) => return r,
    };
    match state.store.state_restore(&ws.id, version, &who.name).await {
        Ok(Ok(stored)) => ok_json(StatusCode::CREATED, &stored),
        Ok(Err(e @ RestoreRefused::NoSuchVersion(_))) => {
            ApiError::not_found(e.to_string()).into_response()
        }
        Ok(Err(e)) => ApiError::conflict(e.to_string()).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}
