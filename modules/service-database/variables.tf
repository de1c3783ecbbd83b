variable "name" {
  description = "Database name; also prefixes every role (<name>_owner, <name>_rw, <name>_ro). The catalog's pattern: ^[a-z][a-z0-9_]{2,40}$."
  type        = string
}

variable "tier" {
  description = "Tier of the postgres_database offering: \"small\" ($25/month) or \"standard\" ($140/month, needs an approval)."
  type        = string
  default     = "small"
}

variable "team" {
  description = "Owning team recorded on every resource; null takes the provider's default_team."
  type        = string
  default     = null
}

variable "schema" {
  description = "The application schema the read-write and read-only roles are granted on."
  type        = string
  default     = "app"
}

variable "extensions" {
  description = "PostgreSQL extensions to enable (the catalog allows pgcrypto, citext, pg_trgm)."
  type        = set(string)
  default     = []
}

variable "owner_connection_limit" {
  description = "Maximum concurrent connections of the owner role."
  type        = number
  default     = 20
}

variable "read_write_connection_limit" {
  description = "Maximum concurrent connections of the read-write role."
  type        = number
  default     = 10
}

variable "read_only_connection_limit" {
  description = "Maximum concurrent connections of the read-only role."
  type        = number
  default     = 10
}

variable "read_write_runs_migrations" {
  description = "Make the read-write role a member of the schema's owner role, so migrations can SET ROLE to it and the tables they create are granted to both roles automatically."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels recorded on every resource (e.g. service, owner)."
  type        = map(string)
  default     = {}
}
