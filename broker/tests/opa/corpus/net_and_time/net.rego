package platform.builtins.net

import rego.v1

deny_cidr_outside_vpc contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_security_group"
	some rule in rc.change.after.ingress
	some cidr in rule.cidr_blocks
	not net.cidr_contains("10.0.0.0/8", cidr)
	msg := sprintf("%s: %s is outside 10.0.0.0/8", [rc.address, cidr])
}

warn_overlapping contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_security_group"
	some rule in rc.change.after.ingress
	some cidr in rule.cidr_blocks
	net.cidr_intersects(cidr, "192.168.0.0/16")
	msg := sprintf("%s: %s overlaps 192.168.0.0/16", [rc.address, cidr])
}
