# A schema is imported as <database>/<schema>; its owner role
# (<database>_<schema>_owner) must exist too. Readers and labels cannot be
# read back: set them in the configuration and apply after the import.
terraform import platform_postgres_schema.example shared/tenant_a
