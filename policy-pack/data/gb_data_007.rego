# METADATA
# title: Unencrypted database storage
# description: >-
#   An RDS instance or cluster without storageEncrypted = true. Read replicas (replicateSourceDb
#   set) inherit their source's encryption and are skipped.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-007
#   severity: high
#   controls: [SOC2-CC6.1, ISO27001-A.8.24, NIST-SC-28, CIS-AWS-2.3.1]
#   remediation: >-
#     Set storageEncrypted = true (with a customer KMS key for sensitive data); an existing instance
#     must be restored from an encrypted snapshot.
package glassbox.data.gb_data_007

import rego.v1

import data.glassbox.lib.util

types_007 := {"aws:rds/instance:Instance", "aws:rds/cluster:Cluster"}

deny_results(doc) := {result |
	some r in util.resources_of_types(doc, types_007)
	inputs := object.get(r, "inputs", {})
	object.get(inputs, "storageEncrypted", false) != true
	is_null(object.get(inputs, "replicateSourceDb", null))
	result := {"msg": util.msg([r.type, " ", r.name, " does not encrypt its storage"]), "resource": util.resource_ref(r)}
}

deny contains result if {
	some result in deny_results(input)
}
