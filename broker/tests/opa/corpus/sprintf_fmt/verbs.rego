package platform.fmt.verbs

import rego.v1

warn_hex_ports contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_security_group"
	some rule in rc.change.after.ingress
	msg := sprintf("%s port 0x%x-%X (%o octal)", [rc.address, rule.from_port, rule.to_port, rule.from_port])
}

warn_quoted contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_s3_bucket"
	msg := sprintf("bucket %q at %q", [rc.change.after.bucket, rc.address])
}

warn_values contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "platform_postgres_database"
	is_object(rc.change.after)
	msg := sprintf("%s: labels %v, actions %v, limit %v", [rc.address, rc.change.after.labels, rc.change.actions, rc.change.after.connection_limit])
}

warn_floats contains msg if {
	msg := sprintf("before %v after %v delta %v", [input.cost.monthly_before, input.cost.monthly_after, input.cost.monthly_delta])
}

warn_bool_and_null contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_db_instance"
	is_object(rc.change.after)
	msg := sprintf("%s: public=%v, before=%v, %s", [rc.address, rc.change.after.publicly_accessible, rc.change.before, rc.change.actions])
}
