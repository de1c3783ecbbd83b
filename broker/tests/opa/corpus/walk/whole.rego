package platform.walkers.whole

import rego.v1

# `walk` as a function, over the whole input (so no part of the plan may be
# left out of the document the policies see).
warn_long_strings contains sprintf("%s: %d characters", [concat("/", [format_int(count(path), 10), type_name(value)]), count(value)]) if {
	[path, value] := walk(input.plan)
	is_string(value)
	count(value) > 60
}

deny_unknown_public contains path_text if {
	some path, value
	walk(input, [path, value])
	path[count(path) - 1] == "acl"
	value == "public-read"
	path_text := concat(".", [sprintf("%v", [p]) | some p in path])
}
