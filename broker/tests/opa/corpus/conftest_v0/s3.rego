package platform.conftest.s3

import data.platform.lib.tags

public_acls = {"public-read", "public-read-write", "authenticated-read"}

deny_s3_public_acl[msg] {
	rc := input.plan.resource_changes[_]
	rc.type == "aws_s3_bucket"
	tags.changing(rc)
	public_acls[rc.change.after.acl]
	msg := sprintf("%s: ACL %s makes the bucket public", [rc.address, rc.change.after.acl])
}

deny_s3_unencrypted[msg] {
	rc := input.plan.resource_changes[_]
	rc.type == "aws_s3_bucket"
	tags.changing(rc)
	count(rc.change.after.server_side_encryption_configuration) == 0
	msg := sprintf("%s: server-side encryption is not configured", [rc.address])
}

warn_s3_versioning[msg] {
	rc := input.plan.resource_changes[_]
	rc.type == "aws_s3_bucket"
	tags.changing(rc)
	v := rc.change.after.versioning[_]
	not v.enabled
	msg := concat(" ", [rc.address, "has versioning disabled"])
}
