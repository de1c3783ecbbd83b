package platform.spacelift.plan

import rego.v1

# Spacelift-style plan policy: count what the plan does, warn or deny on it.

resource_changes := [rc | some rc in input.plan.resource_changes; rc.mode == "managed"]

created := [rc | some rc in resource_changes; rc.change.actions == ["create"]]

deleted := [rc | some rc in resource_changes; rc.change.actions == ["delete"]]

replaced := [rc | some rc in resource_changes; count(rc.change.actions) == 2]

updated := [rc | some rc in resource_changes; rc.change.actions == ["update"]]

deny_too_many_deletions contains sprintf("plan deletes %d resources (limit 10)", [count(deleted)]) if {
	count(deleted) > 10
}

warn_replacements contains msg if {
	count(replaced) > 0
	msg := sprintf("plan replaces %d resources: %s", [count(replaced), concat(", ", sort([rc.address | some rc in replaced]))])
}

warn_blast_radius contains msg if {
	total := count(created) + count(deleted) + count(replaced) + count(updated)
	total > 50
	msg := sprintf("blast radius: %d changes (%d create, %d update, %d delete, %d replace)", [total, count(created), count(updated), count(deleted), count(replaced)])
}

deny_delete_ratio contains msg if {
	changes := count(created) + count(deleted)
	changes > 0
	ratio := count(deleted) / changes
	ratio > 0.5
	msg := sprintf("more deletions than creations (%d of %d)", [count(deleted), changes])
}
