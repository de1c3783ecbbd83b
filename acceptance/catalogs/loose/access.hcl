# A deliberately permissive catalog: no patterns on role or schema names, so
# the only thing between a user and an escalation is the drivers' own checks
# (acceptance/privilege.rs).

catalog {
  provider_prefix = "platform"
}

offering "loose_access" {
  title       = "Loose schema access"
  description = "postgres_access without any name patterns."
  owner {
    team    = "data-platform"
    contact = "#data-platform"
  }

  version "1.0.0" {
    status = "current"

    input "database" {
      type        = string
      description = "Database of the schema."
      on_change   = "replace"
    }
    input "schema" {
      type        = string
      description = "Schema to grant on."
      on_change   = "replace"
    }
    input "name" {
      type        = string
      description = "Role name."
      on_change   = "replace"
    }
    input "access" {
      type        = string
      description = "read or write."
      default     = "read"
      on_change   = "update"
    }
    input "member_of" {
      type        = list(string)
      description = "Any roles at all."
      default     = []
      on_change   = "update"
    }

    tier "included" {
      price {
        amount = 0
        unit   = "month"
      }
    }

    compose {
      primitive "role" {
        driver = "postgres.role"
        inputs = {
          name      = input.name
          login     = true
          member_of = input.member_of
          database  = input.database
        }
      }
      primitive "grant" {
        driver = "postgres.grant"
        inputs = {
          database   = input.database
          schema     = input.schema
          roles      = [primitive.role.outputs.name]
          privileges = input.access
        }
      }
    }

    output "role" {
      description = "Name of the login role."
      value       = primitive.role.outputs.name
    }
  }
}
