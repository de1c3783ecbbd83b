package platform.fmt.table

import rego.v1

# Report lines formatted as a fixed-width table (widths, precision, flags).
warn_cost_table contains msg if {
	some r in input.cost.resources
	r.delta != 0
	msg := sprintf("%-40s %10.2f %+8.1f", [r.address, r.after, r.delta])
}

warn_padded_counts contains msg if {
	n := count(input.plan.resource_changes)
	msg := sprintf("[%5d] [%-5d] [%05d] resources", [n, n, n])
}

warn_precision contains msg if {
	some r in input.cost.resources
	r.after > 0
	msg := sprintf("%s costs %.3f (%5.2f%% of the total)", [r.address, r.after, (r.after * 100) / input.cost.monthly_after])
}
