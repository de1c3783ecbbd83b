package platform.builtins.time

import rego.v1

deny_expired_tag contains msg if {
	some rc in input.plan.resource_changes
	expires := rc.change.after.tags.expires
	time.parse_rfc3339_ns(sprintf("%sT00:00:00Z", [expires])) < time.parse_rfc3339_ns("2026-01-01T00:00:00Z")
	msg := sprintf("%s expired on %s", [rc.address, expires])
}
