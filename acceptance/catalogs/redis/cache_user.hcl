# Test catalog for the Redis driver under real Terraform (acceptance/redis.rs):
# an ACL user for one service, its keys under "<name>:" and read access to
# "shared:".

offering "cache_user" {
  title = "Redis ACL user"
  owner {
    team = "platform"
  }

  version "1.0.0" {
    status = "current"

    input "name" {
      type      = string
      pattern   = "^[a-z][a-z0-9_]{2,40}$"
      on_change = "replace"
    }
    # Passed straight to the primitive, so a change made behind Terraform's
    # back folds into this attribute and shows in plan.
    input "commands" {
      type      = list(string)
      default   = ["+@read", "+@write", "+@connection"]
      on_change = "update"
    }

    tier "standard" {
      price {
        amount = 3
        unit   = "month"
      }
    }

    compose {
      primitive "user" {
        driver = "redis.acl_user"
        inputs = {
          name      = input.name
          keys      = ["${input.name}:*"]
          read_keys = ["shared:*"]
          commands  = input.commands
        }
      }
    }

    output "username" {
      value = primitive.user.outputs.name
    }
    output "password" {
      value     = primitive.user.outputs.password
      sensitive = true
    }
  }
}
