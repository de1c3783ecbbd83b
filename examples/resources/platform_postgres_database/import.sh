# A database is imported by its name; its owner role (<name>_owner) must exist
# too. Labels cannot be read back, and the generated password is not known
# after an import (connection_uri carries none).
terraform import platform_postgres_database.example orders
