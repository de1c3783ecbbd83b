package platform.compliance.units

import rego.v1

max_bytes := units.parse_bytes("500GiB")

volume_bytes(rc) := units.parse_bytes(sprintf("%dGiB", [rc.change.after.size])) if rc.type == "aws_ebs_volume"

deny_volume_size contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_ebs_volume"
	volume_bytes(rc) > max_bytes
	msg := sprintf("%s: %d GiB is over 500 GiB", [rc.address, rc.change.after.size])
}

warn_total_storage contains msg if {
	sizes := [volume_bytes(rc) | some rc in input.plan.resource_changes; rc.type == "aws_ebs_volume"; rc.change.after != null]
	total := sum(sizes)
	total > units.parse_bytes("2TiB")
	msg := sprintf("%d volumes, %d GiB in total", [count(sizes), total / units.parse_bytes("1GiB")])
}

deny_memory_setting contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "platform_cache"
	units.parse(rc.change.after.memory) > units.parse("8G")
	msg := sprintf("%s: memory %s over 8G", [rc.address, rc.change.after.memory])
}
