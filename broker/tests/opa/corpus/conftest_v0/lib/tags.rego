# Shared helpers (conftest style): imported as data.platform.lib.tags.
package platform.lib.tags

required_tags = ["owner", "cost-center"]

tags_of(rc) = t {
	t := rc.change.after.tags
	is_object(t)
}

tags_of(rc) = t {
	not is_object(rc.change.after.tags)
	is_object(rc.change.after.labels)
	t := rc.change.after.labels
}

tags_of(rc) = {} {
	not is_object(rc.change.after.tags)
	not is_object(rc.change.after.labels)
}

missing_tags(rc) = m {
	t := tags_of(rc)
	m := {k | k := required_tags[_]; not t[k]}
}

changing(rc) {
	rc.change.actions[_] == "create"
}

changing(rc) {
	rc.change.actions[_] == "update"
}
