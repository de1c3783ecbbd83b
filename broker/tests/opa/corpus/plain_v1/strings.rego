package platform.plain.names

deny_bucket_name contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_s3_bucket"
	name := rc.change.after.bucket
	not regex.match(`^[a-z0-9][a-z0-9.-]{2,62}$`, name)
	msg := sprintf("%s: bucket name %s is not DNS-compatible", [rc.address, name])
}

deny_name_prefix contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_s3_bucket"
	name := rc.change.after.bucket
	not startswith(name, concat("-", ["acme", input.run.workspace.environment]))
	not endswith(name, "-legacy")
	msg := sprintf("%s: %s lacks the acme-<env> prefix", [rc.address, name])
}

warn_name_parts contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_s3_bucket"
	parts := split(rc.change.after.bucket, "-")
	count(parts) > 4
	msg := sprintf("%s: %d name parts (%s)", [rc.address, count(parts), concat("|", array.slice(parts, 0, 2))])
}

warn_upper_in_address contains msg if {
	some rc in input.plan.resource_changes
	lower(rc.name) != rc.name
	msg := sprintf("%s: resource name should be lower case (%s)", [rc.address, upper(trim_space(rc.name))])
}

deny_replace_chars contains msg if {
	some rc in input.plan.resource_changes
	contains(rc.address, "legacy")
	msg := replace(rc.address, "legacy", "LEGACY")
}
