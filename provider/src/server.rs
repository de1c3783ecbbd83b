//! The tfplugin6 service: decode the wire (`from_proto`), call the engine,
//! encode the answer (`to_proto`). One function per RPC.
//!
//! **Invariant:** user errors travel as diagnostics inside an `Ok` response;
//! a gRPC `Status` is never returned (Terraform renders those as plugin
//! crashes).

use std::sync::{Arc, OnceLock};

use platform_value::{Path, PathStep, Type, Value};
use tonic::{Request, Response, Status};

use crate::engine::schema::{BlockSchema, Flags};
use crate::engine::{self, ApplyRequest, Diag, Engine, PlanRequest, Severity};
use crate::proto::tfplugin6 as pb;

type Reply<T> = Result<Response<T>, Status>;

pub struct ProviderService {
    engine: Arc<Engine>,
    schema: OnceLock<pb::get_provider_schema::Response>,
}

impl ProviderService {
    pub fn new(engine: Arc<Engine>) -> Self {
        ProviderService {
            engine,
            schema: OnceLock::new(),
        }
    }

    fn resource_type(&self, type_name: &str) -> Result<Type, Vec<Diag>> {
        let loaded = self.engine.loaded()?;
        loaded
            .schemas
            .resources
            .get(type_name)
            .map(|(_, schema)| schema.object_type())
            .ok_or_else(|| {
                vec![Diag::error(
                    format!("Unknown resource type {type_name}"),
                    "",
                )]
            })
    }

    fn data_type(&self, type_name: &str) -> Result<Type, Vec<Diag>> {
        let loaded = self.engine.loaded()?;
        loaded
            .schemas
            .data_sources
            .get(type_name)
            .map(BlockSchema::object_type)
            .ok_or_else(|| vec![Diag::error(format!("Unknown data source {type_name}"), "")])
    }

    fn ephemeral_type(&self, type_name: &str) -> Result<Type, Vec<Diag>> {
        let loaded = self.engine.loaded()?;
        loaded
            .schemas
            .ephemeral
            .get(type_name)
            .map(BlockSchema::object_type)
            .ok_or_else(|| vec![no_ephemeral(type_name)])
    }

    fn build_schema(&self) -> pb::get_provider_schema::Response {
        let mut response = pb::get_provider_schema::Response {
            provider: Some(to_proto::schema(&engine::schema::provider_schema(), 0)),
            server_capabilities: Some(pb::ServerCapabilities {
                plan_destroy: false,
                get_provider_schema_optional: true,
                move_resource_state: false,
                generate_resource_config: false,
            }),
            ..Default::default()
        };
        match self.engine.loaded() {
            Ok(loaded) => {
                for (type_name, (_, schema)) in &loaded.schemas.resources {
                    response
                        .resource_schemas
                        .insert(type_name.clone(), to_proto::schema(schema, 0));
                }
                for (type_name, schema) in &loaded.schemas.data_sources {
                    response
                        .data_source_schemas
                        .insert(type_name.clone(), to_proto::schema(schema, 0));
                }
                // Terraform < 1.10 skips this field: the resources are absent there.
                for (type_name, schema) in &loaded.schemas.ephemeral {
                    response
                        .ephemeral_resource_schemas
                        .insert(type_name.clone(), to_proto::schema(schema, 0));
                }
            }
            Err(diags) => response.diagnostics = to_proto::diagnostics(&diags),
        }
        response
    }
}

pub mod from_proto {
    use super::*;

    /// Decodes a DynamicValue; absent or empty means null (Terraform's rule).
    pub fn value(dv: Option<&pb::DynamicValue>, ty: &Type) -> Result<Value, Diag> {
        let result = match dv {
            Some(dv) if !dv.msgpack.is_empty() => platform_value::msgpack::decode(&dv.msgpack, ty),
            Some(dv) if !dv.json.is_empty() => platform_value::json::decode(&dv.json, ty),
            _ => return Ok(Value::Null),
        };
        result.map_err(|error| Diag::error("Invalid value from Terraform", error.to_string()))
    }
}

pub mod to_proto {
    use super::*;

    pub fn value(value: &Value, ty: &Type) -> Result<pb::DynamicValue, Diag> {
        platform_value::msgpack::encode(value, ty)
            .map(|msgpack| pb::DynamicValue {
                msgpack,
                json: Vec::new(),
            })
            .map_err(|error| Diag::error("Internal error encoding a value", error.to_string()))
    }

