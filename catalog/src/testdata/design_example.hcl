catalog {
  provider_prefix = "platform" # resource types become platform_<offering>
}

offering "postgres_database" {
  title       = "PostgreSQL database"
  description = "A database with its own owner role on the environment's shared cluster."
  owner {
    team    = "data-platform"
    contact = "#data-platform"
  }

  version "1.2.0" {
    status = "current" # preview | current | deprecated | retired

    input "name" {
      type        = string
      description = "Database name; also prefixes its roles."
      pattern     = "^[a-z][a-z0-9_]{2,40}$"
      on_change   = "replace" # update (default) | replace | reject | grow_only
    }
    input "connection_limit" {
      type      = number
      default   = 20
      min       = 1
      max       = 500
      on_change = "update"
    }
    input "extensions" {
      type    = set(string)
      default = []
      enum    = ["pgcrypto", "citext", "pg_trgm"]
    }

    tier "small" {
      price {
        amount = 25
        unit   = "month"
      }
      values = { max_connections = 50 }
    }
    tier "standard" {
      price {
        amount = 140
        unit   = "month"
      }
      values            = { max_connections = 200 }
      requires_approval = true
      transitions_to    = ["small"]
    }

    compose {
      primitive "owner" {
        driver = "postgres.role"
        inputs = {
          name             = "${input.name}_owner"
          login            = true
          connection_limit = input.connection_limit
        }
      }
      primitive "db" {
        driver = "postgres.database"
        inputs = {
          name  = input.name
          owner = primitive.owner.outputs.name
        }
      }
    }

    output "connection_uri" {
      value     = primitive.owner.outputs.uri
      sensitive = true
    }
  }

  version "1.1.0" {
    status = "deprecated"
    deprecation {
      create_until = "2027-01-31"
      update_until = "2027-06-30"
      successor    = "1.2.0"
    }
  }
}
