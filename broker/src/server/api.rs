//! The HTTP API: routes, extractors and the OpenAPI document.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::AppState;
use super::catalog;
use super::runs;
use super::state;
use crate::http::ApiError;
use crate::store::{NewWorkspace, Refused, Source, Workspace};

/// The development-only identity header (`--insecure-dev-auth`).
pub const DEV_USER: &str = "x-platform-dev-user";

type Shared = Arc<AppState>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/openapi.json", get(openapi))
        .route(
            "/v1/workspaces",
            get(list_workspaces).post(create_workspace),
        )
        .route("/v1/workspaces/{name}", get(get_workspace))
        .route(
            "/v1/workspaces/{name}/state",
            get(state::get_state)
                .post(state::post_state)
                .layer(axum::extract::DefaultBodyLimit::max(state::MAX_STATE_BYTES)),
        )
        .route(
            "/v1/workspaces/{name}/lock",
            axum::routing::any(state::lock),
        )
        .route(
            "/v1/workspaces/{name}/runs",
            get(runs::list_runs).post(runs::queue),
        )
        .route(
            "/v1/workspaces/{name}/configurations",
            axum::routing::post(runs::upload).layer(axum::extract::DefaultBodyLimit::max(
                crate::archive::MAX_PACKED,
            )),
        )
        .route(
            "/v1/workspaces/{name}/variables",
            get(super::variables::list_variables),
        )
        .route(
            "/v1/workspaces/{name}/variables/{variable}",
            axum::routing::put(super::variables::set_variable)
                .delete(super::variables::delete_variable),
        )
        .route(
            "/v1/workspaces/{name}/drift",
            get(super::drift::drift_state),
        )
        .route(
            "/v1/workspaces/{name}/drift/schedule",
            axum::routing::put(super::drift::set_drift_schedule),
        )
        .route(
            "/v1/workspaces/{name}/drift/checks",
            axum::routing::post(super::drift::check_drift_now),
        )
        .route(
            "/v1/workspaces/{name}/drift/acks",
            axum::routing::post(super::drift::acknowledge_drift),
        )
        .route("/v1/runs/{id}", get(runs::get_run))
        .route("/v1/runs/{id}/log", get(runs::log))
        .route("/v1/runs/{id}/approve", axum::routing::post(runs::approve))
        .route("/v1/runs/{id}/discard", axum::routing::post(runs::discard))
        .route(
            "/v1/catalogs/{catalog}/offerings",
            get(catalog::list_offerings),
        )
        .route(
            "/v1/catalogs/{catalog}/offerings/{offering}",
            get(catalog::get_offering),
        )
        .route(
            "/v1/catalogs/{catalog}/offerings/{offering}/versions/{version}/schema",
            get(catalog::schema),
        )
        .route("/v1/audit/events", get(audit_events))
        .route("/v1/audit/verify", get(audit_verify))
        .route(
            "/v1/workspaces/{name}/state/versions",
            get(state::list_versions),
        )
        .route(
            "/v1/workspaces/{name}/state/versions/{version}",
            get(state::get_version),
        )
        .route(
            "/v1/workspaces/{name}/state/versions/{version}/restore",
            axum::routing::post(state::restore_version),
        )
        .fallback(|| async { ApiError::not_found("no such path") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not take that method",
            )
        })
        .with_state(state)
}

/// Who is asking: every handler that reads or changes anything takes one.
#[derive(Clone, Debug)]
pub struct Principal {
    pub name: String,
}

/// The user name of `Authorization: Basic …` (Terraform's http backend
/// sends its `username`/`password` that way).
fn basic_user(parts: &Parts) -> Option<String> {
    use base64::Engine as _;
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, _password) = text.split_once(':')?;
    Some(user.to_owned())
}

impl FromRequestParts<Shared> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        // Development auth also takes the user name of Basic credentials
        // (the password is not checked): Terraform's http backend can send
        // nothing else.
        let basic = if state.dev_auth && parts.headers.get(DEV_USER).is_none() {
            basic_user(parts).and_then(|u| HeaderValue::from_str(&u).ok())
        } else {
            None
        };
        if state.dev_auth
            && let Some(value) = parts.headers.get(DEV_USER).or(basic.as_ref())
        {
            let name = value
                .to_str()
                .ok()
                .filter(|v| {
                    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthenticated",
                        format!("{DEV_USER} must be 1-128 visible ASCII characters"),
                    )
                })?;
            return Ok(Principal {
                name: format!("dev:{name}"),
            });
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            format!("no credentials: send {DEV_USER} (the server runs with --insecure-dev-auth)"),
        ))
    }
}

