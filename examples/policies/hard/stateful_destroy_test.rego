package platform.stateful_destroy_test

import data.platform.stateful_destroy

change(actions, before, after) := {
	"plan": {"resource_changes": [{
		"address": "platform_postgres_database.orders",
		"mode": "managed",
		"type": "platform_postgres_database",
		"change": {"actions": actions, "before": before, "after": after},
	}]},
	"catalog": {"resources": [{
		"address": "platform_postgres_database.orders",
		"offering": "postgres_database",
		"version": "1.2.0",
		"version_status": "current",
		"owner_team": "checkout",
		"tier": "small",
		"requires_approval": false,
	}]},
}

test_denies_destroy_without_label if {
	findings := stateful_destroy.deny_destroy_stateful with input as change(["delete"], {"labels": {}}, null)
	count(findings) == 1
	some f in findings
	contains(f.msg, "destroy")
}

test_denies_replace_without_label if {
	findings := stateful_destroy.deny_destroy_stateful with input as change(
		["delete", "create"],
		{"labels": {"allow_destroy": "false"}},
		{"labels": {}},
	)
	count(findings) == 1
	some f in findings
	contains(f.msg, "replace")
}

test_allows_destroy_with_prior_label if {
	findings := stateful_destroy.deny_destroy_stateful with input as change(["delete"], {"labels": {"allow_destroy": "true"}}, null)
	count(findings) == 0
}

test_allows_replace_with_planned_label if {
	findings := stateful_destroy.deny_destroy_stateful with input as change(
		["create", "delete"],
		{"labels": {}},
		{"labels": {"allow_destroy": "true"}},
	)
	count(findings) == 0
}

test_ignores_updates if {
	findings := stateful_destroy.deny_destroy_stateful with input as change(["update"], {"labels": {}}, {"labels": {}})
	count(findings) == 0
}

test_recognises_uncatalogued_platform_type if {
	findings := stateful_destroy.deny_destroy_stateful with input as {"plan": {"resource_changes": [{
		"address": "platform_postgres_schema.s",
		"mode": "managed",
		"type": "platform_postgres_schema",
		"change": {"actions": ["delete"], "before": {}, "after": null},
	}]}}
	count(findings) == 1
}

test_ignores_stateless_resources if {
	findings := stateful_destroy.deny_destroy_stateful with input as {"plan": {"resource_changes": [{
		"address": "aws_iam_role.r",
		"mode": "managed",
		"type": "aws_iam_role",
		"change": {"actions": ["delete"], "before": {}, "after": null},
	}]}}
	count(findings) == 0
}
