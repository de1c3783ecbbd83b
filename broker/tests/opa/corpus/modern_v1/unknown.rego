package platform.modern.unknown

import rego.v1

# Values known only after apply: after_unknown marks them, after omits them.
deny_unknown_instance_type contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_instance"
	rc.change.after_unknown.instance_type == true
	msg := sprintf("%s: instance type is only known after apply", [rc.address])
}

unknown_keys(rc) := {k | some k, v in rc.change.after_unknown; v == true}

warn_unknown_ids contains msg if {
	some rc in input.plan.resource_changes
	"create" in rc.change.actions
	ks := unknown_keys(rc)
	count(ks) > 2
	msg := sprintf("%s: %d attributes known after apply (%s)", [rc.address, count(ks), concat(", ", sort(ks))])
}

deny_sensitive_in_tags contains msg if {
	some rc in input.plan.resource_changes
	is_object(rc.change.after_sensitive)
	some key, sensitive in object.get(rc.change.after_sensitive, "tags", {})
	sensitive == true
	msg := sprintf("%s: tag %s is marked sensitive", [rc.address, key])
}

warn_sensitive_count contains msg if {
	n := count([rc |
		some rc in input.plan.resource_changes
		is_object(rc.change.after_sensitive)
		count(rc.change.after_sensitive) > 0
	])
	n > 0
	msg := sprintf("%d resources carry sensitive values", [n])
}
