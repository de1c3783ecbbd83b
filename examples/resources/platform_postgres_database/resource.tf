# A PostgreSQL database with its own owner role (orders_owner), on the
# environment's shared cluster. The owner role's connection URI, password
# included, is the sensitive `connection_uri` attribute.
resource "platform_postgres_database" "example" {
  name             = "orders"
  tier             = "small"
  team             = "checkout"
  connection_limit = 20
  extensions       = ["pgcrypto"]

  labels = {
    service = "orders-api"
  }
}
