package platform.conftest.sg

import future.keywords.in

open_cidrs = {"0.0.0.0/0", "::/0"}

deny_open_ssh[msg] {
	rc := input.plan.resource_changes[_]
	rc.type == "aws_security_group"
	rule := rc.change.after.ingress[_]
	rule.from_port <= 22
	rule.to_port >= 22
	cidr := rule.cidr_blocks[_]
	open_cidrs[cidr]
	msg := sprintf("%s allows SSH from %s", [rc.address, cidr])
}

deny_all_ports[msg] {
	rc := input.plan.resource_changes[_]
	rc.type == "aws_security_group"
	rule := rc.change.after.ingress[_]
	rule.protocol == "-1"
	msg := sprintf("%s: ingress rule %q allows every protocol", [rc.address, object.get(rule, "description", "")])
}

port_ranges[addr] = ranges {
	rc := input.plan.resource_changes[_]
	rc.type == "aws_security_group"
	addr := rc.address
	ranges := [r | rule := rc.change.after.ingress[_]; r := rule.to_port - rule.from_port]
}

warn_wide_port_range[msg] {
	some addr
	ranges := port_ranges[addr]
	max(ranges) > 1000
	msg := sprintf("%s opens a range of %d ports", [addr, max(ranges)])
}
