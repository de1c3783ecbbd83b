package platform.kw.lib

import future.keywords.contains
import future.keywords.if
import future.keywords.in

managed contains rc if {
	some rc in input.plan.resource_changes
	rc.mode == "managed"
	not rc.change.actions == ["no-op"]
}

creates contains rc if {
	some rc in managed
	"create" in rc.change.actions
}

module_of(rc) := m if {
	m := rc.module_address
} else := "root"
