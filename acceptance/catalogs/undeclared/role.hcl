# A primitive input its driver does not declare: the catalog itself is
# refused, with the position of the key (acceptance/validation.rs).

catalog {
  provider_prefix = "platform"
}

offering "undeclared_role" {
  title       = "Undeclared role input"
  description = "A role asking for an attribute the driver never sets."
  owner {
    team    = "qa"
    contact = "#qa"
  }

  version "1.0.0" {
    status = "current"

    input "name" {
      type        = string
      description = "Role name."
      on_change   = "replace"
    }

    tier "free" {
      price {
        amount = 0
        unit   = "month"
      }
    }

    compose {
      primitive "owner" {
        driver = "postgres.role"
        inputs = {
          name      = input.name
          superuser = true
        }
      }
    }
  }
}
