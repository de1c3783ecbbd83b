output "schemas" {
  description = "The team's schemas, by the names given in `schemas`."
  value       = { for k, s in platform_postgres_schema.tenant : k => s.name }
}

output "schema_owner_roles" {
  description = "Group role (no login) owning each schema."
  value       = { for k, s in platform_postgres_schema.tenant : k => s.owner_role }
}

output "read_write_roles" {
  description = "Read-write login role of each schema."
  value       = { for k, a in platform_postgres_access.read_write : k => a.role }
}

output "read_only_roles" {
  description = "Read-only login role of each schema."
  value       = { for k, a in platform_postgres_access.read_only : k => a.role }
}

output "read_write_connection_uris" {
  description = "Connection URI (password included) of each read-write role."
  value       = { for k, a in platform_postgres_access.read_write : k => a.connection_uri }
  sensitive   = true
}

output "read_only_connection_uris" {
  description = "Connection URI (password included) of each read-only role."
  value       = { for k, a in platform_postgres_access.read_only : k => a.connection_uri }
  sensitive   = true
}

output "monthly_cost" {
  description = "Monthly price of the team's tenant, from the catalog."
  value = sum(concat(
    [0],
    [for s in platform_postgres_schema.tenant : s.monthly_cost],
    [for a in platform_postgres_access.read_write : a.monthly_cost],
    [for a in platform_postgres_access.read_only : a.monthly_cost],
  ))
}
