package platform.kw.ebs

import data.platform.kw.lib
import future.keywords.contains
import future.keywords.every
import future.keywords.if
import future.keywords.in

deny_unencrypted_volume contains msg if {
	some rc in lib.creates
	rc.type == "aws_ebs_volume"
	not rc.change.after.encrypted
	msg := sprintf("%s: EBS volume is not encrypted", [rc.address])
}

deny_instance_unencrypted_root contains msg if {
	some rc in lib.creates
	rc.type == "aws_instance"
	some dev in rc.change.after.root_block_device
	dev.encrypted == false
	msg := sprintf("%s: root block device is not encrypted", [rc.address])
}

warn_gp2 contains msg if {
	some rc in lib.managed
	rc.type == "aws_ebs_volume"
	rc.change.after.type == "gp2"
	msg := sprintf("%s (module %s): gp2 volumes should be gp3", [rc.address, lib.module_of(rc)])
}

warn_all_volumes_small contains msg if {
	some m in {lib.module_of(rc) | some rc in lib.creates; rc.type == "aws_ebs_volume"}
	volumes := [rc | some rc in lib.creates; rc.type == "aws_ebs_volume"; lib.module_of(rc) == m]
	every v in volumes {
		v.change.after.size <= 200
	}
	msg := sprintf("module %s: every new EBS volume is 200 GiB or less", [m])
}
