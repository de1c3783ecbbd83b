package platform.conftest.instances

import future.keywords.in

allowed_types = ["t3.micro", "t3.small", "t3.medium", "m5.large"]

deny_instance_type[msg] {
	some rc in input.plan.resource_changes
	rc.type == "aws_instance"
	"create" in rc.change.actions
	not rc.change.after.instance_type in allowed_types
	msg := sprintf("%s: instance type %s is not allowed", [rc.address, rc.change.after.instance_type])
}

deny_imdsv1[msg] {
	rc := input.plan.resource_changes[_]
	rc.type == "aws_instance"
	rc.change.after != null
	opts := object.get(rc.change.after, "metadata_options", [])
	not imdsv2(opts)
	msg := sprintf("%s: IMDSv2 (http_tokens = required) is not enforced", [rc.address])
}

imdsv2(opts) {
	opts[_].http_tokens == "required"
}

warn_root_volume_size[msg] {
	rc := input.plan.resource_changes[_]
	rc.type == "aws_instance"
	dev := rc.change.after.root_block_device[_]
	dev.volume_size > 100
	msg := sprintf("%s: root volume of %d GiB", [rc.address, dev.volume_size])
}
