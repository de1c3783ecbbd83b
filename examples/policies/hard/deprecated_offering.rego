# No new instances of deprecated catalog offerings.
#
# Existing instances may stay (and be updated or destroyed); creating one,
# including through a replace, is denied.
package platform.deprecated_offering

catalog_by_address := {entry.address: entry | some entry in input.catalog.resources}

deny_deprecated_offering contains finding if {
	some rc in input.plan.resource_changes
	"create" in rc.change.actions
	entry := catalog_by_address[rc.address]
	entry.version_status == "deprecated"
	finding := {
		"address": rc.address,
		"msg": sprintf(
			"%s would create a new instance of %s version %s, which is deprecated; move to a current version",
			[rc.address, entry.offering, entry.version],
		),
	}
}
