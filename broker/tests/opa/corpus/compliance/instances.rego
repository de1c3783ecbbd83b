package platform.compliance.instances

import rego.v1

allowed := {
	"production": ["m5.large", "m5.xlarge", "c5.large"],
	"staging": ["t3.medium", "t3.large", "m5.large"],
}

allowed_here := allowed[input.run.workspace.environment]

allowed_here := ["t3.micro", "t3.small", "t3.medium"] if not allowed[input.run.workspace.environment]

deny_instance_type contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_instance"
	t := rc.change.after.instance_type
	not t in allowed_here
	msg := sprintf("%s: %s is not one of %s", [rc.address, t, concat("/", allowed_here)])
}

size_of(t) := parts[1] if {
	parts := split(t, ".")
	count(parts) == 2
}

deny_xlarge_in_dev contains msg if {
	input.run.workspace.environment in {"default", "development"}
	some rc in input.plan.resource_changes
	rc.type == "aws_instance"
	endswith(size_of(rc.change.after.instance_type), "xlarge")
	msg := sprintf("%s: %s is too large for development", [rc.address, rc.change.after.instance_type])
}

attrs_by_address[rc.address] := object.keys(rc.change.after) if {
	some rc in input.plan.resource_changes
	rc.type == "aws_instance"
	is_object(rc.change.after)
}

warn_attr_count contains msg if {
	some addr, keys in attrs_by_address
	count(keys) < 5
	msg := sprintf("%s: only %d attributes", [addr, count(keys)])
}
