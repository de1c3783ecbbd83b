package platform.premium_tier_test

import data.platform.premium_tier

input_for(environment, requires_approval, actions) := {
	"run": {"workspace": {"name": "orders", "environment": environment, "tags": []}},
	"plan": {"resource_changes": [{
		"address": "platform_postgres_database.orders",
		"mode": "managed",
		"type": "platform_postgres_database",
		"change": {"actions": actions, "before": null, "after": {"tier": "standard"}},
	}]},
	"catalog": {"resources": [{
		"address": "platform_postgres_database.orders",
		"offering": "postgres_database",
		"version": "1.2.0",
		"version_status": "current",
		"owner_team": "checkout",
		"tier": "standard",
		"requires_approval": requires_approval,
	}]},
}

test_needs_approval_in_production if {
	findings := premium_tier.deny_premium_tier with input as input_for("production", true, ["create"])
	count(findings) == 1
	some f in findings
	f.address == "platform_postgres_database.orders"
	contains(f.msg, "standard")
}

test_no_approval_outside_production if {
	findings := premium_tier.deny_premium_tier with input as input_for("staging", true, ["create"])
	count(findings) == 0
}

test_no_approval_for_ordinary_tier if {
	findings := premium_tier.deny_premium_tier with input as input_for("production", false, ["update"])
	count(findings) == 0
}

test_no_approval_for_unchanged_resource if {
	findings := premium_tier.deny_premium_tier with input as input_for("production", true, ["no-op"])
	count(findings) == 0
}
