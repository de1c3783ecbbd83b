# A tenant schema in an existing shared database, owned by its own role
# (shared_tenant_a_owner), with read access (USAGE, SELECT) for existing roles:
# the platform's, or ones the provider block lists in
# postgres { grantable_roles = ["analyst"] }.
resource "platform_postgres_schema" "example" {
  database = "shared"
  name     = "tenant_a"
  team     = "checkout"
  readers  = ["analyst"]
}