/// A JSON body whose rejections use the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let status = rejection.status();
                let code = match status {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                    _ => "bad_request",
                };
                // serde's message names the field and position, not the value
                // of a string field; bodies carry no secret today.
                Err(ApiError::new(status, code, rejection.body_text()))
            }
        }
    }
}

/// The error body every failure has.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `bad_request`, `invalid`,
    /// `conflict`, `unauthenticated`, `four_eyes`, `not_lock_holder`,
    /// `state_conflict`, `method_not_allowed`, `unsupported_media_type`,
    /// `too_large`, `invalid_catalog`, `internal`.
    pub code: String,
    /// For people; never holds a secret.
    pub message: String,
    /// The `x-request-id` of the request (also in the response header).
    pub request_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// The store's schema version.
    pub schema: i64,
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceList {
    pub workspaces: Vec<Workspace>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "platform-broker control plane",
        description = "Workspaces, runs, state, the catalog and the audit trail of the \
            platform's Terraform. The state lock also takes Terraform's LOCK and UNLOCK methods on \
            /v1/workspaces/{name}/lock (outside OpenAPI's method set)."
    ),
    paths(
        health,
        list_workspaces,
        create_workspace,
        get_workspace,
        state::get_state,
        state::post_state,
        state::list_versions,
        state::get_version,
        state::restore_version,
        runs::upload,
        super::drift::drift_state,
        super::drift::set_drift_schedule,
        super::drift::check_drift_now,
        super::drift::acknowledge_drift,
        super::variables::list_variables,
        super::variables::set_variable,
        super::variables::delete_variable,
        runs::queue,
        runs::list_runs,
        runs::get_run,
        runs::approve,
        runs::discard,
        runs::log,
        catalog::list_offerings,
        catalog::get_offering,
        catalog::schema,
        audit_events,
        audit_verify
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        Health,
        Workspace,
        WorkspaceList,
        NewWorkspace,
        Source,
        state::StateVersionList,
        state::TerraformState,
        AuditEvents,
        AuditReport,
        AuditBad,
        runs::RunList,
        runs::QueueRun,
        super::drift::Schedule,
        super::drift::ScheduleState,
        super::drift::DriftState,
        super::drift::NewAck,
        crate::store::drift::DriftResult,
        crate::store::drift::DriftItem,
        crate::store::drift::DriftAck,
        super::variables::VariableList,
        super::variables::NewVariable,
        crate::store::variables::Variable,
        crate::store::configs::Configuration,
        runs::Approval,
        runs::RunLog,
        crate::store::runs::LogLine,
        crate::store::runs::Run,
        crate::store::runs::RunStatus,
        crate::store::state::StateVersion,
        catalog::OfferingList,
        catalog::OfferingInfo,
        catalog::OfferingOwner,
        catalog::VersionInfo,
        catalog::VersionStatus,
        catalog::DeprecationInfo,
        catalog::TierInfo,
        catalog::PriceInfo
    ))
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document of this API.
pub fn openapi_document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    // utoipa does not carry `deny_unknown_fields` into the variants of an
    // internally tagged enum; serde refuses unknown fields there, so say so.
    if let Some(variants) = doc
        .pointer_mut("/components/schemas/Source/oneOf")
        .and_then(serde_json::Value::as_array_mut)
    {
        for variant in variants {
            variant["additionalProperties"] = serde_json::Value::Bool(false);
        }
    }
    doc
}

async fn openapi() -> Response {
    crate::http::json(StatusCode::OK, &openapi_document())
}

pub(super) fn ok_json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(doc) => crate::http::json(status, &doc),
        Err(e) => ApiError::internal(&e.into()).into_response(),
    }
}

/// Liveness and the store it uses (no credentials needed).
#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, body = Health),
    (status = 500, body = ErrorBody),
))]
async fn health(State(state): State<Shared>) -> Response {
    match state.store.schema_version().await {
        Ok(schema) => ok_json(
            StatusCode::OK,
            &Health {
                status: "ok".into(),
                store: format!("{:?}", state.store.dialect()).to_ascii_lowercase(),
                schema,
            },
        ),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Every workspace, by name.
#[utoipa::path(get, path = "/v1/workspaces",
    params(("x-platform-dev-user" = String, Header, description = "caller (development auth)")),
    responses(
        (status = 200, body = WorkspaceList),
        (status = 401, body = ErrorBody),
    ))]
