# METADATA
# title: KMS key rotation off
# description: >-
#   A symmetric encryption KMS key without enableKeyRotation = true. Asymmetric and HMAC keys cannot
#   rotate automatically and are skipped.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-010
#   severity: medium
#   controls: [SOC2-CC6.1, ISO27001-A.8.24, NIST-SC-12, CIS-AWS-3.6]
#   remediation: >-
#     Set enableKeyRotation = true (optionally rotationPeriodInDays) on symmetric keys.
package glassbox.data.gb_data_010

import rego.v1

import data.glassbox.lib.util

symmetric(k) if {
	util.input_value(k, "customerMasterKeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
	util.input_value(k, "keyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT"
}

deny_results(doc) := {result |
	some k in util.resources_of_type(doc, "aws:kms/key:Key")
	object.get(object.get(k, "inputs", {}), "enableKeyRotation", false) != true # first: most keys rotate, and stop here
	symmetric(k)
	result := {"msg": util.msg(["KMS key ", k.name, " does not rotate"]), "resource": util.resource_ref(k)}
}

deny contains result if {
	some result in deny_results(input)
}
