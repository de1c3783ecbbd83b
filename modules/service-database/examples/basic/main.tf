# The orders service's database: owner, read-write and read-only roles on the
# "app" schema. The connection URIs are sensitive outputs: read them with
# `terraform output -raw read_write_connection_uri`, never in a log.

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

module "orders_db" {
  source = "../.."

  name                       = "orders"
  tier                       = "small"
  extensions                 = ["pgcrypto"]
  read_write_runs_migrations = true
  labels = {
    service = "orders-api"
  }
}

output "read_write_role" {
  value = module.orders_db.read_write_role
}

output "read_only_role" {
  value = module.orders_db.read_only_role
}

output "monthly_cost" {
  value = module.orders_db.monthly_cost
}

output "read_write_connection_uri" {
  value     = module.orders_db.read_write_connection_uri
  sensitive = true
}
