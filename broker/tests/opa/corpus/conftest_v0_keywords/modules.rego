package platform.kw.modules

import data.platform.kw.lib
import future.keywords

deny_root_module_databases contains msg if {
	some rc in lib.creates
	rc.type in {"aws_db_instance", "platform_postgres_database"}
	lib.module_of(rc) == "root"
	msg := sprintf("%s: databases must be created through a module", [rc.address])
}

warn_changes_per_module contains msg if {
	some m in {lib.module_of(rc) | some rc in lib.managed}
	n := count([rc | some rc in lib.managed; lib.module_of(rc) == m])
	n >= 25
	msg := sprintf("module %s changes %d resources", [m, n])
}
