package platform.deprecated_offering_test

import data.platform.deprecated_offering

catalog(status) := {"resources": [{
	"address": "platform_postgres_database.orders",
	"offering": "postgres_database",
	"version": "1.0.0",
	"version_status": status,
	"owner_team": "checkout",
	"tier": "small",
	"requires_approval": false,
}]}

plan(actions) := {"resource_changes": [{
	"address": "platform_postgres_database.orders",
	"mode": "managed",
	"type": "platform_postgres_database",
	"change": {"actions": actions, "before": null, "after": {}},
}]}

test_denies_create_of_deprecated if {
	findings := deprecated_offering.deny_deprecated_offering with input as {
		"plan": plan(["create"]),
		"catalog": catalog("deprecated"),
	}
	count(findings) == 1
	some f in findings
	f.address == "platform_postgres_database.orders"
	contains(f.msg, "deprecated")
}

test_denies_replace_of_deprecated if {
	findings := deprecated_offering.deny_deprecated_offering with input as {
		"plan": plan(["delete", "create"]),
		"catalog": catalog("deprecated"),
	}
	count(findings) == 1
}

test_allows_update_of_deprecated if {
	findings := deprecated_offering.deny_deprecated_offering with input as {
		"plan": plan(["update"]),
		"catalog": catalog("deprecated"),
	}
	count(findings) == 0
}

test_allows_create_of_current if {
	findings := deprecated_offering.deny_deprecated_offering with input as {
		"plan": plan(["create"]),
		"catalog": catalog("current"),
	}
	count(findings) == 0
}
