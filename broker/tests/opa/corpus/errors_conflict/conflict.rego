package platform.errors.conflict

import rego.v1

# A complete rule with two different values is an evaluation error in OPA;
# the broker must fail closed on it, not pick one.
owner := rc.change.after.tags.owner if {
	some rc in input.plan.resource_changes
	rc.type == "aws_s3_bucket"
	is_object(rc.change.after.tags)
}

deny_owner_conflict contains msg if {
	owner != ""
	msg := sprintf("single owner %s", [owner])
}
