# The checkout team's tenant in the shared "tenants" database: schemas
# checkout_carts and checkout_payments, each with a read-write and a read-only
# role. The shared database itself belongs to the platform team; it is made
# here only so that the example is self-contained.

terraform {
  required_providers {
    platform = {
      source = "platform/platform"
    }
  }
}

provider "platform" {
  default_team = "data-platform"
}

resource "platform_postgres_database" "shared" {
  name = "tenants"
  tier = "small"
}

module "checkout" {
  source = "../.."

  team     = "checkout"
  database = platform_postgres_database.shared.name
  schemas  = ["carts", "payments"]
  labels = {
    cost_center = "cc-42"
  }
}

output "schemas" {
  value = module.checkout.schemas
}

output "read_write_roles" {
  value = module.checkout.read_write_roles
}

output "read_only_roles" {
  value = module.checkout.read_only_roles
}
