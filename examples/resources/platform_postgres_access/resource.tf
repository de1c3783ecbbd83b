# A login role (orders_reporting) with read access to the "app" schema of the
# existing database "orders": USAGE on the schema, SELECT on its tables now and
# on those its owner creates later. The role's connection URI, password
# included, is the sensitive `connection_uri` attribute. The schema must be the
# platform's (a platform_postgres_schema) or listed in the provider block's
# postgres { grantable_schemas = ["orders.app"] }.
resource "platform_postgres_access" "example" {
  database = "orders"
  schema   = "app"
  name     = "reporting"
  access   = "read"
  team     = "checkout"
}
