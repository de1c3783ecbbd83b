# A service's database: the database and its owner role, an application schema
# (owned by its own group role), and two login roles granted on that schema:
# read-write (SELECT, INSERT, UPDATE, DELETE) and read-only (SELECT). Grants
# also cover tables the schema's owner creates later (default privileges).

locals {
  labels = merge(var.labels, { module = "service-database" })
}

resource "platform_postgres_database" "this" {
  name             = var.name
  tier             = var.tier
  team             = var.team
  connection_limit = var.owner_connection_limit
  extensions       = var.extensions
  labels           = local.labels
}

resource "platform_postgres_schema" "app" {
  database = platform_postgres_database.this.name
  name     = var.schema
  team     = var.team
  labels   = local.labels
}

resource "platform_postgres_access" "read_write" {
  database         = platform_postgres_database.this.name
  schema           = platform_postgres_schema.app.name
  name             = "rw"
  access           = "write"
  connection_limit = var.read_write_connection_limit
  member_of        = var.read_write_runs_migrations ? [platform_postgres_schema.app.owner_role] : []
  team             = var.team
  labels           = local.labels
}

resource "platform_postgres_access" "read_only" {
  database         = platform_postgres_database.this.name
  schema           = platform_postgres_schema.app.name
  name             = "ro"
  access           = "read"
  connection_limit = var.read_only_connection_limit
  team             = var.team
  labels           = local.labels
}
