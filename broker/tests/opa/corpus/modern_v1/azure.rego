package platform.modern.azure

import rego.v1

deny_storage_tls contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "azurerm_storage_account"
	rc.change.after.min_tls_version != "TLS1_2"
	msg := sprintf("%s: minimum TLS version is %s, want TLS1_2", [rc.address, rc.change.after.min_tls_version])
}

deny_storage_http contains msg if {
	some rc in input.plan.resource_changes
	rc.type == "azurerm_storage_account"
	not rc.change.after.https_traffic_only_enabled
	msg := sprintf("%s allows plain HTTP", [rc.address])
}

replication_rank := {"LRS": 1, "ZRS": 2, "GRS": 3, "RAGRS": 4, "GZRS": 5}

warn_replication contains msg if {
	input.run.workspace.environment == "production"
	some rc in input.plan.resource_changes
	rc.type == "azurerm_storage_account"
	replication_rank[rc.change.after.account_replication_type] < 3
	msg := sprintf("%s: replication %s is not geo-redundant", [rc.address, rc.change.after.account_replication_type])
}

vm_sizes contains size if {
	some rc in input.plan.resource_changes
	rc.type == "azurerm_linux_virtual_machine"
	size := rc.change.after.size
}

warn_vm_sizes contains msg if {
	count(vm_sizes) > 2
	msg := sprintf("%d different VM sizes: %s", [count(vm_sizes), concat(",", sort(vm_sizes))])
}
