package platform.owner_label_test

import data.platform.owner_label

with_after(after) := {"plan": {"resource_changes": [{
	"address": "aws_s3_bucket.logs",
	"mode": "managed",
	"type": "aws_s3_bucket",
	"change": {"actions": ["create"], "before": null, "after": after},
}]}}

test_flags_tags_without_owner if {
	findings := owner_label.deny_missing_owner with input as with_after({"tags": {"env": "prod"}})
	count(findings) == 1
	some f in findings
	f.address == "aws_s3_bucket.logs"
}

test_accepts_owner_tag if {
	findings := owner_label.deny_missing_owner with input as with_after({"tags": {"owner": "checkout"}})
	count(findings) == 0
}

test_accepts_team_label if {
	findings := owner_label.deny_missing_owner with input as with_after({"labels": {"team": "checkout"}})
	count(findings) == 0
}

test_ignores_resources_without_labels if {
	findings := owner_label.deny_missing_owner with input as with_after({"name": "x"})
	count(findings) == 0
}

test_accepts_catalog_owner_team if {
	findings := owner_label.deny_missing_owner with input as {
		"plan": {"resource_changes": [{
			"address": "platform_postgres_database.orders",
			"mode": "managed",
			"type": "platform_postgres_database",
			"change": {"actions": ["update"], "before": {}, "after": {"labels": {}}},
		}]},
		"catalog": {"resources": [{"address": "platform_postgres_database.orders", "owner_team": "checkout"}]},
	}
	count(findings) == 0
}

test_flags_platform_resource_without_any_owner if {
	findings := owner_label.deny_missing_owner with input as {
		"plan": {"resource_changes": [{
			"address": "platform_postgres_database.orders",
			"mode": "managed",
			"type": "platform_postgres_database",
			"change": {"actions": ["create"], "before": null, "after": {"labels": {}}},
		}]},
		"catalog": {"resources": [{"address": "platform_postgres_database.orders", "owner_team": ""}]},
	}
	count(findings) == 1
}
