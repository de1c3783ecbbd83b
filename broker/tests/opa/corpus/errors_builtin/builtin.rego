package platform.errors.builtin

import rego.v1

# Builtin errors under strict builtin errors (both OPA here and the broker).
deny_bad_number contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_instance"
	n := to_number(rc.change.after.instance_type)
	msg := sprintf("%v", [n])
}
