package platform.conftest.objects

deny_destroy_protected[{"msg": msg, "address": rc.address}] {
	rc := input.plan.resource_changes[_]
	rc.change.actions[_] == "delete"
	rc.change.before.tags.protected == "true"
	msg := sprintf("%s is protected and would be destroyed", [rc.address])
}

changes_by_type[t] = n {
	rc := input.plan.resource_changes[_]
	t := rc.type
	n := count([x | x := input.plan.resource_changes[_]; x.type == t])
}

warn_many_of_a_type[msg] {
	n := changes_by_type[t]
	n > 40
	msg := sprintf("%d changes of type %s", [n, t])
}
