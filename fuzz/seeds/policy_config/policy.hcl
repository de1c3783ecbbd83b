# Policy configuration for `platform-broker plan --policy examples/policies/policy.hcl`
# and `platform-broker policy test`. Paths are relative to this file.

# Wall-clock limit for one whole evaluation (all sets). Exceeding it fails closed.
timeout = "2s"

# Denies the run (exit 3).
policy_set "platform-hard" {
  path        = "hard"
  enforcement = "hard_mandatory"
  syntax      = "v1"
}

# Needs an approval (exit 4) before apply.
policy_set "platform-soft" {
  path        = "soft"
  enforcement = "soft_mandatory"
  syntax      = "v1"
}

# Reported only.
policy_set "platform-advisory" {
  path        = "advisory"
  enforcement = "advisory"
  syntax      = "v1"
}

# Exceptions waive one rule for matching resource addresses (exact, or a
# prefix ending in `*`) until their expiry date; an expired exception makes
# every run fail until it is renewed or removed.
#
# exception {
#   rule    = "deny_premium_tier"
#   address = "module.billing.platform_postgres_database.*"
#   owner   = "team-billing"
#   reason  = "FIN-123: quarter-end capacity, approved by the data platform team"
#   expires = "2026-12-31"
# }
