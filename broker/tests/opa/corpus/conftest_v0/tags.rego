package platform.conftest.tags

import data.platform.lib.tags

taggable = {"aws_s3_bucket", "aws_instance", "aws_ebs_volume", "aws_db_instance"}

deny_missing_tags[msg] {
	rc := input.plan.resource_changes[_]
	taggable[rc.type]
	tags.changing(rc)
	missing := tags.missing_tags(rc)
	count(missing) > 0
	msg := sprintf("%s is missing required tags: %s", [rc.address, concat(", ", sort(missing))])
}

warn_owner_format[msg] {
	rc := input.plan.resource_changes[_]
	tags.changing(rc)
	owner := tags.tags_of(rc).owner
	not regex.match("^team-[a-z0-9-]+$", owner)
	msg := sprintf("%s: owner tag %s does not look like team-<name>", [rc.address, owner])
}
