package platform.conftest.env

import future.keywords.in

environment = e {
	e := input.run.workspace.environment
	e != "default"
} else = "development" {
	true
}

max_cost = 500 {
	environment == "production"
} else = 100 {
	environment == "staging"
} else = 50 {
	true
}

deny_cost_over_env_limit[msg] {
	input.cost.monthly_after > max_cost
	msg := sprintf("monthly cost %v is over the %s limit %d", [input.cost.monthly_after, environment, max_cost])
}

size_class(n) = "large" {
	n > 500
} else = "medium" {
	n > 100
} else = "small" {
	true
}

warn_db_size[msg] {
	rc := input.plan.resource_changes[_]
	rc.type == "aws_db_instance"
	n := rc.change.after.allocated_storage
	size_class(n) != "small"
	msg := sprintf("%s is a %s database (%d GiB)", [rc.address, size_class(n), n])
}
