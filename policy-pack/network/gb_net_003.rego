# METADATA
# title: Default security group in use
# description: >-
#   The VPC default security group must restrict all traffic: managing it with ingress or egress
#   rules puts every resource launched without an explicit group into that access, and a security
#   group named "default" is mistaken for it.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-NET-003
#   severity: high
#   controls: [SOC2-CC6.6, ISO27001-A.8.20, NIST-SC-7, CIS-AWS-5.4]
#   remediation: >-
#     Manage the default security group with no ingress and no egress rules, and attach purpose-
#     built security groups to resources instead.
package glassbox.network.gb_net_003

import rego.v1

import data.glassbox.lib.network
import data.glassbox.lib.util

default_sg := "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"

deny_results(doc) := {result |
	some r in util.resources_of_type(doc, default_sg)
	some direction in ["ingress", "egress"]
	count(util.as_list(util.input_value(r, direction, []))) > 0
	result := {
		"msg": util.msg(["default security group ", r.name, " declares ", direction, " rules; it must allow no traffic"]),
		"resource": util.resource_ref(r),
		"direction": direction,
	}
} | {result |
	some r in util.resources_of_type(doc, network.sg_type)
	util.input_value(r, "name", "") == "default"
	result := {
		"msg": util.msg(["security group ", r.name, " is named \"default\"; use a purpose-built name"]),
		"resource": util.resource_ref(r),
	}
}

deny contains result if {
	some result in deny_results(input)
}
