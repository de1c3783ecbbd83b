# Test catalog for the dated deprecation state machine (acceptance/lifecycle.rs).
# The schema version is 2.0.0 (no version is "current", so the highest preview wins);
# 1.0.0 and 0.9.0 declare no schema and inherit it.

offering "queue" {
  title = "Message queue"
  owner {
    team = "messaging"
  }

  version "2.0.0" {
    status = "preview"

    input "name" {
      type    = string
      pattern = "^[a-z][a-z0-9-]{2,30}$"
    }
    input "retention_hours" {
      type      = number
      default   = 24
      min       = 1
      on_change = "grow_only"
    }

    tier "basic" {
      price {
        amount = 10
        unit   = "month"
      }
    }

    output "url" {
      value = "amqp://queues/${input.name}"
    }
  }

  version "1.0.0" {
    status = "deprecated"
    deprecation {
      create_until = "2030-01-01"
      update_until = "2031-01-01"
      successor    = "2.0.0"
    }
  }

  version "0.9.0" {
    status = "retired"
    deprecation {
      successor = "2.0.0"
    }
  }
}
