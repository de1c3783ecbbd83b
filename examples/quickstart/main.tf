# The quickstart: a product team asks the platform for a PostgreSQL database.
# `terraform plan` shows the catalog's defaults, guardrails and monthly price.

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

resource "platform_postgres_database" "orders" {
  name = "orders"
  tier = "small"
  labels = {
    service = "orders-api"
  }
}

data "platform_offering" "postgres" {
  name = "postgres_database"
}

output "orders_monthly_cost" {
  value = platform_postgres_database.orders.monthly_cost
}

output "postgres_tier_prices" {
  value = { for tier in data.platform_offering.postgres.tiers : tier.name => tier.amount }
}
