# platform-broker configuration: pass with --config FILE or
# PLATFORM_BROKER_CONFIG=FILE. See docs/broker-config.md.
# No secret goes in this file: AWS credentials come from the standard AWS
# chain, the webhook's HMAC secret from the environment variable it names.

cost_explorer {
  region   = "us-east-1" # Cost Explorer is served from us-east-1
  # endpoint = "http://127.0.0.1:5000"  # another endpoint (moto in tests, a proxy)
  # profile  = "billing"                # a named AWS profile; else the default chain
  team_tag = "team" # cost-allocation tag holding the owning team
  metric   = "UnblendedCost"
  timeout  = "5s" # the whole lookup; past it the budget check is skipped
}

budget "checkout" {
  monthly = 2000

  threshold {
    at          = "80%"
    enforcement = "advisory" # a warning in the report
  }
  threshold {
    at          = "100%"
    enforcement = "soft_mandatory" # needs `platform-broker approve`
  }
  threshold {
    at          = 2500 # dollars
    enforcement = "hard_mandatory" # denied (exit 3)
  }
}

budget "payments" {
  monthly = 500

  threshold {
    at          = "100%"
    enforcement = "hard_mandatory"
  }
}

audit {
  stdout = false # also print every event as a JSON line

  webhook "siem" {
    url        = "https://siem.example.com/hooks/platform-audit"
    secret_env = "PLATFORM_AUDIT_WEBHOOK_SECRET"
    # spool    = "/var/spool/platform-broker/siem"  # default: <home>/audit-spool/siem
    timeout  = "3s"
    attempts = 3
  }
}

trust {
  # The broker key authenticates run identities, approvals and the audit log.
  # It comes from PLATFORM_BROKER_KEY (a CI secret); a key file is the
  # alternative, outside the working directory:
  # key_file = "/run/secrets/platform-broker.key"
  require_key = true # refuse to run unauthenticated
}
