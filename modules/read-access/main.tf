# Read-only access for a consumer (analytics, support tooling, a reporting
# service) to schemas other teams own: one read-only login role per source.
# Read-only by construction: `access` is fixed to "read".

resource "platform_postgres_access" "source" {
  for_each = var.sources

  database         = each.value.database
  schema           = each.value.schema
  name             = "${var.consumer}_${each.value.schema}_ro"
  access           = "read"
  connection_limit = var.connection_limit
  team             = var.team
  labels           = merge(var.labels, { module = "read-access", consumer = var.consumer })
}
