# The id is <database>/<schema>/<name>.
terraform import platform_postgres_access.example orders/app/reporting
