# METADATA
# title: Agent PR without evidence
# description: >-
#   Every agent PR must carry its evidence record (model, prompt, sources, intent manifest). Missing
#   evidence means the change cannot be reconstructed.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-EVD-001
#   severity: critical
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-AU-10, NIST-CM-3]
#   remediation: >-
#     Open agent changes through `glassbox propose`, which writes the evidence record into the same
#     commit.
package glassbox.evidence.gb_evd_001

import rego.v1

import data.glassbox.lib.util

deny_results(doc) := {{"msg": "agent PR carries no evidence record", "resource": "evidence"} |
	util.is_agent_pr(doc)
	not util.evidence_present(doc)
}

deny contains result if {
	some result in deny_results(input)
}
