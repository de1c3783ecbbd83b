//! Redis: ACL users (`redis.acl_user`).
//!
//! One connection per provider configuration (multiplexed, made on first
//! use) as an administrative user. Every user created carries the ownership
//! marker in-band, as a channel pattern `&__platform|managed-by=…` on the user
//! itself: only an administrator can change a user's rules, so a consumer
//! cannot forge it, and `ACL SAVE` keeps it with the user. After a change the
//! server's ACL file is saved when it has one (`CONFIG GET aclfile`).

mod acl_user;

use std::sync::Arc;

use platform_value::{Type, Value};

use super::common::percent_encode;
use super::{Backend, Configured, Connection, Driver, DriverError, Kind};
use crate::engine::Diag;
use crate::engine::schema::{AttrKind, AttrSchema, BlockSchema, Flags};

pub struct RedisBackend;

/// The backend, as [`crate::drivers::backends`] lists it.
pub static BACKEND: RedisBackend = RedisBackend;

static KINDS: &[Kind] = &[Kind {
    name: "redis.acl_user",
    inputs: acl_user::KEYS,
    makes_secrets: true,
    validate: acl_user::validate,
}];

/// The `redis { … }` section over `REDIS_URL`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `redis://HOST:PORT[/DB]` (or `rediss://`), credentials allowed in it.
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(redacted)"))
            .finish()
    }
}

/// `redis://user:***@host` for messages: never a password.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl Settings {
    pub fn from_env() -> Settings {
        Settings {
            url: std::env::var("REDIS_URL").ok().filter(|v| !v.is_empty()),
            ..Settings::default()
        }
    }

    /// The URL to connect with: `url` (default `redis://127.0.0.1:6379`) with
    /// `username`/`password` put in when set.
    fn connect_url(&self) -> String {
        let url = self
            .url
            .clone()
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        if self.username.is_none() && self.password.is_none() {
            return url;
        }
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return url;
        };
        let rest = &url[scheme_end..];
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let user = percent_encode(self.username.as_deref().unwrap_or(""), &[]);
        let auth = match &self.password {
            Some(p) => format!("{user}:{}@", percent_encode(p, &[])),
            None => format!("{user}@"),
        };
        format!("{}{auth}{host}", &url[..scheme_end])
    }
}

impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn kinds(&self) -> &'static [Kind] {
        KINDS
    }

    fn section(&self) -> BlockSchema {
        let optional = |name: &str, description: &str| {
            AttrSchema::new(
                name,
                Type::String,
                Flags::Optional,
                AttrKind::Input,
                description.to_owned(),
            )
        };
        let mut password = optional(
            "password",
            "Password of that user (else the one in url or REDIS_URL).",
        );
        password.sensitive = true;
        BlockSchema {
            description: "Connection to the Redis server the redis.* drivers provision on. Unset \
                          fields fall back to REDIS_URL."
                .into(),
            attributes: vec![
                password,
                optional(
                    "url",
                    "redis://HOST:PORT[/DB] or rediss://… (else REDIS_URL, else \
                     redis://127.0.0.1:6379).",
                ),
                optional(
                    "username",
                    "ACL user the provider connects as; it needs +@admin to manage users (else \
                     the one in url or REDIS_URL, else default).",
                ),
            ],
            blocks: Vec::new(),
        }
    }

    fn configure(&self, section: Option<&Value>) -> (Arc<dyn Configured>, Vec<Diag>) {
        let string = |name: &str| match section.and_then(|b| b.get_attr(name)) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let env = Settings::from_env();
        let settings = Settings {
            url: string("url").or(env.url),
            username: string("username"),
            password: string("password"),
        };
        let mut diags = Vec::new();
        if let Some(url) = &settings.url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            diags.push(
                Diag::error(
                    "Invalid Redis URL",
                    format!(
                        "{} does not start with redis:// or rediss://.",
                        redact_url(url)
                    ),
                )
                .at(platform_value::Path::root().attr("redis").attr("url")),
            );
        }
        (Arc::new(settings), diags)
    }
}

#[async_trait::async_trait]
impl Configured for Settings {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn same(&self, other: &dyn Configured) -> bool {
        other.as_any().downcast_ref::<Settings>() == Some(self)
    }

    fn connect(&self) -> Arc<dyn Connection> {
        Arc::new(Redis::new(self.clone()))
    }
}

/// The Redis backend of one provider configuration.
pub struct Redis {
    inner: Arc<Conn>,
}

/// The connection, made on first use and shared by the drivers.
pub struct Conn {
    settings: Settings,
    conn: tokio::sync::OnceCell<redis::aio::MultiplexedConnection>,
}

impl Conn {
    async fn get(&self) -> Result<redis::aio::MultiplexedConnection, DriverError> {
        self.conn
            .get_or_try_init(|| async {
                let client = redis::Client::open(self.settings.connect_url()).map_err(|e| {
                    DriverError::new(format!("redis: bad connection settings: {}", message(&e)))
                })?;
                client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| {
                        DriverError::new(format!(
                            "redis: cannot connect to {}: {}",
                            redact_url(
                                self.settings
                                    .url
                                    .as_deref()
                                    .unwrap_or("redis://127.0.0.1:6379")
                            ),
                            message(&e)
                        ))
                    })
            })
            .await
            .cloned()
    }
}

/// A Redis error in words (never the connection URL, which may hold a
/// password).
fn message(error: &redis::RedisError) -> String {
    let text = error.to_string();
    match text.find("redis://").or_else(|| text.find("rediss://")) {
        Some(i) => format!("{} (connection details withheld)", text[..i].trim_end()),
        None => text,
    }
}

impl Redis {
    /// Does not connect: the connection is made on first use.
    pub fn new(settings: Settings) -> Redis {
        Redis {
            inner: Arc::new(Conn {
                settings,
                conn: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// One driver per kind of [`KINDS`].
    pub fn drivers(&self) -> Vec<(&'static str, Arc<dyn Driver>)> {
        vec![(
            "redis.acl_user",
            Arc::new(acl_user::AclUser::new(self.inner.clone())) as Arc<dyn Driver>,
        )]
    }
}

#[async_trait::async_trait]
impl Connection for Redis {
    fn drivers(&self) -> Vec<(&'static str, Arc<dyn Driver>)> {
        Redis::drivers(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_credentials_and_messages_do_not() {
        let s = Settings {
            url: Some("redis://old:pw@127.0.0.1:6380/2".into()),
            username: Some("admin".into()),
            password: Some("p@ss word".into()),
        };
        assert_eq!(
            s.connect_url(),
            "redis://admin:p%40ss%20word@127.0.0.1:6380/2"
        );
        assert_eq!(
            redact_url("redis://admin:secret@127.0.0.1:6380"),
            "redis://admin:***@127.0.0.1:6380"
        );
        assert!(!format!("{s:?}").contains("p@ss"));
        assert!(!format!("{s:?}").contains(":pw@"));
    }
}
