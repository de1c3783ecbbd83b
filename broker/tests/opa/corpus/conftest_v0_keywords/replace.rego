package platform.kw.replace

import future.keywords.contains
import future.keywords.if
import future.keywords.in

stateful := {"aws_db_instance", "aws_ebs_volume", "platform_postgres_database", "google_storage_bucket"}

deny_replace_stateful contains {"msg": msg, "address": rc.address} if {
	some rc in input.plan.resource_changes
	rc.type in stateful
	rc.change.actions == ["delete", "create"]
	msg := sprintf("%s would be replaced (destroy first)", [rc.address])
}

warn_create_before_destroy contains rc.address if {
	some rc in input.plan.resource_changes
	rc.change.actions == ["create", "delete"]
}

deny_destroy_in_production contains msg if {
	input.run.workspace.environment == "production"
	some rc in input.plan.resource_changes
	"delete" in rc.change.actions
	not "create" in rc.change.actions
	msg := sprintf("%s would be destroyed in production", [rc.address])
}
