package platform.modern.compr

import rego.v1

by_type := {t: addrs |
	some t in {rc.type | some rc in input.plan.resource_changes}
	addrs := [rc.address | some rc in input.plan.resource_changes; rc.type == t]
}

type_counts := {t: count(a) | some t, a in by_type}

warn_type_mix contains msg if {
	count(type_counts) > 5
	top := [sprintf("%s=%d", [t, n]) | some t, n in type_counts; n >= 10]
	msg := sprintf("plan touches %d resource types; most frequent: %s", [count(type_counts), concat(" ", sort(top))])
}

deny_cost_center_format contains msg if {
	some cc in {v | some rc in input.plan.resource_changes; is_object(rc.change.after); v := rc.change.after.tags["cost-center"]}
	not regex.match(`^CC-[0-9]{4}$`, cc)
	msg := sprintf("cost-center %s is not CC-nnnn", [cc])
}

deny_duplicate_names contains msg if {
	names := [rc.change.after.name |
		some rc in input.plan.resource_changes
		rc.type == "platform_postgres_database"
		is_object(rc.change.after)
	]
	some name in {n | some n in names}
	c := count([n | some n in names; n == name])
	c > 1
	msg := sprintf("database name %s is used %d times", [name, c])
}

warn_addresses_sorted contains msg if {
	addrs := [rc.address | some rc in input.plan.resource_changes; rc.type == "aws_security_group"]
	count(addrs) > 0
	s := sort(addrs)
	msg := sprintf("security groups: first %s, last %s", [s[0], s[count(s) - 1]])
}