async fn list_workspaces(State(state): State<Shared>, _who: Principal) -> Response {
    match state.store.workspaces().await {
        Ok(workspaces) => ok_json(StatusCode::OK, &WorkspaceList { workspaces }),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Creates a workspace.
#[utoipa::path(post, path = "/v1/workspaces",
    params(("x-platform-dev-user" = String, Header, description = "caller (development auth)")),
    request_body = NewWorkspace,
    responses(
        (status = 201, body = Workspace, headers(("location" = String))),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
async fn create_workspace(
    State(state): State<Shared>,
    who: Principal,
    ApiJson(new): ApiJson<NewWorkspace>,
) -> Response {
    match state.store.create_workspace(&new, &who.name).await {
        Ok(Ok(workspace)) => {
            let mut response = ok_json(StatusCode::CREATED, &workspace);
            if let Ok(location) =
                HeaderValue::from_str(&format!("/v1/workspaces/{}", workspace.name))
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Ok(Err(refused @ Refused::Invalid { .. })) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid", refused.to_string()).into_response()
        }
        Ok(Err(refused @ Refused::Exists(_))) => {
            ApiError::conflict(refused.to_string()).into_response()
        }
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// One workspace.
#[utoipa::path(get, path = "/v1/workspaces/{name}",
    params(
        ("name" = String, Path, description = "the workspace's name"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = Workspace),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn get_workspace(
    State(state): State<Shared>,
    _who: Principal,
    Path(name): Path<String>,
) -> Response {
    match state.store.workspace(&name).await {
        Ok(Some(workspace)) => ok_json(StatusCode::OK, &workspace),
        Ok(None) => ApiError::not_found(format!("no workspace named {name:?}")).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditEvents {
    /// CloudEvents lines of the chain, in order (`platformseq` from 1).
    pub events: Vec<String>,
    /// Pass as `after` for the next page; absent at the end.
    pub next: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditReport {
    pub events: u64,
    /// The chain is intact (and, with the broker key, every line authenticates).
    pub ok: bool,
    pub authenticated: bool,
    /// The first event that does not hold, when `ok` is false.
    pub first_bad: Option<AuditBad>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditBad {
    pub line: usize,
    pub seq: Option<u64>,
    pub reason: String,
}

/// Refuses query parameters other than `allowed` (a typo is an error, not
/// silently a default).
pub(super) fn only_query(uri: &axum::http::Uri, allowed: &[&str]) -> Result<(), ApiError> {
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if !allowed.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter (this path takes: {})",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// A query parameter as a whole number (`None` when absent; `Err` when not).
pub(super) fn query_i64(uri: &axum::http::Uri, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return value
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{name} must be a whole number")));
        }
    }
    Ok(None)
}

/// The server's audit events, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/audit/events",
    params(
        ("after" = Option<i64>, Query, description = "return events after this seq (default 0)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "at most this many (1-1000, default 100)"),
        ("x-platform-dev-user" = String, Header, description = "caller (development auth)"),
    ),
    responses(
        (status = 200, body = AuditEvents),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
async fn audit_events(
    State(state): State<Shared>,
    _who: Principal,
    uri: axum::http::Uri,
) -> Response {
    if let Err(e) = only_query(&uri, &["after", "limit"]) {
        return e.into_response();
    }
    let after = match query_i64(&uri, "after") {
        Ok(v) => v.unwrap_or(0),
        Err(e) => return e.into_response(),
    };
    let limit = match query_i64(&uri, "limit") {
        Ok(v) => v.unwrap_or(100),
        Err(e) => return e.into_response(),
    };
    if !(1..=1000).contains(&limit) {
        return ApiError::bad_request("limit must be 1-1000").into_response();
    }
    match state.store.audit_lines(after, limit).await {
        Ok(rows) => {
            let next = (rows.len() as i64 == limit)
                .then(|| rows.last().map(|(s, _)| *s))
                .flatten();
            let events = rows.into_iter().map(|(_, line)| line).collect();
            ok_json(StatusCode::OK, &AuditEvents { events, next })
        }
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Checks the whole audit chain (with the broker key, every line's MAC).
#[utoipa::path(get, path = "/v1/audit/verify",
    params(("x-platform-dev-user" = String, Header, description = "caller (development auth)")),
    responses(
        (status = 200, body = AuditReport),
        (status = 401, body = ErrorBody),
    ))]
async fn audit_verify(State(state): State<Shared>, _who: Principal) -> Response {
    match state.store.audit_verify().await {
        Ok(report) => ok_json(
            StatusCode::OK,
            &AuditReport {
                events: report.events,
                ok: report.ok,
                authenticated: report.authenticated,
                first_bad: report.first_bad.map(|b| AuditBad {
                    line: b.line,
                    seq: b.seq,
                    reason: b.reason,
                }),
            },
        ),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}
