# METADATA
# title: Agent justification missing
# description: >-
#   An agent's evidence must cite at least one evidence source and carry a rollback plan. Missing
#   justification is a deny when the risk tier is medium or above and a warning below.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-EVD-004
#   severity: high
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-AU-10, NIST-CM-3, NIST-CP-10]
#   remediation: >-
#     Cite the runbook, ticket or metrics the agent relied on, and write how to roll the change
#     back.
package glassbox.evidence.gb_evd_004

import rego.v1

import data.glassbox.lib.util
import data.glassbox.risk

justification_missing(doc) := [m |
	some m in ["evidence_sources", "rollback_plan"]
	justification_lacks(doc.evidence, m)
]

justification_lacks(ev, "evidence_sources") if count(util.as_list(object.get(ev, "evidence_sources", []))) == 0

justification_lacks(ev, "rollback_plan") if object.get(ev, "has_rollback_plan", false) != true

justification_gaps(doc) := [{"msg": util.msg(["agent evidence lacks ", m]), "resource": "evidence", "field": m} |
	util.is_agent_pr(doc)
	util.evidence_present(doc)
	some m in justification_missing(doc)
]

# The tier gates deny vs warn; it is an argument so tests can pass any tier.
deny_results_at(doc, computed) := {x |
	object.get(util.tier_rank, computed, 3) >= 1
	some x in justification_gaps(doc)
}

warn_results_at(doc, computed) := {x |
	object.get(util.tier_rank, computed, 3) < 1
	some x in justification_gaps(doc)
}

deny contains result if {
	some result in deny_results_at(input, risk.tier)
}

warn contains result if {
	some result in warn_results_at(input, risk.tier)
}
