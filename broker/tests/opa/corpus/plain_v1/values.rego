package platform.plain.values

# Rule values that are not message strings: the broker turns them into
# findings (numbers and objects as JSON text, `true` as the rule id).

# A partial object: one finding whose message is the object as JSON.
warn_actions_by_address[rc.address] := rc.change.actions if {
	some rc in input.plan.resource_changes
	rc.type == "platform_postgres_database"
}

# Numbers as messages.
warn_costs contains r.after if {
	some r in input.cost.resources
	r.after != null
}

# Objects with extra keys, a non-string msg, no msg at all.
warn_odd_objects contains {"msg": count(rc.change.actions), "address": rc.address, "type": rc.type} if {
	some rc in input.plan.resource_changes
	rc.type == "aws_ebs_volume"
}

warn_no_msg contains {"address": rc.address, "size": rc.change.after.size} if {
	some rc in input.plan.resource_changes
	rc.type == "aws_ebs_volume"
	rc.change.after.size > 500
}

# A complete rule with a string value; an array with duplicates.
warn_env := sprintf("environment %s", [input.run.workspace.environment]) if count(input.plan.resource_changes) > 3

warn_types_array := [rc.type | some rc in input.plan.resource_changes; startswith(rc.type, "platform_")]
