package platform.compliance.encryption

import rego.v1

# terraform-compliance style: "Given resource X, When it has Y, Then it must Z".

encrypted(rc) if {
	rc.type == "aws_ebs_volume"
	rc.change.after.encrypted == true
}

encrypted(rc) if {
	rc.type == "aws_db_instance"
	rc.change.after.storage_encrypted
}

encrypted(rc) if {
	rc.type == "aws_s3_bucket"
	some c in rc.change.after.server_side_encryption_configuration
	some r in c.rule
	some d in r.apply_server_side_encryption_by_default
	d.sse_algorithm in {"aws:kms", "AES256"}
}

must_encrypt := {"aws_ebs_volume", "aws_db_instance", "aws_s3_bucket"}

deny_not_encrypted contains msg if {
	some rc in input.plan.resource_changes
	rc.type in must_encrypt
	rc.change.after != null
	not encrypted(rc)
	msg := sprintf("%s must be encrypted at rest", [rc.address])
}

kms_keys contains key if {
	some rc in input.plan.resource_changes
	rc.type == "aws_s3_bucket"
	some c in rc.change.after.server_side_encryption_configuration
	some r in c.rule
	some d in r.apply_server_side_encryption_by_default
	key := object.get(d, "kms_master_key_id", "")
	key != ""
}

warn_kms_keys contains msg if {
	count(kms_keys) > 1
	msg := sprintf("%d different KMS keys", [count(kms_keys)])
}
