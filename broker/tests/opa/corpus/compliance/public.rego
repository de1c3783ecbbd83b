package platform.compliance.public

import rego.v1

deny_public_db contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_db_instance"
	rc.change.after.publicly_accessible
	msg := sprintf("%s is publicly accessible", [rc.address])
}

block_settings := ["block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"]

deny_public_access_block contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_s3_bucket_public_access_block"
	off := [s | some s in block_settings; rc.change.after[s] != true]
	count(off) > 0
	msg := sprintf("%s: %s not enabled", [rc.address, concat(", ", off)])
}

world_open(cidr) if cidr == "0.0.0.0/0"

world_open(cidr) if cidr == "::/0"

deny_world_ingress contains {"msg": msg, "address": rc.address} if {
	some rc in input.plan.resource_changes
	rc.type == "aws_security_group"
	some i, rule in rc.change.after.ingress
	cidrs := array.concat(object.get(rule, "cidr_blocks", []), object.get(rule, "ipv6_cidr_blocks", []))
	some cidr in cidrs
	world_open(cidr)
	not rule.from_port in {80, 443}
	msg := sprintf("ingress rule %d (ports %d-%d) is open to %s", [i, rule.from_port, rule.to_port, cidr])
}

private_prefixes := ["10.", "192.168.", "172.16."]

warn_non_rfc1918 contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "aws_security_group"
	some rule in rc.change.after.ingress
	some cidr in rule.cidr_blocks
	not world_open(cidr)
	not strings.any_prefix_match(cidr, private_prefixes)
	msg := sprintf("%s: ingress from public range %s", [rc.address, cidr])
}
