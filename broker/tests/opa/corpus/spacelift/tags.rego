package platform.spacelift.tags

import rego.v1

required := {"owner", "environment"}

taggable(rc) if {
	rc.type in {"aws_instance", "aws_s3_bucket", "aws_ebs_volume", "aws_db_instance", "azurerm_storage_account", "azurerm_linux_virtual_machine"}
}

tags(rc) := t if {
	t := rc.change.after.tags
	is_object(t)
} else := {}

deny_missing_tags contains {"msg": msg, "address": rc.address} if {
	some rc in input.plan.resource_changes
	taggable(rc)
	rc.change.actions[_] in ["create", "update"]
	missing := required - {k | some k, _ in tags(rc)}
	count(missing) > 0
	msg := sprintf("missing tags: %s", [concat(", ", sort(missing))])
}

deny_environment_tag_mismatch contains msg if {
	env := input.run.workspace.environment
	env != "default"
	some rc in input.plan.resource_changes
	t := tags(rc)
	t.environment != env
	msg := sprintf("%s: environment tag %s, workspace %s", [rc.address, t.environment, env])
}

warn_tag_count contains msg if {
	some rc in input.plan.resource_changes
	n := count(tags(rc))
	n > 6
	msg := sprintf("%s has %d tags", [rc.address, n])
}
