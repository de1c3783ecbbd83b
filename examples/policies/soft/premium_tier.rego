# Tiers marked requires_approval in the catalog need an approval in production.
package platform.premium_tier

# Only the entries whose tier needs an approval, keyed by address.
premium := {entry.address: entry |
	some entry in input.catalog.resources
	entry.requires_approval == true
}

deny_premium_tier contains finding if {
	input.run.workspace.environment == "production"
	some rc in input.plan.resource_changes
	entry := premium[rc.address]
	some action in rc.change.actions
	action in {"create", "update"}
	finding := {
		"address": entry.address,
		"msg": sprintf(
			"%s uses tier %s of %s, which requires an approval in production",
			[entry.address, entry.tier, entry.offering],
		),
	}
}
