# METADATA
# title: Short database backup retention in prod
# description: >-
#   A prod RDS instance or cluster whose backupRetentionPeriod is below 7 days; an absent value
#   counts as below, because the provider default is shorter.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-008
#   severity: medium
#   controls: [SOC2-A1.2, ISO27001-A.8.13, NIST-CP-9]
#   remediation: >-
#     Set backupRetentionPeriod to 7 or more (35 for critical data) and test restores.
package glassbox.data.gb_data_008

import rego.v1

import data.glassbox.lib.util

types_008 := {"aws:rds/instance:Instance", "aws:rds/cluster:Cluster"}

minimum_days := 7

deny_results(doc) := {result |
	some r in util.resources_of_types(doc, types_008)
	util.is_prod(r.environment)
	is_null(object.get(object.get(r, "inputs", {}), "replicateSourceDb", null))
	days := util.input_value(r, "backupRetentionPeriod", 0)
	days < minimum_days
	result := {
		"msg": util.msg([r.type, " ", r.name, " in ", r.environment, " keeps backups ", days, " days (minimum ", minimum_days, ")"]),
		"resource": util.resource_ref(r),
		"days": days,
	}
}

deny contains result if {
	some result in deny_results(input)
}
