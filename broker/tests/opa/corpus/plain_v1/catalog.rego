package platform.plain.catalog

deny_deprecated_offering contains msg if {
	some r in input.catalog.resources
	r.version_status == "deprecated"
	msg := sprintf("%s uses deprecated %s %s", [r.address, r.offering, r.version])
}

warn_needs_approval contains r.address if {
	some r in input.catalog.resources
	r.requires_approval
}

deny_destroy_run if {
	input.run.is_destroy
	input.run.workspace.environment != "production"
}

warn_not_current := [r.address | some r in input.catalog.resources; r.version_status != "current"]
