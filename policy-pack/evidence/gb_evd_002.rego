# METADATA
# title: Evidence digest does not verify
# description: >-
#   The evidence record is present but its digest did not verify (evidence.digest_verified is not
#   true): the record was edited after it was sealed, or never sealed.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-EVD-002
#   severity: critical
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-AU-10, NIST-CM-3, NIST-SI-7]
#   remediation: >-
#     Regenerate the evidence record with `glassbox propose`; never edit a sealed record by hand.
package glassbox.evidence.gb_evd_002

import rego.v1

import data.glassbox.lib.util

deny_results(doc) := {{"msg": "evidence record digest does not verify", "resource": "evidence"} |
	util.evidence_present(doc)
	object.get(doc.evidence, "digest_verified", false) != true
}

deny contains result if {
	some result in deny_results(input)
}
