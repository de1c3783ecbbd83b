# A monthly cost increase above the threshold needs an approval; resources the
# broker could not price are called out (never silently $0).
package platform.cost_increase

monthly_increase_threshold := 500

currency := object.get(input.cost, "currency", "USD")

deny_monthly_cost_increase contains msg if {
	delta := input.cost.monthly_delta
	delta > monthly_increase_threshold
	msg := sprintf(
		"monthly cost would rise by %v %s (from %v to %v), above the %v %s threshold",
		[delta, currency, input.cost.monthly_before, input.cost.monthly_after, monthly_increase_threshold, currency],
	)
}

warn_unpriced_resource contains finding if {
	some r in input.cost.resources
	r.unpriced == true
	finding := {
		"address": r.address,
		"msg": sprintf("%s has no price; its cost is not included in the estimate", [r.address]),
	}
}
