# Primitive inputs the catalog's own guardrails let through but a driver
# refuses: a name templated past PostgreSQL's 63 bytes, a fractional
# connection limit. The provider catches them at plan
# (acceptance/validation.rs, provider engine tests).

catalog {
  provider_prefix = "platform"
}

offering "derived_roles" {
  title       = "Derived roles"
  description = "A group role and a login role, both named after the input."
  owner {
    team    = "qa"
    contact = "#qa"
  }

  version "1.0.0" {
    status = "current"

    input "name" {
      type        = string
      description = "Login role name; the group role is <name>_owner."
      on_change   = "replace"
    }
    input "limit" {
      type        = number
      description = "Connection limit of the group role."
      default     = -1
      on_change   = "update"
    }

    tier "free" {
      price {
        amount = 0
        unit   = "month"
      }
      values = { group_login = false }
    }

    compose {
      primitive "owner" {
        driver = "postgres.role"
        inputs = {
          name             = "${input.name}_owner"
          login            = tier.values.group_login
          connection_limit = input.limit
        }
      }
      primitive "app" {
        driver = "postgres.role"
        inputs = {
          name      = input.name
          login     = true
          member_of = [primitive.owner.outputs.name]
        }
      }
    }

    output "role" {
      description = "Name of the login role."
      value       = primitive.app.outputs.name
    }
  }
}
