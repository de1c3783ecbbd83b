package platform.spacelift.drift

import rego.v1

warn_drift contains msg if {
	some r in input.drift.resources
	msg := sprintf("%s drifted: %s", [r.address, concat(", ", r.attributes)])
}

deny_update_attrs contains msg if {
	some rc in input.plan.resource_changes
	rc.change.actions == ["update"]
	is_object(rc.change.before)
	is_object(rc.change.after)
	changed := {k | some k, v in rc.change.after; rc.change.before[k] != v}
	changed & {"engine_version", "instance_class", "tier"} != set()
	msg := sprintf("%s changes %s", [rc.address, concat(", ", sort(changed))])
}
