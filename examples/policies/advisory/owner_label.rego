# Every labelled or platform resource should name its owner: an `owner` or
# `team` label/tag, or an owner_team in the catalog. Advisory: reported only.
#
# Written for large plans (see docs/policy-input.md, "Writing policies for
# large plans"): cheap tests first, helper calls only for the few resources
# that reach them.
package platform.owner_label

catalog_addresses := {entry.address | some entry in input.catalog.resources}

# Platform resources whose catalog entry names an owner team.
catalog_owned := {entry.address |
	some entry in input.catalog.resources
	entry.owner_team != ""
}

# Resources that can carry an owner: platform resources and anything with
# labels or tags.
ownable(address, _) if catalog_addresses[address]

ownable(_, after) if is_object(after.labels)

ownable(_, after) if is_object(after.tags)

deny_missing_owner contains finding if {
	some rc in input.plan.resource_changes
	rc.change.actions[_] in {"create", "update"}
	rc.mode == "managed"
	not catalog_owned[rc.address]
	after := rc.change.after
	object.get(after, ["labels", "owner"], "") == ""
	object.get(after, ["labels", "team"], "") == ""
	object.get(after, ["tags", "owner"], "") == ""
	object.get(after, ["tags", "team"], "") == ""
	ownable(rc.address, after)
	finding := {
		"address": rc.address,
		"msg": sprintf("%s has no owner: add an `owner` or `team` label", [rc.address]),
	}
}
