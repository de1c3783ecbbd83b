# No new instances of deprecated catalog offerings.
#
# Existing instances may stay (and be updated or destroyed); creating one,
# including through a replace, is denied.
package platform.deprecated_offering

# Only the (few) deprecated entries, keyed by address.
deprecated := {entry.address: entry |
	some entry in input.catalog.resources
	entry.version_status == "deprecated"
}

deny_deprecated_offering contains finding if {
	some rc in input.plan.resource_changes
	"create" in rc.change.actions
	entry := deprecated[rc.address]
	finding := {
		"address": rc.address,
		"msg": sprintf(
			"%s would create a new instance of %s version %s, which is deprecated; move to a current version",
			[rc.address, entry.offering, entry.version],
		),
	}
}
