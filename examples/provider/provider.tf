terraform {
  required_providers {
    platform = {
      source = "platform/platform"
    }
  }
}

# The catalog comes from PLATFORM_CATALOG (a directory of *.hcl files) or,
# when unset, the examples catalog compiled into the provider.
provider "platform" {
  # Team recorded on resources that do not set `team` themselves.
  default_team = "checkout"

  # The PostgreSQL cluster the postgres.* drivers provision on. Every field
  # falls back to its PG* environment variable (PGHOST, PGPORT, PGUSER,
  # PGPASSWORD, PGDATABASE, PGSSLMODE); keep the password there.
  postgres {
    host     = "127.0.0.1"
    port     = 5432
    username = "platform" # needs CREATEROLE and CREATEDB
  }
}
