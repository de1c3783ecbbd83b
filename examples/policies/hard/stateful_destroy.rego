# No destroy or replace of stateful offerings (postgres_*) unless the resource
# carries the label allow_destroy = "true" in its prior or planned labels.
package platform.stateful_destroy

stateful_offering_prefixes := ["postgres_"]

catalog_by_address := {entry.address: entry | some entry in input.catalog.resources}

# The catalog's few distinct offerings, tested once each (not once per resource).
stateful_offerings := {offering |
	some offering in {entry.offering | some entry in input.catalog.resources}
	some prefix in stateful_offering_prefixes
	startswith(offering, prefix)
}

verbs := {1: "destroy", 2: "replace"}

# The rare test ("delete" in the actions) first, so the rest only runs for
# destroys and replaces.
deny_destroy_stateful contains finding if {
	some rc in input.plan.resource_changes
	"delete" in rc.change.actions
	rc.mode == "managed"
	stateful(rc)
	not rc.change.before.labels.allow_destroy == "true"
	not rc.change.after.labels.allow_destroy == "true"
	finding := {
		"address": rc.address,
		"msg": sprintf(
			"%s would %s a stateful resource and lose its data; apply the label allow_destroy = \"true\" first",
			[rc.address, verbs[count(rc.change.actions)]],
		),
	}
}

stateful(rc) if stateful_offerings[catalog_by_address[rc.address].offering]

# Platform resources missing from input.catalog are recognised by type.
stateful(rc) if {
	not catalog_by_address[rc.address]
	some prefix in stateful_offering_prefixes
	startswith(rc.type, concat("", ["platform_", prefix]))
}
