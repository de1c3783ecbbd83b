# The analytics team reads the orders service's "app" schema. The database and
# schema belong to the orders team (usually through modules/service-database);
# they are made here only so that the example is self-contained.

terraform {
  required_providers {
    platform = {
      source = "platform/platform"
    }
  }
}

provider "platform" {
  default_team = "checkout"
}

resource "platform_postgres_database" "orders_db" {
  name = "orders"
  tier = "small"
}

resource "platform_postgres_schema" "app" {
  database = platform_postgres_database.orders_db.name
  name     = "app"
}

module "analytics" {
  source = "../.."

  consumer = "analytics"
  team     = "analytics"
  sources = {
    orders = {
      database = platform_postgres_database.orders_db.name
      schema   = platform_postgres_schema.app.name
    }
  }
}

output "roles" {
  value = module.analytics.roles
}
