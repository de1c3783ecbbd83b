//! Ephemeral resources (Terraform ≥ 1.10): short-lived PostgreSQL
//! credentials that never reach the state. Older Terraform does not know the
//! schema field that declares them, so for it they simply do not exist.

use std::collections::BTreeMap;

use platform_value::{Path, Type, Value};

use super::schema::{AttrKind, AttrSchema, BlockSchema, Flags};
use super::{Diag, Engine};
use crate::drivers::postgres::credentials;

pub fn credentials_schema() -> BlockSchema {
    let attr = |name: &str, flags: Flags, sensitive: bool, description: &str| AttrSchema {
        name: name.to_owned(),
        ty: Type::String,
        flags,
        sensitive,
        description: description.to_owned(),
        kind: AttrKind::Reserved,
    };
    BlockSchema {
        description: "Short-lived PostgreSQL credentials: a login role that is a member of `role` and \
                      expires after `ttl`, created when Terraform opens it and dropped when it closes. \
                      Never stored in state (Terraform 1.10 or newer)."
            .into(),
        attributes: vec![
            attr("database", Flags::Required, false, "Database the connection URI points at."),
            attr("expires_at", Flags::Computed, false, "When PostgreSQL stops accepting the login (UTC)."),
            attr("password", Flags::Computed, true, "Generated password."),
            attr("role", Flags::Required, false, "Existing role the credentials act as, e.g. a database's `owner_role`."),
            attr("ttl", Flags::Optional, false, "Lifetime such as 30m, 1h or 2h30m (1m to 7d). Default 1h."),
            attr("uri", Flags::Computed, true, "postgres:// connection URI with the password."),
            attr("username", Flags::Computed, false, "Generated login role."),
        ],
        blocks: Vec::new(),
    }
}

fn string_attr(config: &Value, name: &str) -> Option<String> {
    match config.get_attr(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn ttl(config: &Value) -> Result<std::time::Duration, Diag> {
    let text = string_attr(config, "ttl").unwrap_or_else(|| "1h".to_owned());
    credentials::parse_ttl(&text)
        .map_err(|e| Diag::error("Invalid ttl", e).at(Path::root().attr("ttl")))
}

/// An opened credential: the result object and the private data Close needs.
pub struct Opened {
    pub result: Value,
    pub private: Vec<u8>,
}

impl Engine {
    pub fn validate_ephemeral(&self, config: &Value) -> Vec<Diag> {
        match config.get_attr("ttl") {
            Some(Value::String(_)) => ttl(config).err().into_iter().collect(),
            _ => Vec::new(),
        }
    }

    pub async fn open_ephemeral(&self, config: &Value) -> Result<Opened, Vec<Diag>> {
        let ttl = ttl(config).map_err(|d| vec![d])?;
        let (Some(role), Some(database)) =
            (string_attr(config, "role"), string_attr(config, "database"))
        else {
            return Err(vec![Diag::error(
                "role and database must be known",
                "Short-lived credentials are opened with known values only.",
            )]);
        };
        let registry = self.registry();
        let Some(postgres) = registry.postgres.as_ref() else {
            return Err(vec![Diag::error(
                "No PostgreSQL backend",
                "This build has no PostgreSQL driver.",
            )]);
        };
        let opened = credentials::open(postgres.pool(), &role, &database, ttl)
            .await
            .map_err(|e| {
                let diag = Diag::error("Cannot open PostgreSQL credentials", e.to_string());
                vec![match &e.1 {
                    Some(input) => diag.at(Path::root().attr(input)),
                    None => diag,
                }]
            })?;
        let mut attrs: BTreeMap<String, Value> = BTreeMap::new();
        attrs.insert("role".into(), Value::String(role));
        attrs.insert("database".into(), Value::String(database));
        attrs.insert(
            "ttl".into(),
            config.get_attr("ttl").cloned().unwrap_or(Value::Null),
        );
        attrs.insert("username".into(), Value::String(opened.username.clone()));
        attrs.insert("password".into(), Value::String(opened.password.clone()));
        attrs.insert("uri".into(), Value::String(opened.uri.clone()));
        attrs.insert(
            "expires_at".into(),
            Value::String(opened.expires_at.clone()),
        );
        Ok(Opened {
            result: Value::Object(attrs),
            private: serde_json::json!({ "username": opened.username })
                .to_string()
                .into_bytes(),
        })
    }

    pub async fn close_ephemeral(&self, private: &[u8]) -> Vec<Diag> {
        let username = serde_json::from_slice::<serde_json::Value>(private)
            .ok()
            .and_then(|v| {
                v.get("username")
                    .and_then(|u| u.as_str())
                    .map(str::to_owned)
            });
        let Some(username) = username else {
            return vec![Diag::error(
                "Cannot close credentials",
                "The ephemeral resource carries no role name.",
            )];
        };
        let registry = self.registry();
        let Some(postgres) = registry.postgres.as_ref() else {
            return Vec::new();
        };
        match credentials::close(postgres.pool(), &username).await {
            Ok(()) => Vec::new(),
            Err(e) => vec![Diag::error(
                "Cannot close PostgreSQL credentials",
                e.to_string(),
            )],
        }
    }
}
