package platform.walk.depth

import rego.v1

warn_deep_nesting contains msg if {
	some rc in input.plan.resource_changes
	is_object(rc.change.after)
	depths := [count(path) | walk(rc.change.after, [path, _])]
	max(depths) > 4
	msg := sprintf("%s nests %d levels deep", [rc.address, max(depths)])
}
