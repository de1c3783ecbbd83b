# Every labelled or platform resource should name its owner: an `owner` or
# `team` label/tag, or an owner_team in the catalog. Advisory: reported only.
package platform.owner_label

catalog_by_address := {entry.address: entry | some entry in input.catalog.resources}

creates_or_updates(actions) if "create" in actions

creates_or_updates(actions) if "update" in actions

owner_keys := ["owner", "team"]

# Resources that can carry an owner: platform resources and anything with
# labels or tags.
ownable(rc) if catalog_by_address[rc.address]

ownable(rc) if is_object(rc.change.after.labels)

ownable(rc) if is_object(rc.change.after.tags)

has_owner(rc) if {
	some key in owner_keys
	object.get(rc.change.after, ["labels", key], "") != ""
}

has_owner(rc) if {
	some key in owner_keys
	object.get(rc.change.after, ["tags", key], "") != ""
}

has_owner(rc) if object.get(catalog_by_address, [rc.address, "owner_team"], "") != ""

deny_missing_owner contains finding if {
	some rc in input.plan.resource_changes
	rc.mode == "managed"
	creates_or_updates(rc.change.actions)
	ownable(rc)
	not has_owner(rc)
	finding := {
		"address": rc.address,
		"msg": sprintf("%s has no owner: add an `owner` or `team` label", [rc.address]),
	}
}
