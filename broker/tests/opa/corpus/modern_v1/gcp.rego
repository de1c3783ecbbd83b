package platform.modern.gcp

import rego.v1

allowed_machine_families := {"e2", "n2", "n2d"}

deny_machine_family contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "google_compute_instance"
	rc.change.actions[_] in {"create", "update"}
	family := split(rc.change.after.machine_type, "-")[0]
	not family in allowed_machine_families
	msg := sprintf("%s: machine family %s is not allowed", [rc.address, family])
}

deny_bucket_uniform_access contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "google_storage_bucket"
	rc.change.after.uniform_bucket_level_access != true
	msg := sprintf("%s: uniform bucket-level access must be on", [rc.address])
}

warn_region contains msg if {
	some rc in input.plan.resource_changes
	startswith(rc.type, "google_")
	is_object(rc.change.after)
	zone := object.get(rc.change.after, "zone", "")
	zone != ""
	not startswith(zone, "europe-")
	msg := sprintf("%s is outside Europe (%s)", [rc.address, zone])
}

deny_labels_case contains msg if {
	some rc in input.plan.resource_changes
	startswith(rc.type, "google_")
	is_object(rc.change.after)
	some key, _ in object.get(rc.change.after, "labels", {})
	not regex.match(`^[a-z][a-z0-9_-]*$`, key)
	msg := sprintf("%s: label key %s must be lower case", [rc.address, key])
}
