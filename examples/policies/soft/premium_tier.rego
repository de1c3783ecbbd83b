# Tiers marked requires_approval in the catalog need an approval in production.
package platform.premium_tier

changes_by_address := {rc.address: rc | some rc in input.plan.resource_changes}

creates_or_updates(actions) if "create" in actions

creates_or_updates(actions) if "update" in actions

deny_premium_tier contains finding if {
	input.run.workspace.environment == "production"
	some entry in input.catalog.resources
	entry.requires_approval == true
	rc := changes_by_address[entry.address]
	creates_or_updates(rc.change.actions)
	finding := {
		"address": entry.address,
		"msg": sprintf(
			"%s uses tier %s of %s, which requires an approval in production",
			[entry.address, entry.tier, entry.offering],
		),
	}
}
