# A team's tenant in a shared database: per schema, the schema (owned by its
# own group role), a read-write login role for the team's services (member of
# the schema's owner role, so it can SET ROLE for migrations) and a read-only
# login role; `readers` get read access to every schema.

locals {
  labels  = merge(var.labels, { module = "team-tenant", team = var.team })
  schemas = { for s in var.schemas : s => "${var.team}_${s}" }
}

resource "platform_postgres_schema" "tenant" {
  for_each = local.schemas

  database = var.database
  name     = each.value
  team     = var.team
  readers  = var.readers
  labels   = local.labels
}

resource "platform_postgres_access" "read_write" {
  for_each = local.schemas

  database         = var.database
  schema           = platform_postgres_schema.tenant[each.key].name
  name             = "${each.value}_rw"
  access           = "write"
  connection_limit = var.connection_limit
  member_of        = [platform_postgres_schema.tenant[each.key].owner_role]
  team             = var.team
  labels           = local.labels
}

resource "platform_postgres_access" "read_only" {
  for_each = local.schemas

  database         = var.database
  schema           = platform_postgres_schema.tenant[each.key].name
  name             = "${each.value}_ro"
  access           = "read"
  connection_limit = var.connection_limit
  team             = var.team
  labels           = local.labels
}
