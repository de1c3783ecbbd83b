package platform.cost_increase_test

import data.platform.cost_increase

cost(delta) := {"cost": {
	"currency": "USD",
	"monthly_before": 1000,
	"monthly_after": 1000 + delta,
	"monthly_delta": delta,
	"resources": [],
}}

test_increase_above_threshold_needs_approval if {
	findings := cost_increase.deny_monthly_cost_increase with input as cost(750.5)
	count(findings) == 1
	some msg in findings
	contains(msg, "750.5")
}

test_increase_at_threshold_passes if {
	findings := cost_increase.deny_monthly_cost_increase with input as cost(500)
	count(findings) == 0
}

test_decrease_passes if {
	findings := cost_increase.deny_monthly_cost_increase with input as cost(-900)
	count(findings) == 0
}

test_no_cost_input_passes if {
	findings := cost_increase.deny_monthly_cost_increase with input as {}
	count(findings) == 0
}

test_warns_about_unpriced_resources if {
	findings := cost_increase.warn_unpriced_resource with input as {"cost": {"resources": [
		{"address": "aws_instance.a", "before": 0, "after": null, "delta": null, "unpriced": true},
		{"address": "aws_s3_bucket.b", "before": 0, "after": 1, "delta": 1, "unpriced": false},
	]}}
	count(findings) == 1
	some f in findings
	f.address == "aws_instance.a"
}
