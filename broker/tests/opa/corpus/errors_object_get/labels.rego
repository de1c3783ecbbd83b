package platform.errors.objectget

import rego.v1

# A common mistake: object.get on `after`, which is null for a deleted
# resource. OPA (strict builtin errors) fails; so must the broker.
deny_unlabelled contains msg if {
	some rc in input.plan.resource_changes
	startswith(rc.type, "google_")
	count(object.get(rc.change.after, "labels", {})) == 0
	msg := sprintf("%s has no labels", [rc.address])
}
