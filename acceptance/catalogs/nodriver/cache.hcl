# Test catalog for the missing-driver path (acceptance/nodriver.rs): the offering
# composes a primitive whose driver ("redis.cache") no provider build has, so
# plan warns, and apply, destroy and import refuse without touching anything.

offering "cache" {
  title = "Redis cache"
  owner {
    team = "platform"
  }

  version "1.0.0" {
    status = "current"

    input "name" {
      type      = string
      pattern   = "^[a-z][a-z0-9_]{2,30}$"
      on_change = "replace"
    }
    input "memory_mb" {
      type      = number
      default   = 256
      min       = 64
      on_change = "update"
    }

    tier "small" {
      price {
        amount = 15
        unit   = "month"
      }
    }

    compose {
      primitive "cache" {
        driver = "redis.cache"
        inputs = {
          name      = input.name
          memory_mb = input.memory_mb
        }
      }
    }

    output "endpoint" {
      value = primitive.cache.outputs.endpoint
    }
  }
}
