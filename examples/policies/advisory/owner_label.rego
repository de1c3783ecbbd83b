# Every labelled or platform resource should name its owner: an `owner` or
# `team` label/tag, or an owner_team in the catalog. Advisory: reported only.
#
# Written for large plans: the cheap tests (action, mode, a set lookup) come
# first, so the helper rules only run for the few resources that reach them.
package platform.owner_label

catalog_addresses contains entry.address if some entry in input.catalog.resources

# Platform resources whose catalog entry names an owner team.
catalog_owned contains entry.address if {
	some entry in input.catalog.resources
	entry.owner_team != ""
}

owner_keys := ["owner", "team"]

labelled(after) if {
	some group in ["labels", "tags"]
	some key in owner_keys
	object.get(after, [group, key], "") != ""
}

# Resources that can carry an owner: platform resources and anything with
# labels or tags.
ownable(address, _) if catalog_addresses[address]

ownable(_, after) if is_object(after.labels)

ownable(_, after) if is_object(after.tags)

deny_missing_owner contains finding if {
	some rc in input.plan.resource_changes
	some action in rc.change.actions
	action in {"create", "update"}
	rc.mode == "managed"
	not catalog_owned[rc.address]
	after := rc.change.after
	not labelled(after)
	ownable(rc.address, after)
	finding := {
		"address": rc.address,
		"msg": sprintf("%s has no owner: add an `owner` or `team` label", [rc.address]),
	}
}
