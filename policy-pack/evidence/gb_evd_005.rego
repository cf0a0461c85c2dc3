# METADATA
# title: Evidence belongs to another agent
# description: >-
#   The evidence record's agent_id must equal the PR's agent id: evidence copied from another
#   agent's change proves nothing about this one.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-EVD-005
#   severity: critical
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-AU-10, NIST-CM-3]
#   remediation: >-
#     Regenerate the evidence with `glassbox propose` for the agent that opens the PR.
package glassbox.evidence.gb_evd_005

import rego.v1

import data.glassbox.lib.util

deny_results(doc) := {result |
	util.is_agent_pr(doc)
	util.evidence_present(doc)
	ev_agent := object.get(doc.evidence, "agent_id", null)
	pr_agent := object.get(doc.pr, "agent_id", null)
	ev_agent != pr_agent
	result := {"msg": util.msg(["evidence names agent ", ev_agent, " but the PR is from ", pr_agent]), "resource": "evidence"}
}

deny contains result if {
	some result in deny_results(input)
}
