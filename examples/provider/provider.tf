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
  # PGPASSWORD, PGDATABASE, PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY);
  # keep the password there.
  postgres {
    host     = "127.0.0.1"
    port     = 5432
    username = "platform" # needs CREATEROLE and CREATEDB

    # TLS as libpq's sslmode (default prefer). verify-full checks the server's
    # certificate chain (sslrootcert, else the system's roots) and host name,
    # once already when the provider is configured.
    # sslmode     = "verify-full"
    # sslrootcert = "/etc/ssl/pg/root.crt"

    # Roles join, and grants name or are made on, only what the platform
    # created or imported; these allowlist existing ones it did not (empty by
    # default). Superusers, pg_* roles, this provider's own role and roles
    # with CREATEROLE, REPLICATION or BYPASSRLS are refused regardless.
    # grantable_roles   = ["reporting"]
    # grantable_schemas = ["orders.app"] # database.schema
  }
}
