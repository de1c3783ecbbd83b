//! Workspace variables through the API: list (sensitive values never shown),
//! set, delete.

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
use crate::store::variables::Variable;

type Shared = Arc<AppState>;

#[derive(Serialize, ToSchema)]
pub struct VariableList {
    pub variables: Vec<Variable>,
}

/// A variable's new value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariable {
    /// The value Terraform gets (`-var-file`, as a string); at most 64 KiB.
    #[schema(max_length = 65536)]
    pub value: String,
    /// Write-only: never shown again, never logged or audited.
    #[serde(default)]
    pub sensitive: bool,
}

/// The workspace's variables (a sensitive one without its value).
#[utoipa::path(get, path = "/v1/workspaces/{name}/variables",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = VariableList),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn list_variables(
    State(state): State<Shared>,
    _who: Principal,
    Path(name): Path<String>,
) -> Response {
    let id = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws.id,
        Err(r) => return r,
    };
    match state.store.variables(&id).await {
        Ok(variables) => ok_json(StatusCode::OK, &VariableList { variables }),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Sets a variable for the workspace's next runs (a run already planned
/// applies with what it planned with).
#[utoipa::path(put, path = "/v1/workspaces/{name}/variables/{variable}",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("variable" = String, Path, pattern = r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$",
            description = "a Terraform variable name"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    request_body = NewVariable,
    responses(
        (status = 200, body = Variable),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn set_variable(
    State(state): State<Shared>,
    who: Principal,
    Path((name, variable)): Path<(String, String)>,
    ApiJson(new): ApiJson<NewVariable>,
) -> Response {
    let id = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws.id,
        Err(r) => return r,
    };
    match state
        .store
        .set_variable(&id, &variable, &new.value, new.sensitive, &who.name)
        .await
    {
        Ok(Ok(variable)) => ok_json(StatusCode::OK, &variable),
        Ok(Err(refused @ Refused::Invalid { .. })) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid", refused.to_string()).into_response()
        }
        Ok(Err(refused)) => ApiError::conflict(refused.to_string()).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Deletes a variable.
#[utoipa::path(delete, path = "/v1/workspaces/{name}/variables/{variable}",
    params(
        ("name" = String, Path, description = "the workspace"),
        ("variable" = String, Path, pattern = r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$",
            description = "a Terraform variable name"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn delete_variable(
    State(state): State<Shared>,
    who: Principal,
    Path((name, variable)): Path<(String, String)>,
) -> Response {
    let id = match super::state::workspace(&state, &name).await {
        Ok(ws) => ws.id,
        Err(r) => return r,
    };
    match state.store.delete_variable(&id, &variable, &who.name).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => ApiError::not_found(format!("no variable named {variable:?}")).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}
