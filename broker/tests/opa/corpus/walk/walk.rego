package platform.walk.secrets

import rego.v1

# Find any attribute named like a secret, however deep.
deny_plaintext_secret contains msg if {
	some rc in input.plan.resource_changes
	is_object(rc.change.after)
	walk(rc.change.after, [path, value])
	count(path) > 0
	key := path[count(path) - 1]
	is_string(key)
	regex.match(`(?i)(password|secret|token)`, key)
	is_string(value)
	value != ""
	msg := sprintf("%s: %s is set in plain text", [rc.address, concat(".", [sprintf("%v", [p]) | some p in path])])
}
