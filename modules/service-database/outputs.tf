output "database" {
  description = "Name of the database."
  value       = platform_postgres_database.this.name
}

output "schema" {
  description = "Name of the application schema."
  value       = platform_postgres_schema.app.name
}

output "owner_role" {
  description = "Login role that owns the database."
  value       = platform_postgres_database.this.owner_role
}

output "schema_owner_role" {
  description = "Group role (no login) that owns the application schema."
  value       = platform_postgres_schema.app.owner_role
}

output "read_write_role" {
  description = "Login role with read-write access to the schema's tables."
  value       = platform_postgres_access.read_write.role
}

output "read_only_role" {
  description = "Login role with read-only access to the schema's tables."
  value       = platform_postgres_access.read_only.role
}

output "owner_connection_uri" {
  description = "Connection URI of the owner role, password included."
  value       = platform_postgres_database.this.connection_uri
  sensitive   = true
}

output "read_write_connection_uri" {
  description = "Connection URI of the read-write role, password included."
  value       = platform_postgres_access.read_write.connection_uri
  sensitive   = true
}

output "read_only_connection_uri" {
  description = "Connection URI of the read-only role, password included."
  value       = platform_postgres_access.read_only.connection_uri
  sensitive   = true
}

output "monthly_cost" {
  description = "Monthly price of everything in the module, from the catalog."
  value = (
    platform_postgres_database.this.monthly_cost
    + platform_postgres_schema.app.monthly_cost
    + platform_postgres_access.read_write.monthly_cost
    + platform_postgres_access.read_only.monthly_cost
  )
}
