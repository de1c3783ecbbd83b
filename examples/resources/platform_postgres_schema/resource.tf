# A tenant schema in an existing shared database, owned by its own role
# (shared_tenant_a_owner), with read access (USAGE, SELECT) for existing roles.
resource "platform_postgres_schema" "example" {
  database = "shared"
  name     = "tenant_a"
  team     = "checkout"
  readers  = ["analyst"]
}
