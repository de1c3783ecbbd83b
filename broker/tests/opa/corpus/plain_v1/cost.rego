package platform.plain.cost

monthly_limit := 2000

deny_monthly_cost contains msg if {
	input.cost.monthly_after > monthly_limit
	msg := sprintf("monthly cost would be %v, over the limit of %d", [input.cost.monthly_after, monthly_limit])
}

expensive contains r if {
	some r in input.cost.resources
	r.delta > 100
}

warn_expensive_resources contains {"msg": sprintf("adds %v per month", [r.delta]), "address": r.address} if {
	some r in expensive
}

warn_total_delta contains msg if {
	total := sum([r.delta | some r in input.cost.resources; is_number(r.delta)])
	total != 0
	msg := sprintf("total delta %v over %d priced resources", [round(total * 100) / 100, count(input.cost.resources)])
}
