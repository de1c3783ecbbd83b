package platform.compliance.withtest

import rego.v1

high_cost if input.cost.monthly_delta > 1000

# `with` is rare in plan policies; this one checks a rule under a what-if.
warn_would_be_high_cost_in_production contains "a cost increase like this one would need approval in production" if {
	not high_cost
	high_cost with input.cost.monthly_delta as input.cost.monthly_delta * 20
}

deny_production_only contains msg if {
	prod_check with input.run.workspace.environment as "production"
	msg := "the plan would be blocked in production"
}

prod_check if {
	input.run.workspace.environment == "production"
	some rc in input.plan.resource_changes
	rc.type == "aws_db_instance"
	rc.change.after.deletion_protection == false
}
