# METADATA
# title: No deletion protection on a prod database
# description: >-
#   A prod RDS instance or cluster without deletionProtection = true can be destroyed by one
#   mistaken change.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-009
#   severity: medium
#   controls: [SOC2-A1.2, ISO27001-A.8.13, NIST-CP-9, NIST-CM-3]
#   remediation: >-
#     Set deletionProtection = true on prod databases; turn it off only in a reviewed change that
#     intends the deletion.
package glassbox.data.gb_data_009

import rego.v1

import data.glassbox.lib.util

types_009 := {"aws:rds/instance:Instance", "aws:rds/cluster:Cluster"}

deny_results(doc) := {result |
	some r in util.resources_of_types(doc, types_009)
	util.is_prod(r.environment)
	object.get(object.get(r, "inputs", {}), "deletionProtection", false) != true
	result := {"msg": util.msg([r.type, " ", r.name, " in ", r.environment, " has no deletion protection"]), "resource": util.resource_ref(r)}
}

deny contains result if {
	some result in deny_results(input)
}
