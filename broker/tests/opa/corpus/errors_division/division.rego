package platform.errors.division

import rego.v1

deny_divide contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_ebs_volume"
	ratio := rc.change.after.size / (rc.change.after.size - rc.change.after.size)
	msg := sprintf("%v", [ratio])
}