    pub fn path(path: &Path) -> pb::AttributePath {
        use pb::attribute_path::step::Selector;
        pb::AttributePath {
            steps: path
                .0
                .iter()
                .map(|step| pb::attribute_path::Step {
                    selector: Some(match step {
                        PathStep::Attr(name) => Selector::AttributeName(name.clone()),
                        PathStep::Key(key) => Selector::ElementKeyString(key.clone()),
                        PathStep::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }

    pub fn diagnostics(diags: &[Diag]) -> Vec<pb::Diagnostic> {
        diags
            .iter()
            .map(|d| pb::Diagnostic {
                severity: match d.severity {
                    Severity::Error => pb::diagnostic::Severity::Error,
                    Severity::Warning => pb::diagnostic::Severity::Warning,
                } as i32,
                summary: d.summary.clone(),
                detail: d.detail.clone(),
                attribute: d.path.as_ref().filter(|p| !p.0.is_empty()).map(path),
            })
            .collect()
    }

    pub fn schema(block: &BlockSchema, version: i64) -> pb::Schema {
        pb::Schema {
            version,
            block: Some(self::block(block, version)),
        }
    }

    fn block(block: &BlockSchema, version: i64) -> pb::schema::Block {
        pb::schema::Block {
            version,
            attributes: block
                .attributes
                .iter()
                .map(|a| pb::schema::Attribute {
                    name: a.name.clone(),
                    r#type: a.ty.to_json().into_bytes(),
                    description: a.description.clone(),
                    description_kind: pb::StringKind::Markdown as i32,
                    required: a.flags == Flags::Required,
                    optional: matches!(a.flags, Flags::Optional | Flags::OptionalComputed),
                    computed: matches!(a.flags, Flags::Computed | Flags::OptionalComputed),
                    sensitive: a.sensitive,
                    ..Default::default()
                })
                .collect(),
            block_types: block
                .blocks
                .iter()
                .map(|(name, nested)| pb::schema::NestedBlock {
                    type_name: name.clone(),
                    // Terraform 1.0 dereferences this unconditionally.
                    block: Some(self::block(nested, 0)),
                    nesting: pb::schema::nested_block::NestingMode::Single as i32,
                    min_items: 0,
                    max_items: 0,
                })
                .collect(),
            description: block.description.clone(),
            description_kind: pb::StringKind::Markdown as i32,
            ..Default::default()
        }
    }
}

fn ok<T>(message: T) -> Reply<T> {
    Ok(Response::new(message))
}

fn error_list(diag: Diag) -> Vec<pb::Diagnostic> {
    to_proto::diagnostics(&[diag])
}

#[tonic::async_trait]
impl pb::provider_server::Provider for ProviderService {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Reply<pb::get_metadata::Response> {
        let schema = self.schema.get_or_init(|| self.build_schema());
        ok(pb::get_metadata::Response {
            server_capabilities: schema.server_capabilities,
            diagnostics: schema.diagnostics.clone(),
            resources: schema
                .resource_schemas
                .keys()
                .map(|t| pb::get_metadata::ResourceMetadata {
                    type_name: t.clone(),
                })
                .collect(),
            data_sources: schema
                .data_source_schemas
                .keys()
                .map(|t| pb::get_metadata::DataSourceMetadata {
                    type_name: t.clone(),
                })
                .collect(),
            ..Default::default()
        })
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Reply<pb::get_provider_schema::Response> {
        ok(self.schema.get_or_init(|| self.build_schema()).clone())
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> Reply<pb::validate_provider_config::Response> {
        let ty = engine::schema::provider_schema().object_type();
        let diagnostics = match from_proto::value(req.get_ref().config.as_ref(), &ty) {
            Ok(_) => Vec::new(),
            Err(diag) => error_list(diag),
        };
        ok(pb::validate_provider_config::Response { diagnostics })
    }

    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> Reply<pb::validate_resource_config::Response> {
        let req = req.get_ref();
        let diags = match self.resource_type(&req.type_name) {
            Ok(ty) => match from_proto::value(req.config.as_ref(), &ty) {
                Ok(config) => self.engine.validate_resource(&req.type_name, &config),
                Err(diag) => vec![diag],
            },
            Err(diags) => diags,
        };
        ok(pb::validate_resource_config::Response {
            diagnostics: to_proto::diagnostics(&diags),
        })
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> Reply<pb::validate_data_resource_config::Response> {
        let req = req.get_ref();
        let diags = match self.data_type(&req.type_name) {
            Ok(ty) => match from_proto::value(req.config.as_ref(), &ty) {
                Ok(config) => self.engine.validate_data_source(&req.type_name, &config),
                Err(diag) => vec![diag],
            },
            Err(diags) => diags,
        };
        ok(pb::validate_data_resource_config::Response {
            diagnostics: to_proto::diagnostics(&diags),
        })
    }

    /// Called for every instance on every walk, even at the same version:
    /// re-encode the stored JSON against the current schema.
    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> Reply<pb::upgrade_resource_state::Response> {
        let req = req.get_ref();
        let result = self.resource_type(&req.type_name).and_then(|ty| {
            let json = req
                .raw_state
                .as_ref()
                .map(|r| r.json.as_slice())
                .unwrap_or(b"null");
            if req.version > 0 {
                return Err(vec![Diag::error(
                    "Resource state written by a newer provider",
                    format!(
                        "State schema version {} is newer than this provider's (0).",
                        req.version
                    ),
                )]);
            }
            let value = platform_value::json::decode(json, &ty).map_err(|error| {
                vec![Diag::error(
                    "Cannot read the stored state",
                    error.to_string(),
                )]
            })?;
            to_proto::value(&value, &ty).map_err(|d| vec![d])
        });
        ok(match result {
            Ok(upgraded) => pb::upgrade_resource_state::Response {
                upgraded_state: Some(upgraded),
                diagnostics: Vec::new(),
            },
            Err(diags) => pb::upgrade_resource_state::Response {
                upgraded_state: None,
                diagnostics: to_proto::diagnostics(&diags),
            },
        })
    }

    async fn get_resource_identity_schemas(
        &self,
        _: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Reply<pb::get_resource_identity_schemas::Response> {
        ok(pb::get_resource_identity_schemas::Response::default())
    }

    async fn upgrade_resource_identity(
        &self,
        _: Request<pb::upgrade_resource_identity::Request>,
    ) -> Reply<pb::upgrade_resource_identity::Response> {
        ok(pb::upgrade_resource_identity::Response {
            upgraded_identity: None,
            diagnostics: error_list(Diag::error(
                "Resource identity is not supported",
                "This provider declares no identity schemas.",
            )),
        })
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> Reply<pb::configure_provider::Response> {
        let ty = engine::schema::provider_schema().object_type();
        let diags = match from_proto::value(req.get_ref().config.as_ref(), &ty) {
            Ok(config) => self.engine.configure_and_probe(&config).await,
            Err(diag) => vec![diag],
        };
        ok(pb::configure_provider::Response {
            diagnostics: to_proto::diagnostics(&diags),
        })
    }

    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> Reply<pb::read_resource::Response> {
        let req = req.get_ref();
        let ty = match self.resource_type(&req.type_name) {
            Ok(ty) => ty,
            Err(diags) => {
                return ok(pb::read_resource::Response {
                    new_state: req.current_state.clone(),
                    private: req.private.clone(),
                    diagnostics: to_proto::diagnostics(&diags),
                    ..Default::default()
                });
            }
        };
        let result = match from_proto::value(req.current_state.as_ref(), &ty) {
            Ok(current) => {
                self.engine
                    .read_resource(&req.type_name, &current, &req.private)
                    .await
            }
            Err(diag) => Err(vec![diag]),
        };
        let result = result.and_then(|(state, private)| {
            Ok((to_proto::value(&state, &ty).map_err(|d| vec![d])?, private))
        });
        ok(match result {
            Ok((new_state, private)) => pb::read_resource::Response {
                new_state: Some(new_state),
                private,
                ..Default::default()
            },
            Err(diags) => pb::read_resource::Response {
                new_state: req.current_state.clone(),
                private: req.private.clone(),
                diagnostics: to_proto::diagnostics(&diags),
                ..Default::default()
            },
        })
    }

    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> Reply<pb::plan_resource_change::Response> {
        let req = req.get_ref();
        let ty = match self.resource_type(&req.type_name) {
            Ok(ty) => ty,
            Err(diags) => {
                return ok(pb::plan_resource_change::Response {
                    diagnostics: to_proto::diagnostics(&diags),
                    ..Default::default()
                });
            }
        };
        let decoded = (|| {
            Ok::<_, Diag>(PlanRequest {
                type_name: req.type_name.clone(),
                prior: from_proto::value(req.prior_state.as_ref(), &ty)?,
                proposed: from_proto::value(req.proposed_new_state.as_ref(), &ty)?,
                config: from_proto::value(req.config.as_ref(), &ty)?,
                prior_private: req.prior_private.clone(),
            })
        })();
        let plan = match decoded {
            Ok(plan) => plan,
            Err(diag) => {
                return ok(pb::plan_resource_change::Response {
                    planned_state: req.proposed_new_state.clone(),
                    diagnostics: error_list(diag),
                    ..Default::default()
                });
            }
        };
        let mut planned = self.engine.plan_resource(&plan);
        let planned_state = match to_proto::value(&planned.planned, &ty) {
            Ok(v) => Some(v),
            Err(diag) => {
                planned.diags.push(diag);
                req.proposed_new_state.clone()
            }
        };
        ok(pb::plan_resource_change::Response {
            planned_state,
            requires_replace: planned
                .requires_replace
                .iter()
                .map(to_proto::path)
                .collect(),
            planned_private: planned.private,
            diagnostics: to_proto::diagnostics(&planned.diags),
            ..Default::default()
        })
    }

    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> Reply<pb::apply_resource_change::Response> {
        let req = req.get_ref();
        let ty = match self.resource_type(&req.type_name) {
            Ok(ty) => ty,
            Err(diags) => {
                return ok(pb::apply_resource_change::Response {
                    new_state: req.prior_state.clone(),
                    diagnostics: to_proto::diagnostics(&diags),
                    ..Default::default()
                });
            }
        };
        let decoded = (|| {
            Ok::<_, Diag>(ApplyRequest {
                type_name: req.type_name.clone(),
                prior: from_proto::value(req.prior_state.as_ref(), &ty)?,
                planned: from_proto::value(req.planned_state.as_ref(), &ty)?,
                planned_private: req.planned_private.clone(),
            })
        })();
        let apply = match decoded {
            Ok(apply) => apply,
            Err(diag) => {
                return ok(pb::apply_resource_change::Response {
                    new_state: req.prior_state.clone(),
                    diagnostics: error_list(diag),
                    ..Default::default()
                });
            }
        };
        let mut applied = self.engine.apply_resource(&apply).await;
        let new_state = match to_proto::value(&applied.new_state, &ty) {
            Ok(v) => Some(v),
            Err(diag) => {
                applied.diags.push(diag);
                req.prior_state.clone()
            }
        };
        ok(pb::apply_resource_change::Response {
            new_state,
            private: applied.private,
            diagnostics: to_proto::diagnostics(&applied.diags),
            ..Default::default()
        })
    }

    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> Reply<pb::import_resource_state::Response> {
        let req = req.get_ref();
        let result = match self.resource_type(&req.type_name) {
            Ok(ty) => match self.engine.import_resource(&req.type_name, &req.id).await {
                Ok(imported) => to_proto::value(&imported.state, &ty)
                    .map(|state| (state, imported.private, imported.diags))
                    .map_err(|d| vec![d]),
                Err(diags) => Err(diags),
            },
            Err(diags) => Err(diags),
        };
        ok(match result {
            Ok((state, private, warnings)) => pb::import_resource_state::Response {
                imported_resources: vec![pb::import_resource_state::ImportedResource {
                    type_name: req.type_name.clone(),
                    state: Some(state),
                    private,
                    identity: None,
                }],
                diagnostics: to_proto::diagnostics(&warnings),
                ..Default::default()
            },
            Err(diags) => pb::import_resource_state::Response {
                diagnostics: to_proto::diagnostics(&diags),
                ..Default::default()
            },
        })
    }

    async fn move_resource_state(
        &self,
        _: Request<pb::move_resource_state::Request>,
    ) -> Reply<pb::move_resource_state::Response> {
        ok(pb::move_resource_state::Response {
            diagnostics: error_list(Diag::error(
                "Moving resources between types is not supported",
                "Platform resources can be moved between addresses, not between offerings.",
            )),
            ..Default::default()
        })
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> Reply<pb::read_data_source::Response> {
        let req = req.get_ref();
        let result = self.data_type(&req.type_name).and_then(|ty| {
            let config = from_proto::value(req.config.as_ref(), &ty).map_err(|d| vec![d])?;
            let state = self.engine.read_data_source(&req.type_name, &config)?;
            to_proto::value(&state, &ty).map_err(|d| vec![d])
        });
        ok(match result {
            Ok(state) => pb::read_data_source::Response {
                state: Some(state),
                ..Default::default()
            },
            Err(diags) => pb::read_data_source::Response {
                diagnostics: to_proto::diagnostics(&diags),
                ..Default::default()
            },
        })
    }

    async fn validate_ephemeral_resource_config(
        &self,
        req: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Reply<pb::validate_ephemeral_resource_config::Response> {
        let req = req.get_ref();
        let diags = match self.ephemeral_type(&req.type_name) {
            Ok(ty) => match from_proto::value(req.config.as_ref(), &ty) {
                Ok(config) => self.engine.validate_ephemeral(&req.type_name, &config),
                Err(diag) => vec![diag],
            },
            Err(diags) => diags,
        };
        ok(pb::validate_ephemeral_resource_config::Response {
            diagnostics: to_proto::diagnostics(&diags),
        })
    }

    async fn open_ephemeral_resource(
        &self,
        req: Request<pb::open_ephemeral_resource::Request>,
    ) -> Reply<pb::open_ephemeral_resource::Response> {
        let req = req.get_ref();
        let result = match self.ephemeral_type(&req.type_name) {
            Ok(ty) => match from_proto::value(req.config.as_ref(), &ty) {
                Ok(config) => match self.engine.open_ephemeral(&req.type_name, &config).await {
                    Ok(opened) => to_proto::value(&opened.result, &ty)
                        .map(|result| (result, opened.private))
                        .map_err(|d| vec![d]),
                    Err(diags) => Err(diags),
                },
                Err(diag) => Err(vec![diag]),
            },
            Err(diags) => Err(diags),
        };
        ok(match result {
            Ok((result, private)) => pb::open_ephemeral_resource::Response {
                result: Some(result),
                private: Some(private),
                ..Default::default()
            },
            Err(diags) => pb::open_ephemeral_resource::Response {
                diagnostics: to_proto::diagnostics(&diags),
                ..Default::default()
            },
        })
    }

    /// Credentials last their ttl; nothing to renew.
    async fn renew_ephemeral_resource(
        &self,
        req: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Reply<pb::renew_ephemeral_resource::Response> {
        ok(pb::renew_ephemeral_resource::Response {
            private: req.get_ref().private.clone(),
            ..Default::default()
        })
    }

    async fn close_ephemeral_resource(
        &self,
        req: Request<pb::close_ephemeral_resource::Request>,
    ) -> Reply<pb::close_ephemeral_resource::Response> {
        let req = req.get_ref();
        let diags = match &req.private {
            Some(private) => self.engine.close_ephemeral(&req.type_name, private).await,
            None => Vec::new(),
        };
        ok(pb::close_ephemeral_resource::Response {
            diagnostics: to_proto::diagnostics(&diags),
        })
    }

    async fn get_functions(
        &self,
        _: Request<pb::get_functions::Request>,
    ) -> Reply<pb::get_functions::Response> {
        ok(pb::get_functions::Response::default())
    }

    async fn call_function(
        &self,
        req: Request<pb::call_function::Request>,
    ) -> Reply<pb::call_function::Response> {
        ok(pb::call_function::Response {
            result: None,
            error: Some(pb::FunctionError {
                text: format!("this provider has no function {:?}", req.get_ref().name),
                function_argument: None,
            }),
        })
    }

    /// Arrives concurrently with in-flight applies (Ctrl-C). Drivers finish
    /// their current statement; there is nothing to cancel yet.
    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Reply<pb::stop_provider::Response> {
        tracing::info!("stop requested");
        ok(pb::stop_provider::Response {
            error: String::new(),
        })
    }
}

fn no_ephemeral(type_name: &str) -> Diag {
    Diag::error(
        format!("Unknown ephemeral resource type {type_name}"),
        "This provider declares no ephemeral resources.",
    )
}
