# Short-lived credentials for a CI job (Terraform >= 1.10): a login role that
# is a member of the database's owner role, valid for 30 minutes, dropped
# again when Terraform closes it; never stored in state or plan files.
ephemeral "platform_postgres_credentials" "ci" {
  role     = platform_postgres_database.example.owner_role
  database = platform_postgres_database.example.name
  ttl      = "30m"
}
