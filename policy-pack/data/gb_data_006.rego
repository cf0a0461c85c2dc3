# METADATA
# title: Publicly accessible database
# description: >-
#   An RDS instance or cluster instance with publiclyAccessible = true gets a public DNS name and
#   address.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-006
#   severity: critical
#   controls: [SOC2-CC6.6, ISO27001-A.8.20, NIST-SC-7, CIS-AWS-2.3.3]
#   remediation: >-
#     Set publiclyAccessible = false and reach the database from private subnets, a bastion or a
#     VPN.
package glassbox.data.gb_data_006

import rego.v1

import data.glassbox.lib.util

types_006 := {"aws:rds/instance:Instance", "aws:rds/clusterInstance:ClusterInstance"}

deny_results(doc) := {result |
	some r in util.resources_of_types(doc, types_006)
	object.get(object.get(r, "inputs", {}), "publiclyAccessible", false) == true
	result := {"msg": util.msg([r.type, " ", r.name, " is publicly accessible"]), "resource": util.resource_ref(r)}
}

deny contains result if {
	some result in deny_results(input)
}
