package platform.plain.databases

tier_rank := {"small": 1, "standard": 2, "large": 3, "premium": 4}

deny_premium_outside_production contains msg if {
	input.run.workspace.environment != "production"
	some rc in input.plan.resource_changes
	rc.type == "platform_postgres_database"
	tier_rank[rc.change.after.tier] >= 4
	msg := sprintf("%s: tier %s is for production only", [rc.address, rc.change.after.tier])
}

deny_tier_downgrade contains {"address": rc.address, "message": msg} if {
	some rc in input.plan.resource_changes
	rc.type == "platform_postgres_database"
	rc.change.actions == ["update"]
	tier_rank[rc.change.after.tier] < tier_rank[rc.change.before.tier]
	msg := sprintf("tier would go from %s down to %s", [rc.change.before.tier, rc.change.after.tier])
}

warn_connection_limit contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "platform_postgres_database"
	limit := rc.change.after.connection_limit
	limit > 100
	msg := sprintf("%s: connection limit %d", [rc.address, limit])
}

deny_missing_team contains msg if {
	some rc in input.plan.resource_changes
	startswith(rc.type, "platform_")
	"create" in rc.change.actions
	object.get(rc.change.after, "team", "") == ""
	msg := sprintf("%s has no team", [rc.address])
}
