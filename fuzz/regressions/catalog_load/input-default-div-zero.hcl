# The example catalog. It is also compiled into the provider as its default catalog, used
# when PLATFORM_CATALOG is not set.

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
    status = "current"

    input "name" {
      type        = string
      description = "Database name; also prefixes its roles."
      pattern     = "^[a-z][a-z0-9_]{2,40}$"
      on_change   = "replace"
    }
    input "connection_limit" {
      type        = number
      description = "Maximum concurrent connections of the owner role."
      default     = 1/0
      min         = 1
      max         = 500
      on_change   = "update"
    }
    input "extensions" {
      type        = set(string)
      description = "PostgreSQL extensions to enable in the database."
      default     = []
      enum        = ["pgcrypto", "citext", "pg_trgm"]
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
          database         = input.name
        }
      }
      primitive "db" {
        driver = "postgres.database"
        inputs = {
          name             = input.name
          owner            = primitive.owner.outputs.name
          connection_limit = tier.values.max_connections
          extensions       = input.extensions
        }
      }
    }

    output "connection_uri" {
      description = "Connection URI of the owner role, password included."
      value       = primitive.owner.outputs.uri
      sensitive   = true
    }
    output "owner_role" {
      description = "Name of the role that owns the database."
      value       = primitive.owner.outputs.name
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

offering "postgres_schema" {
  title       = "PostgreSQL tenant schema"
  description = "A schema in a shared database, with its own owner role and read grants."
  owner {
    team    = "data-platform"
    contact = "#data-platform"
  }

  version "1.0.0" {
    status = "current"

    input "database" {
      type        = string
      description = "The shared database the schema lives in."
      pattern     = "^[a-z][a-z0-9_]{2,40}$"
      on_change   = "reject"
    }
    input "name" {
      type        = string
      description = "Schema name; also prefixes its owner role."
      pattern     = "^[a-z][a-z0-9_]{2,40}$"
      on_change   = "replace"
    }
    input "readers" {
      type        = list(string)
      description = "Existing roles granted read access to the schema."
      default     = []
      pattern     = "^[a-z][a-z0-9_]*$"
    }

    tier "shared" {
      price {
        amount = 5
        unit   = "month"
      }
    }

    compose {
      primitive "owner" {
        driver = "postgres.role"
        inputs = {
          name  = "${input.database}_${input.name}_owner"
          login = false
        }
      }
      primitive "schema" {
        driver = "postgres.schema"
        inputs = {
          database = input.database
          name     = input.name
          owner    = primitive.owner.outputs.name
        }
      }
      primitive "readers" {
        driver = "postgres.grant"
        inputs = {
          database   = input.database
          schema     = primitive.schema.outputs.name
          roles      = input.readers
          privileges = ["USAGE", "SELECT"]
        }
      }
    }

    output "owner_role" {
      description = "Name of the role that owns the schema."
      value       = primitive.owner.outputs.name
    }
  }
}

offering "postgres_access" {
  title       = "PostgreSQL schema access"
  description = "A login role with read or read-write access to one schema's tables, now and later."
  owner {
    team    = "data-platform"
    contact = "#data-platform"
  }

  version "1.0.0" {
    status = "current"

    input "database" {
      type        = string
      description = "The database the schema lives in; also prefixes the role's name."
      pattern     = "^[a-z][a-z0-9_]{2,40}$"
      on_change   = "reject"
    }
    input "schema" {
      type        = string
      description = "The schema to grant access to (it must exist)."
      pattern     = "^[a-z][a-z0-9_]{2,40}$"
      on_change   = "replace"
    }
    input "name" {
      type        = string
      description = "Role name suffix: the role is <database>_<name>."
      pattern     = "^[a-z][a-z0-9_]{1,30}$"
      on_change   = "replace"
    }
    input "access" {
      type        = string
      description = "\"read\" (USAGE, SELECT) or \"write\" (read plus INSERT, UPDATE, DELETE)."
      default     = "read"
      enum        = ["read", "write"]
      on_change   = "update"
    }
    input "connection_limit" {
      type        = number
      description = "Maximum concurrent connections of the role."
      default     = 10
      min         = 1
      max         = 200
      on_change   = "update"
    }
    input "member_of" {
      type        = list(string)
      description = "Existing group roles the role joins, e.g. a schema's owner role so migrations can SET ROLE to it."
      default     = []
      pattern     = "^[a-z][a-z0-9_]*$"
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
          name             = "${input.database}_${input.name}"
          login            = true
          connection_limit = input.connection_limit
          member_of        = input.member_of
          database         = input.database
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
    output "connection_uri" {
      description = "Connection URI of the role, password included."
      value       = primitive.role.outputs.uri
      sensitive   = true
    }
  }
}
