output "roles" {
  description = "The read-only login role of each source."
  value       = { for k, a in platform_postgres_access.source : k => a.role }
}

output "connection_uris" {
  description = "Connection URI (password included) of each source's role."
  value       = { for k, a in platform_postgres_access.source : k => a.connection_uri }
  sensitive   = true
}
