package platform.fmt.plain

import rego.v1

# The formatting most policies use: %s, %d, %v of strings and integers.
warn_plain contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_instance"
	msg := sprintf("%s (%s) #%d %v", [rc.address, rc.type, count(rc.change.actions), rc.name])
}
